"""Reading OME-Zarr (NGFF 0.4 / zarr v2 and 0.5 / zarr v3) images and labels, lazily.

:func:`open_volume` reads metadata only (group attributes and each level's array
metadata); pixels are read by :meth:`ZarrVolumeSource.read`, which asks zarr
for exactly the region, so only the chunks that region touches are fetched and
decoded. Missing chunks read as the array's fill value (zarr's rule). When a
chunk cannot be decoded, the failing read is repeated chunk by chunk to name
the culprit in a :class:`~analysis.errors.ChunkError` (the error path is slow,
the normal path is one zarr call).

Local paths and ``http(s)://`` URLs both work; URLs go through zarr's fsspec
store (aiohttp).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr
import zarr.errors
import zarr.storage
from zarr.abc.store import Store

from analysis.errors import ChunkError, FormatError, ParameterError
from analysis.io._chunks import ChunkReader
from analysis.io._format import NgffFormat, detect_format
from analysis.io._ngff_checks import (
    check_dataset_path,
    check_level,
    check_level_not_larger,
    transform,
)
from analysis.io._units import unit_factor
from analysis.io._validate import validate_ngff
from analysis.volume import Level, Region, SourceMetadata, normalize_region

__all__ = ["CheckedVolumeSource", "ZarrVolumeSource", "list_labels", "open_labels", "open_volume"]

log = logging.getLogger(__name__)

PathOrUrl = str | os.PathLike[str]
_CANONICAL = "tczyx"
_TYPE_TO_NAME = {"time": "t", "channel": "c"}


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


#: Remote reads are bounded (issue 21): seconds to connect, between two reads of a
#: response, and for a whole request (a server that stalls, trickles or never ends).
HTTP_CONNECT_S = 10.0
HTTP_READ_S = 30.0
HTTP_TOTAL_S = 120.0


def _http_options() -> dict[str, Any]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(
        total=HTTP_TOTAL_S,
        connect=HTTP_CONNECT_S,
        sock_connect=HTTP_CONNECT_S,
        sock_read=HTTP_READ_S,
    )
    return {"client_kwargs": {"timeout": timeout}}


def _remote_reason(exc: BaseException) -> str:
    """One line saying why a store could not be opened (a server's odd answers included)."""
    import json

    status = getattr(exc, "status", None)
    tries = getattr(exc, "tries", None)
    after = f", {tries} tries" if isinstance(tries, int) else ""
    if isinstance(status, int):
        what = {401: "not authorised", 403: "access denied", 404: "not found"}.get(
            status, "server error" if status >= 500 else "refused"
        )
        return f"{what} (HTTP {status}{after})"
    if type(exc).__name__ in {
        "ResponseTooLarge",
        "RemoteDeadlineExceeded",
    }:  # analysis.io._http, imported lazily
        return " ".join(str(exc).split())
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return "the server's answer is not zarr metadata (an HTML page, a login form?)"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = " ".join(str(exc).split()) or "no answer in time"
    if len(text) > 200:
        text = text[:200] + " ..."
    return f"{type(exc).__name__}: {text}{after}"


def _open_group(path_or_url: PathOrUrl | Store) -> tuple[zarr.Group, str]:
    """Open a zarr group read-only; return it and a printable location."""
    if isinstance(path_or_url, Store):
        store: Store = path_or_url
        where = str(path_or_url)
    else:
        where = os.fspath(path_or_url)
        if _is_url(where):
            try:
                # Answers are size-capped and retried after 5xx (analysis.io._http).
                from analysis.io._http import BoundedHTTPFileSystem

                fs = BoundedHTTPFileSystem(asynchronous=True, **_http_options())
                store = zarr.storage.FsspecStore(fs, path=where.rstrip("/"), read_only=True)
            except (ImportError, ValueError) as exc:
                raise FormatError(f"cannot open URL {where}: {exc}") from exc
        else:
            local = Path(where.removeprefix("file://")).expanduser()
            if not local.exists():
                raise FormatError(f"path does not exist: {where}")
            if not local.is_dir():
                raise FormatError(f"not a zarr store (a file, not a folder): {where}")
            store = zarr.storage.LocalStore(local, read_only=True)
    try:
        group = zarr.open_group(store, mode="r")
    except zarr.errors.ContainsArrayError:
        raise FormatError(
            f"{where} is a zarr array, not an OME-Zarr image group (open its parent)"
        ) from None
    except (zarr.errors.NodeNotFoundError, FileNotFoundError, KeyError):
        raise FormatError(f"not a zarr store (no zarr.json or .zgroup): {where}") from None
    except Exception as exc:
        # fsspec/aiohttp raise their own types (ClientConnectorError, ...) for
        # unreachable servers; they are user errors about the location.
        raise FormatError(f"cannot open {where}: {_remote_reason(exc)}") from exc
    return group, where


def _child_group(group: zarr.Group, path: str) -> zarr.Group | None:
    try:
        node = group[path]
    except (KeyError, FileNotFoundError, zarr.errors.NodeNotFoundError):
        return None
    except Exception as exc:  # a remote store's answer (5xx after retries, too large)
        root = str(getattr(group.store, "path", group.store)).rstrip("/")
        where = "/".join(p for p in (root, group.path, path) if p)
        raise FormatError(f"cannot open {where}: {_remote_reason(exc)}") from exc
    return node if isinstance(node, zarr.Group) else None


def _labels_listing(group: zarr.Group) -> tuple[str, ...]:
    labels = _child_group(group, "labels")
    if labels is None:
        return ()
    attrs = dict(labels.attrs)
    names = attrs.get("labels")
    ome = attrs.get("ome")
    if names is None and isinstance(ome, Mapping):
        names = ome.get("labels")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        log.warning("labels group of %s has no valid 'labels' list; ignoring it", group.store)
        return ()
    return tuple(names)


class ZarrVolumeSource(SourceMetadata):
    """A :class:`~analysis.volume.VolumeSource` over an OME-Zarr multiscale image.

    Build it with :func:`open_volume` (or :meth:`open_labels`), not directly.

    Axes follow vrscope's conventions (``analysis.volume``): names from
    ``"tczyx"``, space axes last, voxel sizes in µm (time in s). A 2D image
    (``y, x``) gets a virtual ``z`` axis of length 1 so that every source has
    three space axes; ``read`` adds it, the store never sees it.

    Attributes
    ----------
    ngff_version : {"0.4", "0.5"}
    zarr_format : {2, 3}
    url : str
        Where the image group is (path or URL).
    units : tuple of (str or None)
        The store's unit per axis of ``axes`` (``None`` where the store gives
        none, and for a virtual axis).
    label_names : tuple of str
        Label images listed under ``labels/`` (empty for a label image).
    is_label : bool
        Whether this is a label image (has ``image-label`` metadata).
    label_colors : dict of int -> (4,) int tuple
        ``image-label.colors`` (empty when absent).
    level_hint : int
        The level the caller said it will read first (non-negative).
    virtual_axes : tuple of str
        Axes that ``axes`` adds to the store's (``("z",)`` for a 2D image).
    """

    def __init__(
        self,
        group: zarr.Group,
        url: str,
        *,
        fmt: NgffFormat | None = None,
        level_hint: int | None = None,
    ) -> None:
        attrs = dict(group.attrs)
        zarr_format = group.metadata.zarr_format
        fmt = fmt or detect_format(attrs, zarr_format)
        ome = fmt.ome(attrs)
        if "multiscales" not in ome:
            raise FormatError(f"no multiscales in {url} (not an OME-Zarr image)")
        validate_ngff(attrs, "image", fmt.version)
        self.is_label = "image-label" in ome
        if self.is_label:
            validate_ngff(attrs, "label", fmt.version)
        self.ngff_version = fmt.version
        self.zarr_format = zarr_format
        self.url = url
        self._group = group
        self._attrs = attrs
        prefix = "ome." if fmt.zarr_format == 3 else ""
        multiscales = ome["multiscales"]
        if len(multiscales) > 1:
            log.info("%s holds %d multiscale images; using the first", url, len(multiscales))
        ms = multiscales[0]
        where = f"{prefix}multiscales[0]"

        store_axes = ms["axes"]
        names, types, units = self._map_axes(store_axes, where)
        ndim_store = len(store_axes)
        n_space = types.count("space")
        # A 2D image gets a virtual z just before y so every source has z, y, x.
        self._virtual: int | None = None
        if n_space == 2:
            self._virtual = ndim_store - 2
        factors = [unit_factor(u, t, n) for u, t, n in zip(units, types, names, strict=True)]
        gscale, gtrans = transform(
            ms.get("coordinateTransformations"), ndim_store, f"{where}.coordinateTransformations"
        )

        arrays: list[zarr.Array[Any]] = []
        levels: list[Level] = []
        shape0: tuple[int, ...] | None = None
        for i, ds in enumerate(ms["datasets"]):
            path = ds["path"]
            check_dataset_path(f"{where}.datasets[{i}]", path)
            try:
                node = group[path]
            except (KeyError, FileNotFoundError, zarr.errors.NodeNotFoundError):
                raise FormatError(
                    f"{where}.datasets[{i}].path {path!r} does not exist in {url}"
                ) from None
            except Exception as exc:  # a remote store's answer (5xx after retries, too large)
                raise FormatError(
                    f"cannot open {where}.datasets[{i}].path {path!r} of {url}: "
                    f"{_remote_reason(exc)}"
                ) from exc
            if not isinstance(node, zarr.Array):
                raise FormatError(f"{where}.datasets[{i}].path {path!r} is not an array in {url}")
            if node.ndim != ndim_store:
                raise FormatError(
                    f"array {path!r} in {url} has {node.ndim} dimensions but "
                    f"{where}.axes lists {ndim_store}"
                )
            scale, trans = transform(
                ds["coordinateTransformations"],
                ndim_store,
                f"{where}.datasets[{i}].coordinateTransformations",
            )
            # NGFF applies the dataset transform first, then the multiscale one.
            full_scale = [s * g * f for s, g, f in zip(scale, gscale, factors, strict=True)]
            full_trans = [
                (t * g + gt) * f for t, g, gt, f in zip(trans, gscale, gtrans, factors, strict=True)
            ]
            chunks = tuple(int(c) for c in node.chunks)
            shape = tuple(int(s) for s in node.shape)
            if any(c < 1 for c in chunks):
                raise FormatError(
                    f"array {path!r} in {url} has an empty chunk shape {chunks} (its metadata "
                    "is damaged)"
                )
            check_level(f"{where}.datasets[{i}]", path, shape, full_scale, full_trans, types)
            if shape0 is None:
                shape0 = shape
            else:
                check_level_not_larger(f"{where}.datasets[{i}]", path, shape, shape0, types)
            if self._virtual is not None:
                k = self._virtual
                shape = shape[:k] + (1,) + shape[k:]
                chunks = chunks[:k] + (1,) + chunks[k:]
                full_scale.insert(k, 1.0)
                full_trans.insert(k, 0.0)
            levels.append(Level(path, shape, chunks, tuple(full_scale), tuple(full_trans)))
            arrays.append(node)
        dtypes = {a.dtype for a in arrays}
        for dt in dtypes:
            if np.dtype(dt).kind not in "biuf":
                raise FormatError(f"{url} holds {dt} values; vrscope reads numbers only")
        if len(dtypes) != 1:
            raise FormatError(f"levels of {url} have different dtypes: {sorted(map(str, dtypes))}")
        self._arrays = arrays
        # Whole-chunk fast path per level (None: the codecs need zarr's general path).
        self._chunk_readers = [ChunkReader.for_array(a) for a in arrays]
        self._levels = tuple(levels)
        self._dtype: np.dtype[np.generic] = np.dtype(arrays[0].dtype)

        if self._virtual is not None:
            names.insert(self._virtual, "z")
            units.insert(self._virtual, None)
        self._axes = tuple(names)
        self.virtual_axes: tuple[str, ...] = ("z",) if self._virtual is not None else ()
        self.units: tuple[str | None, ...] = tuple(units)
        ms_name = ms.get("name")
        fallback = url.rstrip("/").rsplit("/", 1)[-1] or "image"
        self._name = ms_name if isinstance(ms_name, str) and ms_name.strip("/ ") else fallback
        self.label_names: tuple[str, ...] = () if self.is_label else _labels_listing(group)
        colors = ome.get("image-label", {}).get("colors", []) if self.is_label else []
        self.label_colors: dict[int, tuple[int, ...]] = {
            int(c["label-value"]): tuple(int(v) for v in c.get("rgba", (255, 255, 255, 255)))
            for c in colors
        }
        hint = 0 if level_hint is None else int(level_hint)
        if not -len(levels) <= hint < len(levels):
            raise ParameterError(
                f"level_hint {level_hint} does not exist ({url} has {len(levels)})"
            )
        self.level_hint = hint % len(levels)

    @staticmethod
    def _map_axes(
        axes: Sequence[Mapping[str, Any]], where: str
    ) -> tuple[list[str], list[str], list[str | None]]:
        """vrscope names, NGFF types and units of the store's axes."""
        inferred = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
        kinds = [ax.get("type") or inferred.get(str(ax.get("name", "")).lower()) for ax in axes]
        space_names = iter("zyx"[-kinds.count("space") :] if "space" in kinds else "")
        names: list[str] = []
        types: list[str] = []
        units: list[str | None] = []
        for i, (ax, kind) in enumerate(zip(axes, kinds, strict=True)):
            stored = str(ax.get("name", ""))
            if kind == "space":
                # Space axes are named by position: NGFF orders them z, y, x.
                name = next(space_names)
                if stored.lower() != name:
                    log.warning("space axis %r at %s.axes[%d] read as %r", stored, where, i, name)
            elif kind in _TYPE_TO_NAME:
                name = _TYPE_TO_NAME[kind]
            else:
                raise FormatError(
                    f"unsupported axis {stored!r} (type {kind!r}) at {where}.axes[{i}]; "
                    "vrscope reads time, channel and space axes (t, c, z, y, x)"
                )
            names.append(name)
            types.append(str(kind))
            unit = ax.get("unit")
            units.append(str(unit) if unit is not None else None)
        order = [_CANONICAL.index(n) for n in names]
        if order != sorted(order) or len(set(order)) != len(order):
            raise FormatError(f"axes {names} at {where}.axes are not in t, c, z, y, x order")
        return names, types, units

    # -- VolumeSource ---------------------------------------------------------------
    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        """Read ``region`` of ``level``; only the chunks it touches are fetched.

        Raises
        ------
        ParameterError
            For a level that does not exist or a malformed region.
        ChunkError
            When a chunk exists but cannot be read or decoded; ``.key`` is the
            chunk's store key below the image (``"s0/c/0/1/2"``, ``"0/0.1.2"``).
        """
        self._check_level(level)
        reg, store_reg = self._regions(level, region)
        reader = self._chunk_readers[level]
        coords = reader.chunk_of(store_reg) if reader is not None else None
        if reader is not None and coords is not None:
            got = self._read_chunks(level, [(reg, store_reg, coords)])[0]
            if isinstance(got, ChunkError):
                raise got
            return got
        return self._read_zarr(level, reg, store_reg)

    def read_many(
        self, requests: Sequence[tuple[int, Region | None]]
    ) -> list[npt.NDArray[np.generic] | ChunkError]:
        """Read several ``(level, region)`` at once; same result per item as :meth:`read`.

        Regions that lie within one chunk (the streamer's bricks) are fetched together,
        concurrently on zarr's event loop, and decoded on the calling thread; the rest go
        through :meth:`read` one by one. A chunk that cannot be read gives its
        :class:`ChunkError` *in the list* (the other items are still returned).

        Raises
        ------
        ParameterError
            For a level that does not exist or a malformed region.
        """
        out: list[npt.NDArray[np.generic] | ChunkError | None] = [None] * len(requests)
        batches: dict[int, list[tuple[int, Region, Region, tuple[int, ...]]]] = {}
        for i, (level, region) in enumerate(requests):
            self._check_level(level)
            reg, store_reg = self._regions(level, region)
            reader = self._chunk_readers[level]
            coords = reader.chunk_of(store_reg) if reader is not None else None
            if reader is not None and coords is not None:
                batches.setdefault(level, []).append((i, reg, store_reg, coords))
                continue
            try:
                out[i] = self._read_zarr(level, reg, store_reg)
            except ChunkError as exc:
                out[i] = exc
        for level, items in batches.items():
            got = self._read_chunks(level, [it[1:] for it in items])
            for (i, *_), g in zip(items, got, strict=True):
                out[i] = g
        return [o for o in out if o is not None]

    def _check_level(self, level: int) -> None:
        if not 0 <= level < len(self._levels):
            raise ParameterError(
                f"level {level} does not exist (the volume has {len(self._levels)})"
            )

    def _regions(self, level: int, region: Region | None) -> tuple[Region, Region]:
        """The normalized region in this source's axes and in the store's (no virtual z)."""
        reg = normalize_region(region, self._levels[level].shape)
        if self._virtual is None:
            return reg, reg
        k = self._virtual
        return reg, reg[:k] + reg[k + 1 :]

    def _unvirtual(self, data: npt.NDArray[np.generic], reg: Region) -> npt.NDArray[np.generic]:
        if self._virtual is None:
            return data
        k = self._virtual
        return np.expand_dims(data, k)[(slice(None),) * k + (slice(0, reg[k].stop - reg[k].start),)]

    def _read_zarr(self, level: int, reg: Region, store_reg: Region) -> npt.NDArray[np.generic]:
        arr = self._arrays[level]
        try:
            data = np.asarray(arr[store_reg])
        except Exception as exc:
            raise self._chunk_error(level, store_reg, exc) from exc
        return self._unvirtual(data, reg)

    def _read_chunks(
        self, level: int, items: Sequence[tuple[Region, Region, tuple[int, ...]]]
    ) -> list[npt.NDArray[np.generic] | ChunkError]:
        """Regions that each lie in one chunk: fetch the chunks at once, decode, crop."""
        reader = self._chunk_readers[level]
        assert reader is not None
        unique = list(dict.fromkeys(coords for _, _, coords in items))
        fetched = dict(zip(unique, reader.fetch_chunks(unique), strict=True))
        decoded: dict[tuple[int, ...], npt.NDArray[np.generic] | ChunkError] = {}
        out: list[npt.NDArray[np.generic] | ChunkError] = []
        for reg, store_reg, coords in items:
            if coords not in decoded:
                raw = fetched[coords]
                try:
                    if isinstance(raw, BaseException):
                        raise raw
                    decoded[coords] = reader.decode(raw)
                except Exception as exc:
                    where = f"{self._levels[level].path}/{reader.object_name(coords)}"
                    what = "" if reader.per_shard is None else f" (inner chunk {coords})"
                    reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    decoded[coords] = ChunkError(
                        f"cannot read chunk {where}{what} of {self.url}: {reason}", key=where
                    )
            chunk = decoded[coords]
            if isinstance(chunk, ChunkError):
                out.append(chunk)
                continue
            inner = tuple(
                slice(sl.start - c * n, sl.stop - c * n)
                for sl, c, n in zip(store_reg, coords, reader.chunks, strict=True)
            )
            part = chunk[inner]
            if part.shape != chunk.shape:
                part = part.copy()  # do not keep the whole chunk alive for a small read
            out.append(self._unvirtual(part, reg))
        return out

    # -- whole levels, every chunk checked --------------------------------------------
    def read_level(
        self, level: int, *, allow_missing: bool = False
    ) -> tuple[npt.NDArray[np.generic], list[ChunkError]]:
        """All of ``level``, telling an absent chunk from a damaged one (issue 21).

        ``read_checked(level, None, allow_missing=...)``: see :meth:`read_checked`.
        """
        return self.read_checked(level, None, allow_missing=allow_missing)

    def read_checked(
        self, level: int, region: Region | None = None, *, allow_missing: bool = False
    ) -> tuple[npt.NDArray[np.generic], list[ChunkError]]:
        """``region`` of ``level``, telling an absent chunk from a damaged one (issue 21).

        A chunk whose key is absent reads as the fill value: zarr writers leave out
        chunks that hold only the fill value, so a sparse store is normal. A chunk
        whose key exists but cannot be read (bytes that do not decode, a folder where
        the chunk file should be, no permission, a server error) is damage: zarr's
        own read takes a folder for an absent chunk and returns zeros, so the chunks
        the region touches are fetched and decoded here, 256 at a time.

        Returns
        -------
        data : ndarray
            The region (this source's axes).
        unreadable : list of ChunkError
            The damaged chunks (or shards), each once; they read as the fill value.
            Always empty unless ``allow_missing``.

        Raises
        ------
        ChunkError
            For the first damaged chunk (naming the store, the level and the chunk),
            unless ``allow_missing``.
        """
        self._check_level(level)
        arr = self._arrays[level]
        reader = self._chunk_readers[level]
        reg, store_reg = self._regions(level, region)
        shape = tuple(int(n) for n in arr.shape)
        fill = arr.fill_value
        out = np.full(
            tuple(sl.stop - sl.start for sl in store_reg),
            0 if fill is None else fill,
            dtype=self._dtype,
        )
        bad: dict[str, ChunkError] = {}

        def damaged(key: str, exc: BaseException, inner: str = "") -> None:
            if key in bad:
                return
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            err = ChunkError(
                f"cannot read chunk {key}{inner} (level {level}) of {self.url}: {reason}", key=key
            )
            if not allow_missing:
                raise err from exc
            bad[key] = err

        # (zarr's own path reads whole shards: a shard is one object in the store)
        grid = tuple(int(c) for c in (reader.chunks if reader else (arr.shards or arr.chunks)))
        every = itertools.product(
            *(
                range(sl.start // g, math.ceil(sl.stop / g)) if sl.stop > sl.start else ()
                for sl, g in zip(store_reg, grid, strict=True)
            )
        )
        path = self._levels[level].path
        while batch := list(itertools.islice(every, 256)):
            raws: list[Any]  # encoded bytes (chunk reader) or values (zarr), None, error
            if reader is not None:
                raws = reader.fetch_chunks(batch)
            else:
                raws = [_zarr_chunk(arr, c, grid) for c in batch]
            for coords, raw in zip(batch, raws, strict=True):
                if raw is None:
                    continue  # absent: the fill value, already there
                name = (
                    reader.object_name(coords) if reader else arr.metadata.encode_chunk_key(coords)
                )
                inner = (
                    "" if reader is None or reader.per_shard is None else f" (inner chunk {coords})"
                )
                if isinstance(raw, BaseException):
                    damaged(f"{path}/{name}", raw, inner)
                    continue
                try:
                    chunk = reader.decode(raw) if reader is not None else raw
                except Exception as exc:
                    damaged(f"{path}/{name}", exc, inner)
                    continue
                # The part of the chunk inside the region, and where it goes.
                lo = [
                    max(c * g, sl.start) for c, g, sl in zip(coords, grid, store_reg, strict=True)
                ]
                hi = [
                    min((c + 1) * g, n, sl.stop)
                    for c, g, n, sl in zip(coords, grid, shape, store_reg, strict=True)
                ]
                dest = tuple(
                    slice(a - sl.start, b - sl.start)
                    for a, b, sl in zip(lo, hi, store_reg, strict=True)
                )
                src = tuple(
                    slice(a - c * g, b - c * g)
                    for a, b, c, g in zip(lo, hi, coords, grid, strict=True)
                )
                out[dest] = chunk[src]
        return self._unvirtual(out, reg), list(bad.values())

    def checked(self, unreadable: list[ChunkError] | None = None) -> CheckedVolumeSource:
        """This source, every read checked chunk by chunk (:meth:`read_checked`).

        With ``unreadable`` (a list), damaged chunks read as the fill value and their
        errors are appended there (each key once); without, a read of a damaged chunk
        raises its :class:`ChunkError`. For commands that read through a
        ``VolumeSource`` (tiled inference, training) and must not take damage for
        zeros.
        """
        return CheckedVolumeSource(self, unreadable)

    # -- extras ---------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        """The image group's attributes as stored (a copy)."""
        return dict(self._attrs)

    def chunk_key(self, level: int, chunk_coords: Sequence[int]) -> str:
        """Store key (below the image group) of the chunk at ``chunk_coords`` of ``level``.

        ``chunk_coords`` count in this source's axes (a virtual z is dropped).
        """
        coords = tuple(int(c) for c in chunk_coords)
        if self._virtual is not None:
            coords = coords[: self._virtual] + coords[self._virtual + 1 :]
        arr = self._arrays[level]
        return f"{self._levels[level].path}/{arr.metadata.encode_chunk_key(coords)}"

    def _chunk_error(self, level: int, region: tuple[slice, ...], exc: Exception) -> ChunkError:
        arr = self._arrays[level]
        grid = tuple(int(c) for c in (arr.shards or arr.chunks))
        ranges = [
            range(sl.start // g, math.ceil(sl.stop / g)) for sl, g in zip(region, grid, strict=True)
        ]
        for coords in itertools.product(*ranges):
            sub = tuple(
                slice(max(sl.start, c * g), min(sl.stop, (c + 1) * g))
                for sl, c, g in zip(region, coords, grid, strict=True)
            )
            try:
                arr[sub]
            except Exception as chunk_exc:
                key = f"{self._levels[level].path}/{arr.metadata.encode_chunk_key(coords)}"
                reason = f"{type(chunk_exc).__name__}: {chunk_exc}".splitlines()[0]
                return ChunkError(f"cannot read chunk {key} of {self.url}: {reason}", key=key)
        # Not reproducible chunk by chunk (a transient network error, say): still a
        # ChunkError, so callers that skip unreadable chunks keep working.
        where = ", ".join(f"{sl.start}:{sl.stop}" for sl in region)
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return ChunkError(
            f"cannot read region [{where}] of level {self._levels[level].path} of {self.url}: "
            f"{reason}"
        )

    def open_labels(self, name: str) -> ZarrVolumeSource:
        """Open the label image ``labels/<name>`` of this image.

        Raises :class:`FormatError` listing the available names when ``name`` is unknown.
        """
        if name not in self.label_names:
            available = ", ".join(self.label_names) or "none"
            raise FormatError(f"no label image {name!r} in {self.url} (available: {available})")
        group = _child_group(self._group, f"labels/{name}")
        if group is None:
            raise FormatError(f"label image {name!r} is listed but missing in {self.url}")
        return ZarrVolumeSource(group, f"{self.url.rstrip('/')}/labels/{name}")

    def __repr__(self) -> str:
        shape = self._levels[0].shape
        return (
            f"ZarrVolumeSource({self.url!r}, NGFF {self.ngff_version}, axes={''.join(self.axes)}, "
            f"shape={shape}, dtype={self.dtype}, levels={len(self._levels)})"
        )


class CheckedVolumeSource:
    """A :class:`ZarrVolumeSource` whose reads check every chunk (see
    :meth:`ZarrVolumeSource.checked`); anything else is the source's own."""

    def __init__(self, source: ZarrVolumeSource, unreadable: list[ChunkError] | None) -> None:
        self.source = source
        self.unreadable = unreadable

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def axes(self) -> tuple[str, ...]:
        return self.source.axes

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return self.source.dtype

    @property
    def levels(self) -> tuple[Level, ...]:
        return self.source.levels

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        data, bad = self.source.read_checked(
            level, region, allow_missing=self.unreadable is not None
        )
        if self.unreadable is not None:
            seen = {e.key for e in self.unreadable}
            self.unreadable.extend(e for e in bad if e.key not in seen)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


def _zarr_chunk(
    arr: zarr.Array[Any], coords: tuple[int, ...], grid: tuple[int, ...]
) -> npt.NDArray[np.generic] | BaseException | None:
    """One chunk through zarr (codecs ``ChunkReader`` does not handle): its values,
    ``None`` when absent, the exception when its key exists but cannot be read."""
    key = str(arr.metadata.encode_chunk_key(coords))
    store = arr.store_path.store
    if isinstance(store, zarr.storage.LocalStore):
        where = store.root / arr.store_path.path / key
        if not where.exists():
            return None
        if not where.is_file():
            return IsADirectoryError(f"{where} is not a file")
    sub = tuple(
        slice(c * g, min((c + 1) * g, n)) for c, g, n in zip(coords, grid, arr.shape, strict=True)
    )
    try:
        return np.asarray(arr[sub])
    except Exception as exc:
        return exc


def _find_image(group: zarr.Group, where: str) -> tuple[zarr.Group, str]:
    """The multiscale image group at ``group`` (or inside a bioformats2raw layout)."""
    attrs = dict(group.attrs)
    fmt = detect_format(attrs, group.metadata.zarr_format)
    ome = fmt.ome(attrs)
    if "multiscales" in ome:
        return group, where
    if "bioformats2raw.layout" in ome:
        # bioformats2raw puts the first (often only) image series at "0".
        child = _child_group(group, "0")
        if child is not None:
            return child, f"{where.rstrip('/')}/0"
    raise FormatError(
        f"no multiscales in {where} (a zarr group, but not an OME-Zarr image; "
        "the NGFF 'multiscales' metadata is missing)"
    )


def open_volume(
    path_or_url: PathOrUrl | Store, *, level_hint: int | None = None
) -> ZarrVolumeSource:
    """Open an OME-Zarr multiscale image lazily (metadata only, no pixels).

    Parameters
    ----------
    path_or_url : str, path-like or zarr Store
        A local folder or an ``http(s)://`` URL of the image group (the store
        root or a group inside it, such as ``.../labels/cells``). NGFF 0.4
        (zarr v2) and 0.5 (zarr v3) are detected from the metadata.
    level_hint : int, optional
        The level the caller will read first (negative counts from the
        coarsest); kept as ``source.level_hint``.

    Returns
    -------
    ZarrVolumeSource

    Raises
    ------
    FormatError
        Missing path, not a zarr store, no ``multiscales``, invalid metadata
        (the message names the field), unknown units.
    """
    group, where = _open_group(path_or_url)
    image, where = _find_image(group, where)
    return ZarrVolumeSource(image, where, level_hint=level_hint)


def list_labels(path_or_url: PathOrUrl | Store) -> list[str]:
    """Names of the label images under ``labels/`` of the image at ``path_or_url``."""
    group, where = _open_group(path_or_url)
    image, _ = _find_image(group, where)
    return list(_labels_listing(image))


def open_labels(path_or_url: PathOrUrl | Store, name: str) -> ZarrVolumeSource:
    """Open the label image ``name`` of the image at ``path_or_url`` (lazily)."""
    return open_volume(path_or_url).open_labels(name)
