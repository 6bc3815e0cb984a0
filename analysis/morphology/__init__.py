"""Per-object morphology in physical units (µm) for 3D label images.

:func:`measure_objects` returns one pandas row per label with volume, surface area,
surface-to-volume ratio, sphericity, centroid, bounding box, equivalent diameter,
principal axis lengths, and optional intensity and parent-fraction columns. Volumes
and centroids equal ``skimage.measure.regionprops`` with the same spacing.

To add a feature, compute it per object crop inside ``_table.measure_objects`` (the
crop and its mask are at hand there) and add its column name to the column tuples.
"""

from analysis.morphology._surface import SurfaceMethod, object_surface, object_surface_area
from analysis.morphology._table import (
    BASE_COLUMNS,
    INTENSITY_COLUMNS,
    PARENT_COLUMNS,
    SHAPE_COLUMNS,
    SUM_COLUMNS,
    measure_boxes,
    measure_masks,
    measure_objects,
    object_boxes,
)

__all__ = [
    "BASE_COLUMNS",
    "INTENSITY_COLUMNS",
    "PARENT_COLUMNS",
    "SHAPE_COLUMNS",
    "SUM_COLUMNS",
    "SurfaceMethod",
    "measure_boxes",
    "measure_masks",
    "measure_objects",
    "object_boxes",
    "object_surface",
    "object_surface_area",
]
