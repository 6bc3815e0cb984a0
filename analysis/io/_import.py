"""Importers: TIFF stacks, folders of slices, ``.npy`` and HDF5 as lazy volumes.

Every importer returns a single-level :class:`~analysis.volume.VolumeSource`
whose ``read(0, region)`` touches only what the region needs, so that
:func:`analysis.io.write_ngff` can convert a volume larger than memory by
pulling chunk-sized regions:

- a multi-page, ImageJ or OME TIFF goes through tifffile's zarr store, which
  decodes only the pages (and strips or tiles) a region overlaps;
- a folder of PNG or TIFF slices decodes only the slices a region needs and
  keeps the most recent ones in a small LRU cache (a writer walks all
  ``(y, x)`` chunks of one ``z`` slab before moving on);
- ``.npy`` is memory-mapped; an HDF5 dataset (``file.h5:dataset``) is read
  with h5py slicing; a gzip'd HDF5 file (``file.h5.gz:dataset``) is first
  decompressed to a temporary file, removed again when the source is closed or
  garbage-collected.

:class:`LookupVolumeSource` relabels another source through an ``(N, 2)``
table (old id, new id), chunk by chunk; it turns the supervoxels of the
Janelia FIB-SEM ground truth into neuron bodies through its ``transforms``.

:func:`open_input` picks the importer from a spec string; to support a new
format, write a ``_SingleLevelSource`` subclass and add a branch there.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import shutil
import tempfile
import threading
import tokenize
import warnings
import weakref
import xml.etree.ElementTree as ET
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from analysis.errors import ChunkError, FormatError, ParameterError
from analysis.io._units import space_unit_to_um
from analysis.volume import (
    Level,
    Region,
    SourceMetadata,
    VolumeSource,
    normalize_region,
    read_many,
)

__all__ = [
    "Hdf5Source",
    "LookupVolumeSource",
    "NpySource",
    "SliceStackSource",
    "TiffStackSource",
    "import_hdf5",
    "import_npy",
    "import_slices",
    "import_tiff",
    "open_input",
    "read_lookup_table",
    "split_hdf5_spec",
]

log = logging.getLogger(__name__)

SLICE_SUFFIXES = (".png", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_HDF5_SPEC = re.compile(
    r"^(?P<path>.*?\.(?:h5|hdf5|hdf|he5)(?:\.gz)?)(?::(?P<dataset>[^:]*))?$", re.IGNORECASE
)
DEFAULT_CACHE_BYTES = 512 * 2**20


def _unit_to_um(unit: str) -> float | None:
    """Micrometres per ``unit`` (``"nm"``, ``"micron"``, ``"µm"``, ...); None if unknown."""
    try:
        # ImageJ may store the micro sign escaped as the text "\\u00B5m".
        return space_unit_to_um(unit.strip().replace("\\u00B5", "\u00b5"))
    except FormatError:  # e.g. ImageJ's "pixel": the file has no physical size
        return None


_quiet_lock = threading.Lock()
_quiet_depth: dict[str, tuple[int, int]] = {}  # logger name -> (blocks inside, saved level)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's logger for the block (its findings become our one-line error).

    Counted under a lock: reader threads enter and leave in any order, and the level
    comes back when the last one leaves.
    """
    logger = logging.getLogger(name)
    with _quiet_lock:
        depth, saved = _quiet_depth.get(name, (0, logger.level))
        if depth == 0:
            saved = logger.level
            logger.setLevel(logging.CRITICAL)
        _quiet_depth[name] = (depth + 1, saved)
    try:
        yield
    finally:
        with _quiet_lock:
            depth, saved = _quiet_depth[name]
            if depth == 1:
                del _quiet_depth[name]
                logger.setLevel(saved)
            else:
                _quiet_depth[name] = (depth - 1, saved)


def _natural_key(path: Path) -> list[Any]:
    # "iso.2600.png" < "iso.10000.png" and "z9" < "z10": compare digit runs as numbers.
    parts = re.split(r"(\d+)", path.name)
    return [int(p) if p.isdigit() else p.lower() for p in parts]


class _SingleLevelSource(SourceMetadata):
    """Base for imported volumes: one level, axes (z, y, x), a lazy ``_read_region``.

    ``voxel_size_um`` is the voxel size stored in the file, or None when the file
    does not say; ``Level.scale`` then falls back to (1, 1, 1) µm.
    """

    def __init__(
        self,
        name: str,
        shape: tuple[int, int, int],
        dtype: np.dtype[Any],
        chunks: tuple[int, int, int],
        voxel_size_um: tuple[float, float, float] | None = None,
    ) -> None:
        if any(int(n) < 1 for n in shape):
            raise FormatError(f"{name} is empty (shape {tuple(int(n) for n in shape)})")
        self._name = name
        self._dtype = np.dtype(dtype)
        self.voxel_size_um = voxel_size_um
        scale = voxel_size_um if voxel_size_um is not None else (1.0, 1.0, 1.0)
        chunks = tuple(max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))  # type: ignore[assignment]
        self._levels = (Level("0", tuple(shape), chunks, tuple(scale), (0.0, 0.0, 0.0)),)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape (z, y, x) of the volume."""
        return self._levels[0].shape

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[Any]:
        """Read ``region`` of level 0 (the only level) as a new (z, y, x) array."""
        if level != 0:
            raise ParameterError(f"level {level} does not exist (an imported volume has only 0)")
        reg = normalize_region(region, self.shape)
        out = self._read_region(reg)
        expected = tuple(s.stop - s.start for s in reg)
        if out.shape != expected:  # a bug in an importer, not a user error
            raise AssertionError(f"{type(self).__name__} read {out.shape}, expected {expected}")
        return out

    def _read_region(self, region: tuple[slice, ...]) -> npt.NDArray[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (idempotent)."""

    def __enter__(self) -> _SingleLevelSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, shape={self.shape}, dtype={self._dtype})"


# --------------------------------------------------------------------------- TIFF stacks


def _ome_voxel_size(xml: str) -> tuple[float, float, float] | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    sizes = []
    for ax in "ZYX":
        value = pixels.get(f"PhysicalSize{ax}")
        # OME's default unit for physical sizes is the micrometre.
        factor = _unit_to_um(pixels.get(f"PhysicalSize{ax}Unit", "\u00b5m"))
        if value is None or factor is None:
            return None
        sizes.append(float(value) * factor)
    return (sizes[0], sizes[1], sizes[2])


def _imagej_voxel_size(tif: Any) -> tuple[float, float, float] | None:
    meta = tif.imagej_metadata or {}
    factor = _unit_to_um(str(meta.get("unit", "")))
    page = tif.pages.first
    if factor is None or "spacing" not in meta:
        return None
    sizes = []
    for tag in ("YResolution", "XResolution"):
        res = page.tags.get(tag)
        if res is None:
            return None
        num, den = res.value  # pixels per unit as a rational
        if num == 0:
            return None
        sizes.append(den / num * factor)
    return (float(meta["spacing"]) * factor, sizes[0], sizes[1])


class TiffStackSource(_SingleLevelSource):
    """A multi-page, ImageJ or OME TIFF as a lazy (z, y, x) volume.

    Reads through tifffile's zarr store (``TiffPageSeries.aszarr``), which decodes only
    the pages and strips/tiles a region overlaps. Singleton axes are dropped; exactly
    one non-singleton axis besides Y and X becomes z (a single page gives z = 1).
    The voxel size comes from OME ``PhysicalSize*`` or ImageJ ``spacing`` and
    resolution tags when present.

    Parameters
    ----------
    path : path to the TIFF file
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import tifffile
        import zarr

        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(f"input not found: {self.path}")
        try:
            # tifffile logs what it finds wrong with a damaged file; the error says it
            with _quiet_logger("tifffile"):
                tif = tifffile.TiffFile(self.path)
                tif.series  # noqa: B018 - parsed here, where its warnings are quiet
        except (tifffile.TiffFileError, ValueError) as exc:
            raise FormatError(f"not a readable TIFF file: {self.path} ({exc})") from exc
        self._tif = tif
        try:
            if not tif.series:
                raise FormatError(f"TIFF file has no image series: {self.path}")
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            stack = [
                i
                for i, (a, n) in enumerate(zip(axes, shape, strict=True))
                if a not in "YX" and n > 1
            ]
            if any(axes[i] == "S" for i in stack):
                raise FormatError(
                    f"TIFF has {shape[axes.index('S')]} samples per pixel (colour): {self.path}; "
                    "convert it to single-channel grey values first"
                )
            if len(stack) > 1 or "Y" not in axes or "X" not in axes:
                raise FormatError(
                    f"TIFF series has axes {axes} with shape {shape}: {self.path}; "
                    "only single-channel 3D stacks (z, y, x) are supported"
                )
            self._arr = zarr.open_array(series.aszarr(level=0), mode="r")
        except BaseException:
            tif.close()
            raise
        self._tiff_axes = axes
        self._stack_axis = stack[0] if stack else None
        iy, ix = axes.index("Y"), axes.index("X")
        nz = shape[self._stack_axis] if self._stack_axis is not None else 1
        chunks = self._arr.chunks
        cz = chunks[self._stack_axis] if self._stack_axis is not None else 1
        voxel = None
        if tif.is_ome and tif.ome_metadata:
            voxel = _ome_voxel_size(tif.ome_metadata)
        elif tif.is_imagej:
            voxel = _imagej_voxel_size(tif)
        super().__init__(
            self.path.name,
            (int(nz), int(shape[iy]), int(shape[ix])),
            series.dtype,
            (int(cz), int(chunks[iy]), int(chunks[ix])),
            voxel,
        )
        self._finalizer = weakref.finalize(self, tif.close)

    def _read_region(self, region: tuple[slice, ...]) -> npt.NDArray[Any]:
        zs, ys, xs = region
        index: list[slice | int] = []
        for i, ax in enumerate(self._tiff_axes):
            if i == self._stack_axis:
                index.append(zs)
            elif ax == "Y":
                index.append(ys)
            elif ax == "X":
                index.append(xs)
            else:
                index.append(0)
        import tifffile

        try:
            with _quiet_logger("tifffile"):
                out = np.asarray(self._arr[tuple(index)])
        except (tifffile.TiffFileError, ValueError, OSError) as exc:  # a truncated strip
            raise ChunkError(f"cannot read {self.path} (damaged TIFF: {exc})") from exc
        if self._stack_axis is None:
            out = out[np.newaxis][zs]  # a single page: z is (0, 1)
        return out

    def close(self) -> None:
        self._finalizer()


def import_tiff(path: str | os.PathLike[str]) -> TiffStackSource:
    """Open a multi-page / ImageJ / OME TIFF stack lazily. See :class:`TiffStackSource`."""
    return TiffStackSource(path)


# --------------------------------------------------------------------------- slice folders


def _slice_header(path: Path) -> tuple[tuple[int, ...], str]:
    """(shape, pixel-kind) of one 2D slice without decoding its pixels."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                return tuple(int(s) for s in page.shape), str(np.dtype(page.dtype))
        except (tifffile.TiffFileError, ValueError) as exc:
            raise FormatError(f"not a readable TIFF slice: {path} ({exc})") from exc
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its pixel limit and raises above: refuse both
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return (im.size[1], im.size[0]), im.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FormatError(f"image slice {path} is too large to decode ({exc})") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise FormatError(f"not a readable image slice: {path} ({exc})") from exc


def _decode_slice(path: Path) -> npt.NDArray[Any]:
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            arr = np.asarray(tifffile.imread(path, key=0))
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im)
    except (OSError, ValueError) as exc:
        raise FormatError(f"cannot decode slice {path} ({exc})") from exc
    return arr


class SliceStackSource(_SingleLevelSource):
    """A sequence of 2D image files (PNG or TIFF), one per z, as a lazy volume.

    All headers are checked up front (same size and pixel type, else a
    :class:`FormatError` naming the odd file); pixels are decoded only when a
    region needs the slice, and the most recent slices stay in an LRU cache of
    ``cache_bytes``, grown to hold the deepest region read so far (so a slab of
    slices is decoded once however a writer tiles it in y and x).

    Parameters
    ----------
    files : sequence of paths, in z order
    name : str, default: the parent folder's name
    cache_bytes : int, default: 512 MiB
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        name: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.files = tuple(Path(f) for f in files)
        if not self.files:
            raise FormatError("no image slices given")
        first = self.files[0]
        shape0, kind0 = _slice_header(first)
        for f in self.files[1:]:
            shape, kind = _slice_header(f)
            if shape != shape0:
                raise FormatError(f"slice {f} has shape {shape}, but {first.name} has {shape0}")
            if kind != kind0:
                raise FormatError(f"slice {f} has pixel type {kind}, but {first.name} has {kind0}")
        sample = _decode_slice(first)
        if sample.ndim != 2:
            raise FormatError(
                f"slice {first} has shape {sample.shape}; only single-channel (grey) slices "
                "are supported"
            )
        self._cache: OrderedDict[int, npt.NDArray[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = max(1, int(cache_bytes) // max(1, sample.nbytes))
        super().__init__(
            name if name is not None else first.parent.name,
            (len(self.files), int(sample.shape[0]), int(sample.shape[1])),
            sample.dtype,
            (1, int(sample.shape[0]), int(sample.shape[1])),
        )
        self._put(0, sample)

    def _put(self, z: int, arr: npt.NDArray[Any]) -> None:
        with self._lock:
            self._cache[z] = arr
            self._cache.move_to_end(z)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)

    def plane(self, z: int) -> npt.NDArray[Any]:
        """The decoded slice ``z``, shape (y, x) (read-only, possibly cached)."""
        with self._lock:
            hit = self._cache.get(z)
            if hit is not None:
                self._cache.move_to_end(z)
                return hit
        # Decode outside the lock so other threads can hit the cache meanwhile.
        arr = _decode_slice(self.files[z])
        if arr.shape != self.shape[1:] or arr.dtype != self.dtype:
            raise FormatError(
                f"slice {self.files[z]} decodes to {arr.shape} {arr.dtype}, "
                f"expected {self.shape[1:]} {self.dtype}"
            )
        arr.flags.writeable = False
        self._put(z, arr)
        return arr

    def _read_region(self, region: tuple[slice, ...]) -> npt.NDArray[Any]:
        zs, ys, xs = region
        with self._lock:
            # A writer walks every (y, x) block of a z slab before the next slab, so keep
            # at least one slab's slices even above the byte budget: else each slice would
            # be decoded once per block (PNG cannot be decoded partially).
            self._capacity = max(self._capacity, zs.stop - zs.start)
        out = np.empty(
            (zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), dtype=self.dtype
        )
        for i, z in enumerate(range(zs.start, zs.stop)):
            out[i] = self.plane(z)[ys, xs]
        return out

    def close(self) -> None:
        with self._lock:
            self._cache.clear()


def import_slices(
    folder_or_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> SliceStackSource:
    """Open a folder of PNG or TIFF slices (or a glob pattern, or a list of files).

    Files are ordered by natural sort of their names (``iso.2600.png`` ...
    ``iso.2849.png``; ``z9`` before ``z10``). Hidden files and other suffixes are
    ignored; a folder mixing PNG and TIFF slices is an error.
    """
    name: str | None = None
    if isinstance(folder_or_files, (str, os.PathLike)):
        spec = os.fspath(folder_or_files)
        path = Path(spec)
        if any(ch in spec for ch in "*?["):
            files = [p for p in path.parent.glob(path.name) if p.is_file()]
            name = path.parent.name
            where = spec
        elif path.is_dir():
            files = [
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SLICE_SUFFIXES
            ]
            name = path.name
            where = str(path)
        elif path.is_file():
            files = [path]
            name = path.stem
            where = str(path)
        else:
            raise FormatError(f"input not found: {spec}")
        kinds = {".tif" if p.suffix.lower() == ".tiff" else p.suffix.lower() for p in files}
        if len(kinds) > 1:
            raise FormatError(
                f"{where} mixes slice types {sorted(kinds)}; keep one kind per folder"
            )
        if not files:
            raise FormatError(f"no PNG or TIFF slices found in {where}")
        files.sort(key=_natural_key)
    else:
        files = [Path(f) for f in folder_or_files]
    return SliceStackSource(files, name=name, cache_bytes=cache_bytes)


# --------------------------------------------------------------------------- NumPy


class NpySource(_SingleLevelSource):
    """A ``.npy`` file, memory-mapped (``np.load(mmap_mode="r")``); 2D gives z = 1."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(f"input not found: {self.path}")
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
            # a damaged header is parsed as Python literals: SyntaxError, TokenError
            raise FormatError(f"not a readable .npy file: {self.path} ({exc})") from exc
        if not isinstance(arr, np.ndarray):
            raise FormatError(f"not a single-array .npy file: {self.path}")
        if arr.dtype.kind not in "biuf":
            raise FormatError(f"{self.path} holds {arr.dtype} data; need integers or floats")
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim != 3:
            raise FormatError(f"{self.path} holds a {arr.ndim}D array {arr.shape}; need 2D or 3D")
        self._arr = arr
        chunks = (1, arr.shape[1], arr.shape[2]) if arr.flags.c_contiguous else arr.shape
        super().__init__(self.path.stem, arr.shape, arr.dtype, chunks)

    def _read_region(self, region: tuple[slice, ...]) -> npt.NDArray[Any]:
        return np.array(self._arr[region])

    def close(self) -> None:
        mm = getattr(self._arr, "_mmap", None)
        self._arr = np.empty((0, 0, 0), self._arr.dtype)
        if mm is not None:
            mm.close()


def import_npy(path: str | os.PathLike[str]) -> NpySource:
    """Open a ``.npy`` file lazily (memory-mapped). See :class:`NpySource`."""
    return NpySource(path)


# --------------------------------------------------------------------------- HDF5 (+ gzip)


def split_hdf5_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None] | None:
    """Split ``"file.h5:dataset"`` into (path, dataset); None when ``spec`` is no HDF5 spec.

    Recognised suffixes: .h5, .hdf5, .hdf, .he5, each optionally gzip'd (``.gz``).
    The dataset part may be empty or absent (then the file must hold one array).
    """
    match = _HDF5_SPEC.match(os.fspath(spec))
    if match is None:
        return None
    return Path(match["path"]), (match["dataset"] or None)


class _Gunzipped:
    """A gzip file decompressed to a temporary file, deleted by ``release()`` or at exit.

    One decompression is shared by all sources opened from the same file (the medulla's
    ``stack`` and ``transforms`` live in one ``.h5.gz``), with a reference count.
    """

    _lock = threading.Lock()
    _open: dict[tuple[str, int, int], _Gunzipped] = {}

    def __init__(self, key: tuple[str, int, int], path: Path, tmpdir: Path) -> None:
        self.key, self.path, self.tmpdir, self.refs = key, path, tmpdir, 0
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(tmpdir), True)

    @classmethod
    def acquire(cls, gz_path: Path, cache_dir: str | os.PathLike[str] | None = None) -> _Gunzipped:
        st = gz_path.stat()
        key = (str(gz_path.resolve()), st.st_mtime_ns, st.st_size)
        with cls._lock:
            entry = cls._open.get(key)
            if entry is None:
                entry = cls._decompress(key, gz_path, cache_dir)
                cls._open[key] = entry
            entry.refs += 1
            return entry

    @classmethod
    def _decompress(
        cls, key: tuple[str, int, int], gz_path: Path, cache_dir: str | os.PathLike[str] | None
    ) -> _Gunzipped:
        base = cache_dir if cache_dir is not None else os.environ.get("VRSCOPE_CACHE_DIR")
        if base is not None:
            Path(base).mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix="vrscope-gunzip-", dir=base))
        target = tmpdir / gz_path.name[: -len(".gz")]
        log.info("decompressing %s to %s", gz_path, target)
        try:
            with gzip.open(gz_path, "rb") as src, open(target, "wb") as dst:
                _copy_hdf5_from_gzip(src, dst, gz_path, tmpdir)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise FormatError(f"corrupt gzip file {gz_path}: {exc}") from exc
        except BaseException:
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise
        return cls(key, target, tmpdir)

    def release(self) -> None:
        with self._lock:
            self.refs -= 1
            if self.refs > 0:
                return
            self._open.pop(self.key, None)
        self._finalizer()


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _copy_hdf5_from_gzip(src: Any, dst: Any, gz_path: Path, tmpdir: Path) -> None:
    """Inflate ``src`` into ``dst``, refusing what is not HDF5 before inflating the rest.

    A small gzip can inflate to gigabytes (a 2 MB file of zeros to 2 GiB): the HDF5
    signature (at 0, 512, 1024, ... bytes, after an optional user block) must be in the
    first block, and the inflated size must leave 256 MiB free where it is written.
    """
    block = 1 << 22
    first = src.read(block)
    offsets = [0] + [512 << k for k in range(14)]
    if not any(first[o : o + 8] == _HDF5_SIGNATURE for o in offsets):
        raise FormatError(f"{gz_path} is not an HDF5 file (no HDF5 signature where it starts)")
    budget = shutil.disk_usage(tmpdir).free - (256 << 20)
    written = 0
    data = first
    while data:
        written += len(data)
        if written > budget:
            raise FormatError(
                f"{gz_path} inflates to more than the {budget >> 20} MiB free in {tmpdir.parent}"
                " (set VRSCOPE_CACHE_DIR to a larger disk)"
            )
        dst.write(data)
        data = src.read(block)


def _dataset_names(h5file: Any) -> list[str]:
    import h5py

    names: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            names.append(name)

    h5file.visititems(visit)
    return names


class Hdf5Source(_SingleLevelSource):
    """An HDF5 dataset (2D or 3D, z y x) read lazily with h5py slicing.

    A ``.gz`` file is decompressed to a temporary file first (HDF5 needs random
    access), shared between sources of the same file and deleted on ``close()``.
    The voxel size comes from an ``element_size_um`` attribute (ilastik, Fiji's
    HDF5 plugin) when present.

    Parameters
    ----------
    path : path to the ``.h5`` (or ``.h5.gz``) file
    dataset : str, default: the only dataset in the file
    cache_dir : folder for the decompressed copy, default: ``$VRSCOPE_CACHE_DIR`` or the
        system temporary folder
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        dataset: str | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(f"input not found: {self.path}")
        self._gz = _Gunzipped.acquire(self.path, cache_dir) if self.path.suffix == ".gz" else None
        try:
            local = self._gz.path if self._gz is not None else self.path
            try:
                self._file = h5py.File(local, "r")
            except OSError as exc:
                raise FormatError(f"not an HDF5 file: {self.path} ({exc})") from exc
            try:
                self._dataset = self._find(dataset)
            except BaseException:
                self._file.close()
                raise
        except BaseException:
            if self._gz is not None:
                self._gz.release()
            raise
        ds = self._dataset
        shape = tuple(int(s) for s in ds.shape)
        if len(shape) == 2:
            shape = (1, *shape)
        chunks = tuple(ds.chunks) if ds.chunks is not None else (1, *shape[1:])
        if len(chunks) == 2:
            chunks = (1, *chunks)
        voxel = None
        if "element_size_um" in ds.attrs:
            size = np.asarray(ds.attrs["element_size_um"], dtype=float).ravel()
            if size.size == 3 and (size > 0).all():
                voxel = (float(size[0]), float(size[1]), float(size[2]))
        self.dataset = ds.name
        super().__init__(
            f"{self.path.name}:{ds.name.lstrip('/')}",
            (shape[0], shape[1], shape[2]),
            ds.dtype,
            (int(chunks[0]), int(chunks[1]), int(chunks[2])),
            voxel,
        )
        self._closed = False

    def _find(self, dataset: str | None) -> Any:
        import h5py

        names = _dataset_names(self._file)
        where = f"{self.path}:{dataset}" if dataset else str(self.path)
        if dataset is None:
            arrays = [n for n in names if self._file[n].ndim in (2, 3)]
            if len(arrays) != 1:
                raise FormatError(
                    f"{self.path} holds datasets {names or '(none)'}; name one as FILE.h5:DATASET"
                )
            dataset = arrays[0]
        obj = self._file.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            raise FormatError(
                f"no dataset {dataset!r} in {self.path}; it holds {names or '(none)'}"
            )
        if obj.ndim not in (2, 3):
            raise FormatError(f"{where} has shape {obj.shape}; need a 2D or 3D (z, y, x) array")
        if obj.dtype.kind not in "biuf":
            raise FormatError(f"{where} holds {obj.dtype} data; need integers or floats")
        return obj

    def _read_region(self, region: tuple[slice, ...]) -> npt.NDArray[Any]:
        if self._closed:
            raise ParameterError(f"{self.name} is closed")
        if self._dataset.ndim == 2:
            return np.asarray(self._dataset[region[1:]])[np.newaxis][region[0]]
        return np.asarray(self._dataset[region])

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._file.close()
        if self._gz is not None:
            self._gz.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finaliser (interpreter shutdown)
            pass


def import_hdf5(
    path: str | os.PathLike[str],
    dataset: str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Hdf5Source:
    """Open an HDF5 dataset (also inside a ``.h5.gz``) lazily. See :class:`Hdf5Source`."""
    return Hdf5Source(path, dataset, cache_dir=cache_dir)


# --------------------------------------------------------------------------- lookup tables


def read_lookup_table(spec: str | os.PathLike[str]) -> npt.NDArray[np.int64]:
    """Read an ``(N, 2)`` integer relabelling table: (old id, new id) per row.

    ``spec`` is an HDF5 dataset (``file.h5:transforms``, ``.h5.gz`` too), a ``.npy``
    file, or a CSV / whitespace-separated text file (``#`` comments allowed).

    Returns
    -------
    table : (N, 2) int64 array
    """
    h5 = split_hdf5_spec(spec)
    path = Path(os.fspath(spec)) if h5 is None else h5[0]
    if not path.is_file():
        raise FormatError(f"lookup table not found: {path}")
    if h5 is not None:
        # An (N, 2) table is a 2D dataset, so Hdf5Source's opening and errors apply.
        with Hdf5Source(h5[0], h5[1]) as src:
            table = src.read(0)[0]
    elif path.suffix.lower() == ".npy":
        try:
            table = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
            raise FormatError(f"not a readable .npy file: {path} ({exc})") from exc
    else:
        text = path.read_text(errors="replace")
        delimiter = "," if "," in text else None
        try:
            with warnings.catch_warnings():
                # "input contained no data": the shape check below says it in one line
                warnings.simplefilter("ignore", UserWarning)
                table = np.loadtxt(path, delimiter=delimiter, comments="#", ndmin=2)
        except ValueError as exc:
            raise FormatError(f"not a two-column table of ids: {path} ({exc})") from exc
    if table.ndim != 2 or table.shape[1] != 2:
        raise FormatError(f"lookup table {spec} has shape {table.shape}; need (N, 2)")
    if table.dtype.kind == "f":
        if not np.all(np.isfinite(table)) or not np.array_equal(table, np.round(table)):
            raise FormatError(f"lookup table {spec} holds non-integer values")
    elif table.dtype.kind not in "iu":
        raise FormatError(f"lookup table {spec} holds {table.dtype} values; need integers")
    if table.size and (table.min() < 0 or table.max() > np.iinfo(np.int64).max):
        raise FormatError(f"lookup table {spec} holds ids outside 0 .. 2**63-1")
    result: npt.NDArray[np.int64] = table.astype(np.int64)
    return result


MissingPolicy = Literal["zero", "keep", "error"]


class LookupVolumeSource(SourceMetadata):
    """Relabel another (integer) source through a lookup table, chunk by chunk.

    When the old ids are non-negative and compact (``max id < max(8 N, 2**20)``, as in
    the medulla's ``transforms``: ids 0 .. N-1), ``read`` indexes a dense table like
    gala's ``apply_segmentation_map`` (one gather per voxel). Otherwise, and for
    blocks holding ids outside that table, it uses ``np.searchsorted`` on the sorted
    old ids: ids can be arbitrary 64-bit numbers (DVID, neuroglancer segmentations)
    for which a dense table of ``max id + 1`` entries would not fit in memory.

    Parameters
    ----------
    source : VolumeSource with an integer dtype
    table : (N, 2) int array
        Rows of (old id, new id). Repeated old ids must map to the same new id.
    missing : {"zero", "keep", "error"}, default: "zero"
        What ids absent from the table become: 0 (background; what janelia-flyem's gala
        does for its ``stack`` + ``transforms`` files), their own value, or an error.
    name : str, default: the source's name
    """

    def __init__(
        self,
        source: VolumeSource,
        table: npt.ArrayLike,
        *,
        missing: MissingPolicy = "zero",
        name: str | None = None,
    ) -> None:
        if missing not in ("zero", "keep", "error"):
            raise ParameterError(f"missing must be 'zero', 'keep' or 'error', got {missing!r}")
        if source.dtype.kind not in "iu":
            raise ParameterError(f"a lookup needs integer labels; {source.name} is {source.dtype}")
        tab = np.asarray(table)
        if tab.ndim != 2 or tab.shape[1] != 2 or tab.shape[0] == 0 or tab.dtype.kind not in "iu":
            raise ParameterError(
                f"lookup table must be a non-empty (N, 2) integer array, got {tab.shape} {tab.dtype}"
            )
        order = np.argsort(tab[:, 0], kind="stable")
        keys, values = tab[order, 0], tab[order, 1]
        dup = np.flatnonzero(keys[1:] == keys[:-1])
        clash = dup[values[dup] != values[dup + 1]]
        if clash.size:
            i = clash[0]
            raise FormatError(
                f"lookup table maps id {keys[i]} to both {values[i]} and {values[i + 1]}"
            )
        keep = np.ones(keys.shape, bool)
        keep[dup + 1] = False
        self._keys, values = keys[keep], values[keep]
        out_dtype = _label_dtype(values)
        if missing == "keep":
            out_dtype = np.promote_types(out_dtype, source.dtype)
        self._values = values.astype(out_dtype)
        self._dtype = np.dtype(out_dtype)
        self._dense: npt.NDArray[Any] | None = None
        self._dense_found: npt.NDArray[np.bool_] | None = None
        kmin, kmax = int(self._keys[0]), int(self._keys[-1])
        if kmin >= 0 and kmax < max(8 * self._keys.size, 2**20):
            self._dense = np.zeros(kmax + 1, self._dtype)  # absent ids -> 0
            self._dense[self._keys] = self._values
            if self._keys.size < kmax + 1:  # only needed when the table has holes
                self._dense_found = np.zeros(kmax + 1, bool)
                self._dense_found[self._keys] = True
        self._source = source
        self._missing = missing
        self._name = name if name is not None else source.name
        self._axes = tuple(source.axes)
        self._levels = tuple(source.levels)
        self.n_entries = int(self._keys.size)

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[Any]:
        """Read ``region`` of ``level`` from the source and relabel it."""
        block = self._source.read(level, region)
        return self.apply(block)

    def read_many(
        self, requests: Sequence[tuple[int, Region | None]]
    ) -> list[npt.NDArray[Any] | ChunkError]:
        """:meth:`read` of several regions, batched by the source when it can
        (``ZarrVolumeSource.read_many``); a failed read is its error in the list."""
        return [
            got if isinstance(got, ChunkError) else self.apply(got)
            for got in read_many(self._source, requests)
        ]

    def apply(self, block: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Relabel an array of old ids (any shape) with the table."""
        block = np.asarray(block)
        out: npt.NDArray[Any]
        dense = self._dense
        if (
            dense is not None
            and block.size
            and (block.dtype.kind == "u" or block.min() >= 0)
            and block.max() < dense.size
        ):
            out = dense[block]
            if self._dense_found is None or self._missing == "zero":
                return out  # every id is in the table, or absent ids are already 0
            found = self._dense_found[block]
        else:
            idx = np.searchsorted(self._keys, block)
            np.minimum(idx, self._keys.size - 1, out=idx)
            found = self._keys[idx] == block
            out = self._values[idx]
        if not found.all():
            if self._missing == "error":
                bad = np.unique(block[~found])
                raise FormatError(
                    f"{bad.size} label ids of {self._source.name} are not in the lookup table "
                    f"(e.g. {bad[:5].tolist()})"
                )
            out[~found] = block[~found] if self._missing == "keep" else 0
        return out

    def close(self) -> None:
        """Close the wrapped source if it can be closed."""
        close = getattr(self._source, "close", None)
        if callable(close):
            close()


def _label_dtype(values: npt.NDArray[Any]) -> np.dtype[Any]:
    # uint32 unless the ids need more: what neuroglancer and most label tools expect,
    # and it leaves room for new ids from proofreading edits (uint8/uint16 would not).
    if values.size and values.min() < 0:
        return np.dtype(np.int64)
    if values.size and values.max() >= 2**32:
        return np.dtype(np.uint64)
    return np.dtype(np.uint32)


# --------------------------------------------------------------------------- dispatcher


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any(
        (path / marker).exists() for marker in ("zarr.json", ".zattrs", ".zgroup", ".zarray")
    )


def open_input(
    spec: str | os.PathLike[str],
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    cache_dir: str | os.PathLike[str] | None = None,
) -> VolumeSource:
    """Open any supported input as a lazy (z, y, x) ``VolumeSource``.

    ``spec`` is one of

    - ``file.h5:dataset`` / ``file.h5.gz:dataset`` (``.hdf5``, ``.hdf``, ``.he5`` too):
      :func:`import_hdf5`; the dataset may be omitted when the file holds one array;
    - a TIFF file (``.tif``, ``.tiff``, ``.ome.tif``, ``.btf``): :func:`import_tiff`;
    - a ``.npy`` file: :func:`import_npy`;
    - a folder of PNG or TIFF slices, a glob such as ``"maps/iso.*.png"``, or one
      PNG: :func:`import_slices`;
    - an OME-Zarr store: :func:`analysis.io.open_volume`.

    Raises
    ------
    FormatError
        The input is missing, of an unsupported kind, or unreadable (message names it).
    """
    text = os.fspath(spec)
    h5 = split_hdf5_spec(text)
    if h5 is not None:
        return import_hdf5(h5[0], h5[1], cache_dir=cache_dir)
    path = Path(text)
    if any(ch in path.name for ch in "*?["):
        return import_slices(text, cache_bytes=cache_bytes)
    if not path.exists():
        raise FormatError(f"input not found: {text}")
    if _is_zarr_store(path):
        from analysis.io import open_volume

        source: VolumeSource = open_volume(path)
        return source
    if path.is_dir():
        return import_slices(path, cache_bytes=cache_bytes)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return import_tiff(path)
    if suffix == ".npy":
        return import_npy(path)
    if suffix == ".png":
        return import_slices(path, cache_bytes=cache_bytes)
    raise FormatError(
        f"unsupported input {text}: expected a TIFF stack, a folder of PNG/TIFF slices, "
        "a .npy file, an HDF5 dataset (FILE.h5:DATASET, .h5.gz too) or an OME-Zarr store"
    )
