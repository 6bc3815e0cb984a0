"""Distances in µm: points to mask surfaces, objects to masks, objects to objects.

All distances are Euclidean in physical space with anisotropic voxel sizes, from
``scipy.ndimage.distance_transform_edt(sampling=spacing)`` or k-d trees on voxel centres.

- :func:`surface_distance_map`: distance of every voxel to a mask's surface;
  :func:`surface_distance_map_blockwise`: the same, capped at a distance, computed lazily
  chunk by chunk on a ``VolumeSource`` larger than memory (exact, halo = the cap).
- :func:`distance_to_mask` / :func:`distance_to_masks`: centroids to one or several
  surfaces (e.g. nucleus and plasma membrane) and the minimum over them.
- :func:`object_to_mask_distance`: object surface to mask surface.
- :func:`nearest_object_distance`: object surface to the nearest other object.
"""

from analysis.distances._blockwise import surface_distance_map_blockwise
from analysis.distances._distances import (
    distance_to_mask,
    distance_to_masks,
    nearest_object_distance,
    object_to_mask_distance,
    surface_distance_map,
)

__all__ = [
    "distance_to_mask",
    "distance_to_masks",
    "nearest_object_distance",
    "object_to_mask_distance",
    "surface_distance_map",
    "surface_distance_map_blockwise",
]
