"""Chunked scratch volumes on disk for pipelines on volumes larger than memory.

A :class:`ScratchVolume` is a zarr v3 array in a folder (a fresh temporary folder by
default) that is both a writable array (block-wise operators write into it) and a
:class:`analysis.volume.VolumeSource` (the next operator, or
:func:`analysis.io.write_labels` / :func:`analysis.io.write_ngff`, reads it chunk by
chunk). Memory use is one block, never the volume.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr
import zarr.errors
import zarr.storage

from analysis.errors import FormatError, ParameterError
from analysis.volume import Level, Region, SourceMetadata, normalize_region

__all__ = ["ScratchVolume"]

log = logging.getLogger(__name__)


class ScratchVolume(SourceMetadata):
    """A (z, y, x) zarr array on disk that reads like a ``VolumeSource``.

    Parameters
    ----------
    shape : (z, y, x) ints
    dtype : numpy dtype
    chunks : (z, y, x) ints, default: (64, 64, 64)
    scale_um : (3,) floats, default: (1, 1, 1)
        Voxel size reported by ``levels[0].scale``.
    folder : path-like, optional
        Where to create the array (must not exist yet); default a new temporary folder,
        deleted by :meth:`close` (or leaving the ``with`` block).
    name : str, default: "scratch"

    Examples
    --------
    >>> with ScratchVolume(src.levels[0].shape, np.int64) as tmp:  # doctest: +SKIP
    ...     label_blockwise(src, tmp)
    ...     write_labels(store, "objects", tmp)
    """

    def __init__(
        self,
        shape: Sequence[int],
        dtype: npt.DTypeLike,
        *,
        chunks: Sequence[int] = (64, 64, 64),
        scale_um: Sequence[float] = (1.0, 1.0, 1.0),
        folder: str | os.PathLike[str] | None = None,
        name: str = "scratch",
    ) -> None:
        shp = tuple(int(s) for s in shape)
        if len(shp) != 3 or min(shp) < 1:
            raise ParameterError(f"scratch volume needs a positive 3D shape, got {tuple(shape)}")
        if len(chunks) != 3 or min(int(c) for c in chunks) < 1:
            raise ParameterError(f"chunks must be three positive ints, got {tuple(chunks)}")
        if len(scale_um) != 3 or min(float(s) for s in scale_um) <= 0:
            raise ParameterError(f"scale_um must be three positive numbers, got {scale_um!r}")
        ch = tuple(min(int(c), s) for c, s in zip(chunks, shp, strict=True))
        if folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="vrscope-scratch-"))
            self._owned = True
        else:
            self._folder = Path(folder).expanduser()
            if self._folder.exists():
                raise FormatError(f"scratch folder {self._folder} already exists")
            self._owned = False
        self._array: zarr.Array[Any] = zarr.create_array(
            store=zarr.storage.LocalStore(self._folder),
            shape=shp,
            chunks=ch,
            dtype=np.dtype(dtype),
            fill_value=0,
        )
        self._name = name
        self._dtype = np.dtype(self._array.dtype)
        scale = tuple(float(s) for s in scale_um)
        self._levels = (Level("0", shp, ch, scale, (0.0, 0.0, 0.0)),)

    @classmethod
    def reopen(
        cls,
        folder: str | os.PathLike[str],
        *,
        scale_um: Sequence[float] = (1.0, 1.0, 1.0),
        name: str = "scratch",
    ) -> ScratchVolume:
        """Open a scratch volume made earlier in ``folder`` (by another process: the
        workers of a batch run write their blocks into one). It is not deleted on close."""
        path = Path(folder).expanduser()
        try:
            array = zarr.open_array(store=zarr.storage.LocalStore(path), mode="r+")
        except (FileNotFoundError, zarr.errors.NodeNotFoundError) as exc:
            raise FormatError(f"no scratch volume in {path}") from exc
        self = cls.__new__(cls)
        self._folder, self._owned, self._array, self._name = path, False, array, name
        self._dtype = np.dtype(array.dtype)
        shp = tuple(int(n) for n in array.shape)
        scale = tuple(float(s) for s in scale_um)
        self._levels = (Level("0", shp, tuple(array.chunks), scale, (0.0, 0.0, 0.0)),)
        return self

    # -- writable array -----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._levels[0].shape

    def __getitem__(self, key: Any) -> Any:
        return self._array[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._array[key] = value

    # -- VolumeSource -------------------------------------------------------------------
    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        if level != 0:
            raise ParameterError(f"a scratch volume has one level, not level {level}")
        return np.asarray(self._array[normalize_region(region, self.shape)])

    # -- lifetime -----------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        return self._folder

    def close(self) -> None:
        """Delete the array's folder if this object created it as a temporary folder."""
        if self._owned and self._folder.exists():
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ScratchVolume:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
