"""Writing OME-Zarr images and label images with full pyramids, chunk by chunk.

Memory stays bounded by a few blocks, never by the volume: level 0 is copied
from the source one block (a row of whole chunks) at a time, and every coarser
level is computed from the level just written, read back block by block from
the store. Converting a procedural 1024³ uint8 source therefore needs a few
hundred MB at most (``tests/benchmarks/bench_write_memory.py``).

Downsampling halves every space axis longer than one voxel (``ceil(n / 2)``):

- images: the mean of each 2×2×2 block (:func:`skimage.measure.block_reduce`
  with :func:`numpy.mean`), rounded half-to-even for integer dtypes. An odd
  edge is padded by repeating the last voxel, so the edge voxel is the mean of
  the voxels that exist (zero padding, as in ``downscale_local_mean``, would
  darken the border). For even sizes this equals
  ``skimage.transform.downscale_local_mean``.
- labels: stride, i.e. ``level[k + 1] = level[k][::2, ::2, ::2]``. It never
  invents a label value (a mean would create ids that do not exist, and mode
  produces arbitrary winners at ties and costs several times more), it is exact
  and chunk-local, and it matches the nearest-neighbour rule ome-zarr-py uses
  for labels. Thin objects may vanish at coarse levels; coarse levels are for
  overview only.

The translation of a level records where its first voxel centre lies: a mean
over ``f`` voxels is centred ``(f - 1) / 2`` fine voxels in; a stride sample
sits on the first fine voxel.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import zarr
import zarr.storage
from skimage.measure import block_reduce
from tqdm.auto import tqdm

from analysis.errors import FormatError, ParameterError
from analysis.io._format import NgffFormat, format_for
from analysis.io._read import open_volume
from analysis.io._units import space_unit_to_um
from analysis.io._validate import validate_ngff
from analysis.volume import ArrayVolumeSource, Region, VolumeSource

__all__ = ["level_shapes", "write_labels", "write_ngff"]

log = logging.getLogger(__name__)

Method = Literal["mean", "stride"]
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
# Work per block, in bytes of float64 (the dtype of the mean). Small blocks bound peak
# memory and measured fastest too (cache-friendly; 512^3 uint8: 4.9 s at 2 MiB, 8.9 s at
# 64 MiB); blocks still grow to several chunks when chunks are small.
_BLOCK_BYTES = 2 * 2**20
_MAX_LEVELS = 16


def _workers() -> int:
    """Threads for blocks: NumPy and the zarr codecs release the GIL, and writes wait on
    the disk, so twice the cores helps (512^3 uint8 on 2 cores: 5.4 s with 1, 3.1 s with 4)."""
    return max(2, min(8, 2 * (os.cpu_count() or 1)))


def level_shapes(
    shape: Sequence[int],
    axes: Sequence[str],
    chunks: Sequence[int],
    n_levels: int | None = None,
) -> list[tuple[int, ...]]:
    """Shapes of a 2× pyramid: space axes halve (``ceil``) until length 1.

    Parameters
    ----------
    shape, chunks : ints, one per axis
    axes : str per axis, from ``"tczyx"``
    n_levels : int, optional
        Default: add levels until every space axis fits in one chunk.

    Raises
    ------
    ParameterError
        When ``n_levels`` < 1 or asks for more levels than halving can make.
    """
    space = [i for i, a in enumerate(axes) if a in "zyx"]
    shapes = [tuple(int(s) for s in shape)]
    if n_levels is not None and n_levels < 1:
        raise ParameterError(f"n_levels must be at least 1, got {n_levels}")
    while len(shapes) < (n_levels if n_levels is not None else _MAX_LEVELS):
        prev = shapes[-1]
        if n_levels is None and all(prev[i] <= chunks[i] for i in space):
            break
        nxt = tuple(-(-s // 2) if i in space else s for i, s in enumerate(prev))
        if nxt == prev:
            if n_levels is not None:
                raise ParameterError(
                    f"n_levels={n_levels} is too many for shape {tuple(shape)}: "
                    f"level {len(shapes)} would be 1 voxel in every space axis already"
                )
            break
        shapes.append(nxt)
    return shapes


def _blocks(
    shape: Sequence[int], chunks: Sequence[int], max_voxels: int
) -> Iterator[tuple[slice, ...]]:
    """Chunk-aligned blocks covering ``shape``: one chunk, widened along x then y."""
    block = list(chunks)
    for axis in (len(shape) - 1, len(shape) - 2):
        while block[axis] < shape[axis] and math.prod(block) * 2 <= max_voxels:
            block[axis] = min(block[axis] * 2, shape[axis])
    # keep blocks chunk aligned
    block = [max(c, (b // c) * c) for b, c in zip(block, chunks, strict=True)]
    ranges = [range(0, s, b) for s, b in zip(shape, block, strict=True)]
    for starts in np.ndindex(*(len(r) for r in ranges)):
        yield tuple(
            slice(r[i], min(r[i] + b, s))
            for r, i, b, s in zip(ranges, starts, block, shape, strict=True)
        )


def _downsample(
    data: npt.NDArray[Any], factors: Sequence[int], method: Method, dtype: np.dtype[Any]
) -> npt.NDArray[Any]:
    """Reduce ``data`` by ``factors`` (1 or 2 per axis) with ``method``."""
    if method == "stride":
        return np.ascontiguousarray(data[tuple(slice(None, None, f) for f in factors)])
    pad = [(0, (f - n % f) % f) for n, f in zip(data.shape, factors, strict=True)]
    if any(p[1] for p in pad):
        data = np.pad(data, pad, mode="edge")
    mean: npt.NDArray[np.float64] = np.asarray(
        block_reduce(data, tuple(factors), np.mean)  # type: ignore[no-untyped-call]
    )
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(dtype)
    if dtype == np.bool_:
        return mean >= 0.5
    return mean.astype(dtype)


def _as_source(
    source: VolumeSource | npt.ArrayLike, scale_um: Sequence[float] | None, what: str
) -> VolumeSource:
    if isinstance(source, VolumeSource):
        return source
    arr = np.asarray(source)
    if arr.ndim < 3:
        raise ParameterError(f"{what} must be at least 3D (z, y, x), got shape {arr.shape}")
    if scale_um is None:
        raise ParameterError(f"scale_um (voxel size z, y, x in µm) is needed to write {what}")
    return ArrayVolumeSource(arr, scale_um=scale_um)


def _check_axes(axes: Sequence[str]) -> None:
    order = ["tczyx".index(a) for a in axes if a in "tczyx"]
    if (
        len(order) != len(axes)
        or order != sorted(order)
        or len(set(order)) != len(order)
        or tuple(axes[-3:]) != ("z", "y", "x")
    ):
        raise ParameterError(
            f"axes {''.join(axes)!r} are not supported; write (t, c) z, y, x volumes"
        )


def _normalize_chunks(
    chunks: Sequence[int] | None, shape: Sequence[int], axes: Sequence[str]
) -> tuple[int, ...]:
    if chunks is None:
        chunks = [64 if a in "zyx" else 1 for a in axes]
    elif len(chunks) == 3 and len(axes) > 3:
        chunks = [1] * (len(axes) - 3) + list(chunks)
    if len(chunks) != len(axes) or any(int(c) < 1 for c in chunks):
        raise ParameterError(
            f"chunks {tuple(chunks)} must be positive, one per axis {''.join(axes)!r} "
            "(or three for z, y, x)"
        )
    return tuple(min(int(c), int(s)) or 1 for c, s in zip(chunks, shape, strict=True))


def _prepare_target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    target = Path(path).expanduser()
    if target.exists():
        if not overwrite:
            raise FormatError(f"{target} already exists (pass overwrite=True to replace it)")
        is_store = any((target / m).exists() for m in ("zarr.json", ".zgroup", ".zattrs"))
        if target.is_dir() and (is_store or not any(target.iterdir())):
            shutil.rmtree(target)
        else:
            # Never delete something that is not a zarr store.
            raise FormatError(f"{target} exists and is not a zarr store; refusing to overwrite")
    return target


def _create_array(
    group: zarr.Group,
    path: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype[Any],
    axes: Sequence[str],
    fmt: NgffFormat,
) -> zarr.Array[Any]:
    if fmt.zarr_format == 3:
        return group.create_array(
            path,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            dimension_names=tuple(axes),
        )
    # NGFF 0.4 requires "/" as the dimension separator of zarr v2 chunk keys.
    return group.create_array(
        path,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )


def _write_pyramid(
    group: zarr.Group,
    source: VolumeSource,
    fmt: NgffFormat,
    shapes: list[tuple[int, ...]],
    chunks: tuple[int, ...],
    method: Method,
    progress: bool,
    desc: str,
) -> list[tuple[int, ...]]:
    """Write levels ``s0``.. of ``source`` into ``group``; return per-level factors."""
    axes = source.axes
    dtype = np.dtype(source.dtype)
    arrays = [
        _create_array(
            group,
            f"s{k}",
            shp,
            tuple(min(c, s) for c, s in zip(chunks, shp, strict=True)),
            dtype,
            axes,
            fmt,
        )
        for k, shp in enumerate(shapes)
    ]
    budget = max(math.prod(chunks), _BLOCK_BYTES // max(1, 8 * dtype.itemsize))
    plans = [list(_blocks(shp, chunks, budget)) for shp in shapes]
    total = sum(len(p) for p in plans)
    factors: list[tuple[int, ...]] = [(1,) * len(axes)]
    read_lock = threading.Lock()

    def copy_block(block: Region) -> None:
        # Sources need not be thread-safe (file handles, slab caches): one read at a time;
        # encoding and writing the chunks runs in parallel.
        with read_lock:
            data = np.asarray(source.read(0, block), dtype=dtype)
        expected = tuple(s.stop - s.start for s in block)
        if data.shape != expected:
            raise ParameterError(f"source returned shape {data.shape} for region {expected}")
        arrays[0][block] = data

    def reduce_block(k: int, step: tuple[int, ...], block: Region) -> None:
        src: Region = tuple(
            slice(b.start * s, min(b.stop * s, p))
            for b, s, p in zip(block, step, shapes[k - 1], strict=True)
        )
        arrays[k][block] = _downsample(np.asarray(arrays[k - 1][src]), step, method, dtype)

    with (
        tqdm(total=total, desc=desc, unit="block", disable=not progress) as bar,
        ThreadPoolExecutor(max_workers=_workers()) as pool,
    ):
        try:
            for _ in pool.map(copy_block, plans[0]):
                bar.update()
            for k in range(1, len(shapes)):
                step = tuple(
                    2 if p != c else 1 for p, c in zip(shapes[k - 1], shapes[k], strict=True)
                )
                factors.append(tuple(f * s for f, s in zip(factors[-1], step, strict=True)))
                for _ in pool.map(functools.partial(reduce_block, k, step), plans[k]):
                    bar.update()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return factors


def _multiscale(
    name: str,
    axes: Sequence[str],
    units: Sequence[str | None],
    scale0: Sequence[float],
    trans0: Sequence[float],
    factors: list[tuple[int, ...]],
    method: Method,
) -> dict[str, Any]:
    """The NGFF ``multiscales[0]`` entry (scale/translation already in ``units``)."""
    datasets = []
    for k, f in enumerate(factors):
        scale = [float(s * fi) for s, fi in zip(scale0, f, strict=True)]
        if method == "mean":
            trans = [
                float(t + s * (fi - 1) / 2) for t, s, fi in zip(trans0, scale0, f, strict=True)
            ]
        else:
            trans = [float(t) for t in trans0]
        datasets.append(
            {
                "path": f"s{k}",
                "coordinateTransformations": [
                    {"type": "scale", "scale": scale},
                    {"type": "translation", "translation": trans},
                ],
            }
        )
    axes_md: list[dict[str, Any]] = []
    for a, u in zip(axes, units, strict=True):
        entry: dict[str, Any] = {"name": a, "type": _AXIS_TYPES[a]}
        if u is not None:
            entry["unit"] = u
        axes_md.append(entry)
    return {
        "name": name,
        "axes": axes_md,
        "datasets": datasets,
        "type": "mean" if method == "mean" else "stride",
        "metadata": {
            "description": "2x downsampling of z, y, x per level",
            "method": "skimage.measure.block_reduce(np.mean)" if method == "mean" else "stride",
        },
    }


def write_ngff(
    source: VolumeSource | npt.NDArray[Any],
    path: str | os.PathLike[str],
    *,
    version: Literal["0.4", "0.5"] = "0.5",
    scale_um: tuple[float, float, float] | None = None,
    unit: str = "micrometer",
    chunks: tuple[int, ...] | None = None,
    n_levels: int | None = None,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> None:
    """Write ``source`` as an OME-Zarr multiscale image with a full 2× mean pyramid.

    Parameters
    ----------
    source : VolumeSource or (z, y, x) / (t|c, z, y, x) / (t, c, z, y, x) array
        Only level 0 is read, block by block; coarser levels are computed.
    path : path-like
        The store folder to create (conventionally ``*.zarr``).
    version : {"0.4", "0.5"}, default: "0.5"
        0.4 writes zarr v2 (``.zattrs``), 0.5 zarr v3 (``zarr.json``, ``"ome"``).
    scale_um : (3,) floats, optional
        Voxel size (z, y, x) of level 0 in µm. Needed for a plain array;
        overrides the source's voxel size when given.
    unit : str, default: "micrometer"
        The NGFF space unit written to the metadata; values are converted from µm.
    chunks : ints, default: 64 for z, y, x and 1 for t, c
        One per axis, or three for z, y, x.
    n_levels : int, optional
        Default: until every space axis fits in one chunk.
    name : str, optional
        ``multiscales[0].name``; default the source's name.
    overwrite : bool, default: False
        Replace an existing store at ``path`` (never a folder that is not a store).
    progress : bool, default: False
        Show a tqdm progress bar.

    Raises
    ------
    ParameterError
        Bad axes, chunks, voxel size or level count.
    FormatError
        ``path`` exists (without ``overwrite``) or the unit is unknown.
    """
    fmt = format_for(version)
    src = _as_source(source, scale_um, "an image")
    axes = tuple(src.axes)
    _check_axes(axes)
    lev0 = src.levels[0]
    scale = list(lev0.scale)
    if scale_um is not None:
        if len(scale_um) != 3 or any(float(s) <= 0 for s in scale_um):
            raise ParameterError(f"scale_um must be three positive numbers, got {scale_um!r}")
        scale[-3:] = [float(s) for s in scale_um]
    per_um = space_unit_to_um(unit, "z, y, x")
    units = [unit if a in "zyx" else ("second" if a == "t" else None) for a in axes]
    scale0 = [s / per_um if a in "zyx" else s for s, a in zip(scale, axes, strict=True)]
    trans0 = [t / per_um if a in "zyx" else t for t, a in zip(lev0.translation, axes, strict=True)]
    ch = _normalize_chunks(chunks, lev0.shape, axes)
    shapes = level_shapes(lev0.shape, axes, ch, n_levels)
    target = _prepare_target(path, overwrite)
    group = zarr.create_group(store=zarr.storage.LocalStore(target), zarr_format=fmt.zarr_format)
    factors = _write_pyramid(group, src, fmt, shapes, ch, "mean", progress, "writing OME-Zarr")
    default_name = src.name if isinstance(source, VolumeSource) else target.name.split(".")[0]
    ms = _multiscale(name or default_name, axes, units, scale0, trans0, factors, "mean")
    attrs = fmt.wrap({"multiscales": [ms]})
    validate_ngff(attrs, "image", fmt.version)
    # Metadata last: a store interrupted while writing pixels is not a valid image.
    group.attrs.update(attrs)
    log.info("wrote %s (NGFF %s, %d levels)", target, fmt.version, len(shapes))


def write_labels(
    path: str | os.PathLike[str],
    name: str,
    source: VolumeSource | npt.NDArray[Any],
    *,
    chunks: tuple[int, ...] | None = None,
    colors: Mapping[int, Sequence[int]] | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> None:
    """Write a label image into ``path/labels/<name>`` of an existing OME-Zarr image.

    The labels get the image's NGFF version, voxel size, units and number of
    levels; coarser levels are made by stride (see the module docstring).

    Parameters
    ----------
    path : path-like
        The image store (written by :func:`write_ngff` or any NGFF writer).
    name : str
        Name of the label image (listed in ``labels/``'s ``labels``).
    source : VolumeSource or integer array
        Same space shape as the image's level 0; (z, y, x) or (t, z, y, x).
    chunks : ints, optional
        Default: the image's level-0 chunks for z, y, x.
    colors : mapping label value -> (r, g, b, a) ints 0..255, optional
        Written as ``image-label.colors``.
    progress, overwrite : bool, default: False

    Raises
    ------
    ParameterError
        Non-integer dtype, shape that does not match the image, bad name.
    FormatError
        The image cannot be read, or the label image exists (without ``overwrite``).
    """
    if not name or "/" in name or name in (".", ".."):
        raise ParameterError(f"label name {name!r} must be a non-empty name without '/'")
    image = open_volume(path)
    fmt = format_for(image.ngff_version)
    img_axes = image.axes
    if isinstance(source, VolumeSource):
        src = source
    else:
        arr = np.asarray(source)
        if arr.ndim == 3:
            arr_axes = "zyx"
        elif arr.ndim == 4:
            arr_axes = "tzyx" if "t" in img_axes else "czyx"
        else:
            arr_axes = "tczyx"[-arr.ndim :] if arr.ndim <= 5 else ""
        if len(arr_axes) != arr.ndim:
            raise ParameterError(f"label array must be 3D to 5D, got shape {arr.shape}")
        src = ArrayVolumeSource(arr, scale_um=image.levels[0].scale_um, axes=arr_axes, name=name)
    dtype = np.dtype(src.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        raise ParameterError(f"labels must have an integer dtype, got {dtype}")
    axes = tuple(src.axes)
    _check_axes(axes)
    lev0 = src.levels[0]
    img0 = image.levels[0]
    img_shape = dict(zip(img_axes, img0.shape, strict=True))
    for a, s in zip(axes, lev0.shape, strict=True):
        if a in img_shape and img_shape[a] != s and a != "c":
            raise ParameterError(
                f"label image {name!r} has shape {lev0.shape} ({''.join(axes)}) but the image "
                f"has {img0.shape} ({''.join(img_axes)}); axis {a} differs"
            )
    # Physical placement is the image's: scale and translation of level 0 in its units.
    img_scale = dict(zip(img_axes, img0.scale, strict=True))
    img_trans = dict(zip(img_axes, img0.translation, strict=True))
    img_units = dict(zip(img_axes, image.units, strict=True))
    units = [img_units.get(a) if a != "c" else None for a in axes]
    per = [
        space_unit_to_um(u, a) if (a in "zyx" and u) else 1.0
        for a, u in zip(axes, units, strict=True)
    ]
    scale0 = [img_scale.get(a, 1.0) / p for a, p in zip(axes, per, strict=True)]
    trans0 = [img_trans.get(a, 0.0) / p for a, p in zip(axes, per, strict=True)]
    img_chunks = dict(zip(img_axes, img0.chunks, strict=True))
    default_chunks = tuple(img_chunks.get(a, 1) if a in "zyx" else 1 for a in axes)
    ch = _normalize_chunks(chunks if chunks is not None else default_chunks, lev0.shape, axes)
    shapes = level_shapes(lev0.shape, axes, ch, len(image.levels))

    root = zarr.open_group(zarr.storage.LocalStore(Path(path).expanduser()), mode="r+")
    labels_group = root.require_group("labels")
    if name in labels_group:
        if not overwrite:
            raise FormatError(
                f"label image {name!r} already exists in {path} (pass overwrite=True)"
            )
        del labels_group[name]
    group = labels_group.create_group(name)
    factors = _write_pyramid(
        group, src, fmt, shapes, ch, "stride", progress, f"writing labels {name}"
    )
    ms = _multiscale(name, axes, units, scale0, trans0, factors, "stride")
    image_label: dict[str, Any] = {"source": {"image": "../../"}}
    if colors:
        image_label["colors"] = [
            {"label-value": int(v), "rgba": [int(c) for c in rgba]} for v, rgba in colors.items()
        ]
    attrs = fmt.wrap({"multiscales": [ms], "image-label": image_label})
    validate_ngff(attrs, "image", fmt.version)
    validate_ngff(attrs, "label", fmt.version)
    group.attrs.update(attrs)
    listing = list(image.label_names)
    if name not in listing:
        listing.append(name)
    labels_group.attrs.update(fmt.wrap({"labels": listing}))
    log.info("wrote label image %s into %s", name, path)
