"""Per-object features table in physical units (µm) for a 3D label image."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from analysis._checks import check_spacing as _check_spacing
from analysis.errors import ParameterError
from analysis.morphology._surface import SurfaceMethod, object_surface

__all__ = [
    "BASE_COLUMNS",
    "INTENSITY_COLUMNS",
    "PARENT_COLUMNS",
    "SHAPE_COLUMNS",
    "SUM_COLUMNS",
    "measure_boxes",
    "measure_masks",
    "measure_objects",
    "object_boxes",
]

log = logging.getLogger(__name__)

BASE_COLUMNS: tuple[str, ...] = (
    "label",
    "voxel_count",
    "volume_um3",
    "surface_area_um2",
    "surface_to_volume",
    "sphericity",
    "centroid_z_um",
    "centroid_y_um",
    "centroid_x_um",
    "bbox_min_z",
    "bbox_min_y",
    "bbox_min_x",
    "bbox_max_z",
    "bbox_max_y",
    "bbox_max_x",
    "equivalent_diameter_um",
    "axis_major_length_um",
    "axis_middle_length_um",
    "axis_minor_length_um",
)
"""Columns always present. ``bbox_*`` are voxel indices (min inclusive, max exclusive),
as in ``skimage.measure.regionprops``; everything ending in ``_um*`` is physical."""

INTENSITY_COLUMNS: tuple[str, ...] = ("mean_intensity", "min_intensity", "max_intensity")
"""Added when an intensity image is given."""

PARENT_COLUMNS: tuple[str, ...] = ("fraction_of_parent",)
"""Added when a parent mask or label image is given."""


def _check_labels(labels: npt.ArrayLike) -> npt.NDArray[np.integer]:
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise ParameterError(f"labels must be a 3D (z, y, x) array, got {arr.ndim} dimensions")
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ParameterError(f"labels must be an integer array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.size and int(arr.min()) < 0:
        raise ParameterError("labels must be non-negative (0 is background)")
    return arr


# Above this id, labels are renumbered 1..N first: find_objects and bincount allocate one
# entry per possible id, which sparse ids (e.g. neuron body ids ~1e9) would blow up.
_MAX_DIRECT_ID = 1_000_000


def _compact(
    lab: npt.NDArray[np.integer],
) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.int64] | None]:
    """Sequential labels and the map back to the original ids (None when unchanged)."""
    if lab.size == 0 or int(lab.max()) <= _MAX_DIRECT_ID:
        return lab, None
    ids, inverse = np.unique(lab, return_inverse=True)
    if ids[0] != 0:  # no background voxel: keep 0 free so ids start at 1
        ids = np.concatenate([[0], ids])
        inverse = inverse + 1
    return inverse.reshape(lab.shape).astype(np.int64), ids.astype(np.int64)


def _axis_lengths(cov: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Full axis lengths (major, middle, minor) of the ellipsoid with the same second moments.

    A solid ellipsoid with semi-axes a >= b >= c has covariance eigenvalues a²/5, b²/5,
    c²/5, so a full axis is ``2 * sqrt(5 * eigenvalue)``; this equals scikit-image's
    ``axis_major_length`` / ``axis_minor_length`` (written there via the inertia tensor).
    """
    ev = np.linalg.eigvalsh(cov)[::-1]
    return np.asarray(2.0 * np.sqrt(5.0 * np.clip(ev, 0.0, None)), dtype=np.float64)


SUM_COLUMNS: tuple[str, ...] = ("sum_z", "sum_y", "sum_x")
"""Added by :func:`measure_boxes` and :func:`measure_masks`: the exact integer sums of
the objects' voxel indices (z, y, x), in the coordinates of the image the boxes refer to."""

# The columns that need more than the voxel count, box and sums (marching cubes, moments).
SHAPE_COLUMNS = (
    "volume_um3",
    "surface_area_um2",
    "surface_to_volume",
    "sphericity",
    "equivalent_diameter_um",
    "axis_major_length_um",
    "axis_middle_length_um",
    "axis_minor_length_um",
)

Box = tuple[slice, slice, slice]


def _add_row(
    rows: dict[str, list[float]],
    lab_id: int,
    mask: npt.NDArray[np.bool_],
    box: Sequence[slice],
    sp: npt.NDArray[np.float64],
    origin: npt.NDArray[np.float64],
    voxel_volume: np.floating[Any],
    surface: bool,
    surface_method: SurfaceMethod,
    shape: bool = True,
) -> None:
    """Append one object's base columns (and its sums where ``rows`` has them).

    ``mask`` is the object in its bounding box ``box``; every caller measures the same
    crop the same way, so the numbers are the same whichever entry point gives it.
    """
    local = np.nonzero(mask)
    n = local[0].size
    start = np.array([s.start for s in box], dtype=np.int64)
    # Integer sums are exact; the centroid is then (n*start + S) * spacing / n, which
    # is what regionprops' mean of scaled coordinates gives when that mean is exact.
    coords = np.stack(local).astype(np.int64)
    s1 = coords.sum(axis=1)
    centroid = (n * start + s1) * sp / n + origin
    rows["label"].append(lab_id)
    rows["voxel_count"].append(n)
    for ax, name in enumerate("zyx"):
        rows[f"centroid_{name}_um"].append(float(centroid[ax]))
        rows[f"bbox_min_{name}"].append(box[ax].start)
        rows[f"bbox_max_{name}"].append(box[ax].stop)
    if "sum_z" in rows:
        for ax, name in enumerate("zyx"):
            rows[f"sum_{name}"].append(int(n * start[ax] + s1[ax]))
    if not shape:
        for col in SHAPE_COLUMNS:
            rows[col].append(float("nan"))
        return
    centred = (coords - (s1 / n)[:, None]) * sp[:, None]
    cov = centred @ centred.T / n
    axes = _axis_lengths(cov)
    volume = n * voxel_volume
    area, sphericity = object_surface(mask, sp, surface_method) if surface else (float("nan"),) * 2
    rows["volume_um3"].append(float(volume))
    rows["surface_area_um2"].append(area)
    rows["surface_to_volume"].append(float(area / volume))
    rows["sphericity"].append(sphericity)
    rows["equivalent_diameter_um"].append(float((6.0 * volume / np.pi) ** (1.0 / 3.0)))
    rows["axis_major_length_um"].append(float(axes[0]))
    rows["axis_middle_length_um"].append(float(axes[1]))
    rows["axis_minor_length_um"].append(float(axes[2]))


def object_boxes(labels: npt.ArrayLike) -> list[tuple[int, Box]]:
    """(label, bounding box) of every object of a 3D label image, by label.

    One ``scipy.ndimage.find_objects`` pass (on ids renumbered 1..N first when they are
    sparse and large). The boxes are what :func:`measure_objects` crops, so
    ``measure_boxes(labels, object_boxes(labels))`` gives its table.
    """
    lab = _check_labels(labels)
    if lab.size == 0:
        return []
    lab, original_ids = _compact(lab)
    found = ndi.find_objects(lab)
    out = []
    for i, sl in enumerate(found):
        if sl is not None:
            lab_id = i + 1 if original_ids is None else int(original_ids[i + 1])
            out.append((lab_id, (sl[0], sl[1], sl[2])))
    return out


def _table(rows: dict[str, list[float]], columns: list[str]) -> pd.DataFrame:
    int_cols = ["label", "voxel_count"] + [f"bbox_{m}_{a}" for m in ("min", "max") for a in "zyx"]
    int_cols += [c for c in SUM_COLUMNS if c in columns]
    return pd.DataFrame(rows, columns=columns).astype({c: np.int64 for c in int_cols})


def measure_boxes(
    labels: npt.ArrayLike,
    objects: Sequence[tuple[int, Sequence[slice]]],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    shape: Sequence[bool] | None = None,
    surface_method: SurfaceMethod = "smooth",
    origin_um: Sequence[float] = (0.0, 0.0, 0.0),
) -> pd.DataFrame:
    """Measure given objects of a label image, each on the bounding box given with it.

    For callers that already have the boxes (e.g. from :func:`object_boxes`, whose pass
    they also use for something else) or that hold a region of a larger image: the rows
    are those of :func:`measure_objects` for the same crops.

    Parameters
    ----------
    labels : (z, y, x) integer array
    objects : sequence of (label, (3,) slices)
        Each object's label and its bounding box in ``labels`` (a larger box gives the
        numbers of that crop, not of the object's own box).
    spacing : (3,) floats, default: (1, 1, 1)
    shape : sequence of bools, optional
        Per object: False leaves its shape columns (volume, surface and everything
        derived, axis lengths) NaN and skips their cost. Default: all True.
    surface_method : {"smooth", "binary"}, default: "smooth"
    origin_um : (3,) floats, default: (0, 0, 0)

    Returns
    -------
    pandas.DataFrame
        :data:`BASE_COLUMNS` + :data:`SUM_COLUMNS`, in the order of ``objects``.
    """
    lab = _check_labels(labels)
    sp = _check_spacing(spacing)
    origin = np.asarray(origin_um, dtype=np.float64)
    flags = [True] * len(objects) if shape is None else list(shape)
    if len(flags) != len(objects):
        raise ParameterError(f"shape has {len(flags)} flags for {len(objects)} objects")
    columns = [*BASE_COLUMNS, *SUM_COLUMNS]
    rows: dict[str, list[float]] = {c: [] for c in columns}
    voxel_volume = np.prod(sp)
    for (lab_id, box), full in zip(objects, flags, strict=True):
        sl = tuple(box)
        mask = lab[sl] == lab_id
        _add_row(rows, int(lab_id), mask, sl, sp, origin, voxel_volume, True, surface_method, full)
    return _table(rows, columns)


def measure_masks(
    objects: Sequence[tuple[int, Sequence[int], npt.NDArray[np.bool_]]],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    surface_method: SurfaceMethod = "smooth",
    origin_um: Sequence[float] = (0.0, 0.0, 0.0),
) -> pd.DataFrame:
    """Measure objects given as binary masks of their bounding boxes.

    Parameters
    ----------
    objects : sequence of (label, (3,) ints, (z, y, x) bool array)
        Each object's label, the corner of its bounding box (voxel indices) and its mask
        in that box: exactly ``labels[box] == label``, the crop :func:`measure_objects`
        measures (so the rows are its rows, bit for bit).
    spacing, surface_method, origin_um
        As :func:`measure_objects`.

    Returns
    -------
    pandas.DataFrame
        :data:`BASE_COLUMNS` + :data:`SUM_COLUMNS`, in the order of ``objects``.
    """
    sp = _check_spacing(spacing)
    origin = np.asarray(origin_um, dtype=np.float64)
    columns = [*BASE_COLUMNS, *SUM_COLUMNS]
    rows: dict[str, list[float]] = {c: [] for c in columns}
    voxel_volume = np.prod(sp)
    for lab_id, corner, mask in objects:
        m = np.asarray(mask, dtype=bool)
        if m.ndim != 3:
            raise ParameterError(f"object {lab_id}: mask must be 3D, got {m.ndim} dimensions")
        box = tuple(slice(int(a), int(a) + n) for a, n in zip(corner, m.shape, strict=True))
        _add_row(rows, int(lab_id), m, box, sp, origin, voxel_volume, True, surface_method)
    return _table(rows, columns)


def measure_objects(
    labels: npt.ArrayLike,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    image: npt.ArrayLike | None = None,
    parent: npt.ArrayLike | None = None,
    *,
    surface: bool = True,
    surface_method: SurfaceMethod = "smooth",
    origin_um: Sequence[float] = (0.0, 0.0, 0.0),
    progress: bool = False,
) -> pd.DataFrame:
    """Measure every labelled object: the morphology table, one row per label.

    Parameters
    ----------
    labels : (z, y, x) integer array
        Label image; 0 is background. Labels need not be consecutive.
    spacing : (3,) floats, default: (1, 1, 1)
        Voxel size (z, y, x) in µm; anisotropic sizes are handled throughout.
    image : (z, y, x) array, optional
        Intensity image: adds ``mean_intensity``, ``min_intensity``, ``max_intensity``.
    parent : (z, y, x) bool or integer array, optional
        Parent mask (e.g. the cell) or parent label image: adds ``fraction_of_parent``,
        the object's volume divided by the volume of the parent region that holds most
        of its voxels (NaN for objects outside every parent region).
    surface : bool, default: True
        Compute ``surface_area_um2`` (and the columns derived from it); NaN when False.
    surface_method : {"smooth", "binary"}, default: "smooth"
        See :func:`analysis.morphology.object_surface_area`.
    origin_um : (3,) floats, default: (0, 0, 0)
        World position of voxel (0, 0, 0), added to the centroids.
    progress : bool, default: False
        Show a tqdm progress bar over objects.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BASE_COLUMNS` (+ :data:`INTENSITY_COLUMNS` with ``image``,
        + :data:`PARENT_COLUMNS` with ``parent``), sorted by label. ``volume_um3`` and the
        centroids are the same numbers as ``skimage.measure.regionprops(labels,
        spacing=spacing)`` ``area`` and ``centroid``.

    Notes
    -----
    ``scipy.ndimage.find_objects`` gives every bounding box in one C pass; each object
    is then measured on its crop only, with integer moment sums (exact), so the cost
    scales with the objects' bounding boxes rather than (volume x objects).
    """
    lab = _check_labels(labels)
    sp = _check_spacing(spacing)
    origin = np.asarray(origin_um, dtype=np.float64)
    img = None if image is None else np.asarray(image)
    if img is not None and img.shape != lab.shape:
        raise ParameterError(f"image shape {img.shape} differs from labels shape {lab.shape}")
    par = None if parent is None else _check_labels(parent)
    if par is not None and par.shape != lab.shape:
        raise ParameterError(f"parent shape {par.shape} differs from labels shape {lab.shape}")

    columns = list(BASE_COLUMNS)
    if img is not None:
        columns += INTENSITY_COLUMNS
    if par is not None:
        columns += PARENT_COLUMNS
    if lab.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns})

    # Same expression as regionprops' ``_pixel_area`` so that volumes match bit for bit.
    voxel_volume = np.prod(sp)
    lab, original_ids = _compact(lab)
    parent_volumes: dict[int, float] = {}
    if par is not None:
        par, _ = _compact(par)
        counts = np.bincount(par.ravel())
        parent_volumes = {i: float(c * voxel_volume) for i, c in enumerate(counts) if c and i}

    slices = ndi.find_objects(lab)
    ids = [i + 1 for i, s in enumerate(slices) if s is not None]
    rows: dict[str, list[float]] = {c: [] for c in columns}
    for lab_id in tqdm(ids, desc="measure", unit="obj", disable=not progress):
        sl = slices[lab_id - 1]
        assert sl is not None
        mask = lab[sl] == lab_id
        _add_row(rows, lab_id, mask, sl, sp, origin, voxel_volume, surface, surface_method)
        n = rows["voxel_count"][-1]
        volume = n * voxel_volume
        if img is not None:
            values = img[sl][mask]
            rows["mean_intensity"].append(float(np.mean(values, dtype=np.float64)))
            rows["min_intensity"].append(float(values.min()))
            rows["max_intensity"].append(float(values.max()))
        if par is not None:
            under = np.bincount(par[sl][mask].ravel())
            under[0] = 0
            pid = int(np.argmax(under))
            frac = volume / parent_volumes[pid] if under[pid] > 0 else float("nan")
            rows["fraction_of_parent"].append(float(frac))

    table = pd.DataFrame(rows, columns=columns)
    if original_ids is not None:
        table["label"] = original_ids[table["label"].to_numpy(np.int64)]
    int_cols = ["label", "voxel_count"] + [f"bbox_{m}_{a}" for m in ("min", "max") for a in "zyx"]
    return table.astype({c: np.int64 for c in int_cols})
