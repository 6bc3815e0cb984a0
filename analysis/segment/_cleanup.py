"""Clean-up of masks and label images in physical units: size filter, open/close, holes,
watershed splitting and region growing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from skimage import feature, segmentation

from analysis._checks import check_spacing as _spacing
from analysis.errors import ParameterError

__all__ = [
    "ball_footprint",
    "binary_close",
    "binary_open",
    "fill_holes",
    "label_close",
    "label_open",
    "region_grow",
    "remove_small_objects_um3",
    "watershed_split",
]

log = logging.getLogger(__name__)

Spacing = Sequence[float] | npt.NDArray[np.float64]


def _labels(labels: npt.ArrayLike) -> npt.NDArray[np.integer]:
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise ParameterError(f"labels must be a 3D (z, y, x) array, got {lab.ndim} dimensions")
    if lab.dtype == np.bool_:
        return lab.astype(np.uint8)
    if not np.issubdtype(lab.dtype, np.integer):
        raise ParameterError(f"labels must be integer or bool, got dtype {lab.dtype}")
    return lab


def ball_footprint(radius_um: float, spacing: Spacing) -> npt.NDArray[np.bool_]:
    """A physical ball of ``radius_um`` as a voxel footprint (an ellipsoid in voxels).

    Voxels whose centre lies within ``radius_um`` of the centre voxel. Anisotropic
    spacing gives fewer voxels along coarse axes.
    """
    sp = _spacing(spacing)
    if not radius_um > 0:
        raise ParameterError(f"radius must be positive µm, got {radius_um!r}")
    half = np.floor(radius_um / sp).astype(int)
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((g * s) ** 2 for g, s in zip(grids, sp, strict=True))
    return np.asarray(dist2 <= radius_um**2 + 1e-12, dtype=bool)


def remove_small_objects_um3(
    labels: npt.ArrayLike, min_volume_um3: float, spacing: Spacing
) -> npt.NDArray[np.generic]:
    """Set objects smaller than ``min_volume_um3`` to background.

    Parameters
    ----------
    labels : (z, y, x) integer or bool array
        A label image (objects are labels) or a mask (objects are 26-connected
        components, as in ``skimage.morphology.remove_small_objects`` with
        ``connectivity=3``).
    min_volume_um3 : float
        Objects with ``voxel_count * voxel_volume < min_volume_um3`` are removed.
    spacing : (3,) floats

    Returns
    -------
    array of the input's dtype
    """
    arr = np.asarray(labels)
    sp = _spacing(spacing)
    if not min_volume_um3 >= 0:
        raise ParameterError(f"min volume must be >= 0 µm³, got {min_volume_um3!r}")
    voxel_volume = float(np.prod(sp))
    if arr.dtype == np.bool_:
        comp, _ = ndi.label(arr, structure=np.ones((3, 3, 3)))
        keep = np.bincount(comp.ravel()) * voxel_volume >= min_volume_um3
        keep[0] = False
        return np.asarray(keep[comp], dtype=bool)
    lab = _labels(arr)
    counts = np.bincount(lab.ravel())
    small = counts * voxel_volume < min_volume_um3
    small[0] = False
    out = lab.copy()
    out[small[lab]] = 0
    return out


def _check_radius(radius_um: float) -> None:
    if not radius_um > 0:
        raise ParameterError(f"radius must be positive µm, got {radius_um!r}")


def _padded_op(mask: npt.ArrayLike, fp: npt.NDArray[np.bool_], op: Any) -> npt.NDArray[np.bool_]:
    """``op(mask, structure=fp)`` on an edge-padded copy: the border continues the data,
    so objects touching the volume's border are not eroded by an implicit zero border."""
    m = np.asarray(mask, bool)
    pad = [(h // 2, h // 2) for h in fp.shape]
    res = op(np.pad(m, pad, mode="edge"), structure=fp)
    inner = tuple(slice(p, p + s) for (p, _), s in zip(pad, m.shape, strict=True))
    return np.asarray(res[inner], dtype=bool)


def binary_open(mask: npt.ArrayLike, radius_um: float, spacing: Spacing) -> npt.NDArray[np.bool_]:
    """Morphological opening with a physical ball (removes thin protrusions, specks)."""
    _check_radius(radius_um)
    return _padded_op(mask, ball_footprint(radius_um, spacing), ndi.binary_opening)


def binary_close(mask: npt.ArrayLike, radius_um: float, spacing: Spacing) -> npt.NDArray[np.bool_]:
    """Morphological closing with a physical ball (bridges gaps, smooths dents)."""
    _check_radius(radius_um)
    return _padded_op(mask, ball_footprint(radius_um, spacing), ndi.binary_closing)


def _per_label(labels: npt.ArrayLike, margin: Sequence[int], op: object) -> npt.NDArray[np.integer]:
    """Apply ``op(binary_crop) -> binary_crop`` to every label on its padded crop."""
    lab = _labels(labels)
    out = np.zeros_like(lab)
    slices = ndi.find_objects(lab)
    for i, sl in enumerate(slices):
        if sl is None:
            continue
        grown = tuple(
            slice(max(0, s.start - m), min(n, s.stop + m))
            for s, m, n in zip(sl, margin, lab.shape, strict=True)
        )
        res = op(lab[grown] == i + 1)  # type: ignore[operator]
        # Keep existing objects: a grown label only claims background.
        view = out[grown]
        view[res & (view == 0) & ((lab[grown] == 0) | (lab[grown] == i + 1))] = i + 1
    return out


def label_open(
    labels: npt.ArrayLike, radius_um: float, spacing: Spacing
) -> npt.NDArray[np.integer]:
    """Open every label separately (``binary_open`` on its crop); labels never merge."""
    _check_radius(radius_um)
    fp = ball_footprint(radius_um, spacing)
    margin = [h // 2 for h in fp.shape]
    return _per_label(labels, margin, lambda m: ndi.binary_opening(m, structure=fp))


def label_close(
    labels: npt.ArrayLike, radius_um: float, spacing: Spacing
) -> npt.NDArray[np.integer]:
    """Close every label separately on its crop; closed voxels only fill background."""
    _check_radius(radius_um)
    fp = ball_footprint(radius_um, spacing)
    margin = [2 * (h // 2) for h in fp.shape]

    def close(m: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        pad = [(h // 2, h // 2) for h in fp.shape]
        padded = np.pad(m, pad)
        res = ndi.binary_closing(padded, structure=fp)
        inner = tuple(slice(p, p + s) for (p, _), s in zip(pad, m.shape, strict=True))
        return np.asarray(res[inner], dtype=bool)

    return _per_label(labels, margin, close)


def fill_holes(labels: npt.ArrayLike) -> npt.NDArray[np.generic]:
    """Fill enclosed holes of a mask, or of every label of a label image separately.

    Uses ``scipy.ndimage.binary_fill_holes`` (holes are background components not
    connected to the border through 6-connected paths). A label only fills voxels that
    are background.
    """
    arr = np.asarray(labels)
    if arr.dtype == np.bool_:
        return np.asarray(ndi.binary_fill_holes(arr), dtype=bool)
    return _per_label(arr, (1, 1, 1), lambda m: ndi.binary_fill_holes(m))


def watershed_split(
    mask: npt.ArrayLike,
    spacing: Spacing,
    min_distance_um: float = 1.0,
    *,
    min_peak_um: float = 0.0,
) -> npt.NDArray[np.int32]:
    """Separate touching objects: watershed of the distance transform from its peaks.

    Parameters
    ----------
    mask : (z, y, x) bool array
    spacing : (3,) floats
    min_distance_um : float, default: 1.0
        Peaks (object centres) closer than this are merged: the physical ball used as
        the ``peak_local_max`` footprint. About the radius of the smallest object.
    min_peak_um : float, default: 0
        Ignore peaks whose distance to the background is below this (noise specks).

    Returns
    -------
    (z, y, x) int32 label image
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ParameterError(f"mask must be 3D, got {m.ndim} dimensions")
    sp = _spacing(spacing)
    labels, _ = _watershed_core(m, sp, min_distance_um, min_peak_um)
    return labels


def _flood_per_component(
    surface: npt.NDArray[np.floating],
    markers: npt.NDArray[np.integer],
    comp: npt.NDArray[np.integer],
) -> npt.NDArray[np.int64]:
    """``skimage.segmentation.watershed`` of ``surface`` from ``markers``, run separately
    on each connected component of ``comp`` (cropped to its bounding box).

    Flooding never crosses components, so this is the watershed of the whole array,
    except that ties (equal surface values reached at once, common on a distance
    transform) are broken only among the component's own voxels: skimage's priority
    queue breaks ties by its heap layout, which the other components would change. So
    the result of a component depends on that component alone, and a block that holds
    the whole component computes the same labels (the block-wise versions rely on it).
    """
    out = np.zeros(comp.shape, dtype=np.int64)
    for i, sl in enumerate(ndi.find_objects(comp)):
        if sl is None:
            continue
        own = comp[sl] == i + 1
        seeds = np.where(own, markers[sl], 0)
        if not seeds.any():
            continue
        ws = segmentation.watershed(surface[sl], seeds, mask=own)  # type: ignore[no-untyped-call]
        view = out[sl]
        view[own] = ws[own]
    return out


def _watershed_core(
    m: npt.NDArray[np.bool_],
    sp: npt.NDArray[np.float64],
    min_distance_um: float,
    min_peak_um: float,
    comp: npt.NDArray[np.integer] | None = None,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """``(labels, markers)``: the watershed of ``-EDT`` from its peaks, on one array.

    Markers are numbered component by component (components in
    ``scipy.ndimage.label`` order, markers in raster order within each), and an
    object's label is its marker's number. ``comp`` (the 6-connected components of
    ``m``) may be passed when already known.
    """
    dist = ndi.distance_transform_edt(m, sampling=sp)
    if comp is None:
        comp, _ = ndi.label(m)
    fp = ball_footprint(min_distance_um, sp)
    peaks = feature.peak_local_max(  # type: ignore[no-untyped-call]
        dist, footprint=fp, labels=comp, threshold_abs=min_peak_um, exclude_border=False
    )
    peak_mask = np.zeros(m.shape, bool)
    peak_mask[tuple(peaks.T)] = True
    # Plateaus (flat tops, e.g. between parallel walls) give several adjacent maxima:
    # connected peak voxels of one component form one marker.
    markers = np.zeros(m.shape, dtype=np.int32)
    n = 0
    for i, sl in enumerate(ndi.find_objects(comp)):
        if sl is None:
            continue
        own_peaks = peak_mask[sl] & (comp[sl] == i + 1)
        local, k = ndi.label(own_peaks, structure=np.ones((3, 3, 3)))
        view = markers[sl]
        view[own_peaks] = local[own_peaks] + n
        n += k
    out = _flood_per_component(-dist, markers, comp)
    return np.asarray(out, dtype=np.int32), markers


def region_grow(
    seeds: npt.ArrayLike,
    mask: npt.ArrayLike,
    spacing: Spacing,
    image: npt.ArrayLike | None = None,
) -> npt.NDArray[np.integer]:
    """Grow seed labels into a mask: each mask voxel joins the seed that reaches it first.

    Without an image, voxels are flooded in order of their physical distance to the
    nearest seed, only through the mask (a watershed of the seeds' distance
    transform), so regions meet half-way between seeds (each connected part of the mask
    is flooded on its own, see ``_flood_per_component``). With an
    image, voxels are flooded in order of intensity (``skimage.segmentation.watershed``
    on the image), i.e. classic seeded region growing. Mask voxels not connected to any
    seed stay 0.

    Parameters
    ----------
    seeds : (z, y, x) integer array
        Seed labels (0 = none).
    mask : (z, y, x) bool array
        Where the regions may grow.
    spacing : (3,) floats
    image : (z, y, x) array, optional
    """
    sd = _labels(seeds)
    m = np.asarray(mask, dtype=bool)
    if m.shape != sd.shape:
        raise ParameterError(f"mask shape {m.shape} differs from seeds shape {sd.shape}")
    sp = _spacing(spacing)
    if image is None:
        surface = ndi.distance_transform_edt(sd == 0, sampling=sp)
    else:
        surface = np.asarray(image, dtype=np.float64)
        if surface.shape != sd.shape:
            raise ParameterError(f"image shape {surface.shape} differs from seeds shape {sd.shape}")
    grow_mask = m | (sd > 0)
    comp, _ = ndi.label(grow_mask)  # 6-connected, as the watershed floods
    out = _flood_per_component(surface, sd, comp)
    out[~m & (sd == 0)] = 0
    return np.asarray(out, dtype=sd.dtype)
