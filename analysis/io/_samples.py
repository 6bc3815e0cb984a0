"""Writing generated samples: OME-Zarr image + label images + truth table (+ GEFF lineage).

Layout of a written sample ``OUT.zarr``:

- ``OUT.zarr``: the OME-Zarr image (NGFF 0.5 or 0.4) written by :func:`write_ngff`,
  with ``labels/<name>`` written by :func:`write_labels`;
- fibsem: labels ``cell``, ``nucleus``, ``mitochondria``, ``nuclear_pores``;
  timelapse: ``labels/nuclei`` (t, z, y, x) and the true lineage as GEFF in the group
  ``OUT.zarr/tracks`` (zarr v3 for NGFF 0.5, v2 for 0.4);
- ``OUT.truth.csv`` next to the store (the ``.zarr`` suffix replaced): for fibsem one row
  per object (``analysis.synthetic.TRUTH_COLUMNS``); for timelapse one row per lineage
  node (``analysis.synthetic.NODE_COLUMNS``). A CSV is kept outside the store so zarr
  readers never meet a foreign file; the store's root attributes name it under
  ``vrscope.truth`` (a path relative to the store's parent folder).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from analysis.errors import FormatError, ParameterError
from analysis.synthetic import FIBSEM_LABELS, FibsemSample, TimelapseSample
from analysis.volume import ArrayVolumeSource, Level, Region

__all__ = [
    "TIMELAPSE_LABELS",
    "TRACKS_GROUP",
    "check_sample_output",
    "truth_path",
    "write_fibsem_sample",
    "write_timelapse_sample",
]

log = logging.getLogger(__name__)

#: Name of the timelapse's label image.
TIMELAPSE_LABELS = "nuclei"
#: Group inside a timelapse store that holds the GEFF lineage.
TRACKS_GROUP = "tracks"


def truth_path(store: str | os.PathLike[str]) -> Path:
    """Where the truth table of the sample at ``store`` lives: ``X.zarr`` -> ``X.truth.csv``."""
    p = Path(store).expanduser()
    stem = p.name[: -len(".zarr")] if p.name.endswith(".zarr") else p.name
    return p.with_name(f"{stem}.truth.csv")


def check_sample_output(path: str | os.PathLike[str], overwrite: bool = False) -> tuple[Path, Path]:
    """Check that a sample can be written at ``path``; return (store, truth CSV) paths.

    Call it before generating a large sample so a bad path fails at once.

    Raises
    ------
    FormatError
        The parent folder is missing, or the store or truth file exists and not ``overwrite``.
    ParameterError
        ``path`` does not name a store.
    """
    store = Path(path).expanduser()
    if not store.name or store.name in (".", ".."):
        raise ParameterError(f"output path {str(path)!r} must name a store, e.g. sample.zarr")
    truth = truth_path(store)
    if not store.parent.is_dir():
        raise FormatError(f"output folder {store.parent} does not exist")
    if truth.exists() and not overwrite:
        raise FormatError(f"{truth} already exists (pass overwrite to replace it)")
    if store.exists() and not overwrite:
        raise FormatError(f"{store} already exists (pass overwrite to replace it)")
    return store, truth


def _mark(store: Path, info: dict[str, Any]) -> None:
    """Record what the store holds in the root attributes (key ``vrscope``)."""
    import zarr
    import zarr.storage

    root = zarr.open_group(zarr.storage.LocalStore(store), mode="r+")
    root.attrs.update({"vrscope": info})


def write_fibsem_sample(
    sample: FibsemSample,
    path: str | os.PathLike[str],
    *,
    version: Literal["0.4", "0.5"] = "0.5",
    chunks: tuple[int, int, int] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a :class:`~analysis.synthetic.FibsemSample` as OME-Zarr with labels and its truth CSV.

    Parameters
    ----------
    sample : FibsemSample
        From :func:`analysis.synthetic.fibsem_cell`.
    path : path-like
        The store to create, e.g. ``cell.zarr``.
    version : {"0.4", "0.5"}, default: "0.5"
    chunks : (z, y, x) ints, optional
        Default: the writer's (64 per axis).
    overwrite : bool, default: False
        Replace an existing store and truth file.
    progress : bool, default: False
        tqdm progress bars while writing.

    Returns
    -------
    pathlib.Path
        The truth CSV written next to the store (see :func:`truth_path`).
    """
    from analysis.io._write import write_labels, write_ngff

    store, truth = check_sample_output(path, overwrite)
    image = ArrayVolumeSource(sample.image, scale_um=sample.scale_um, name="fibsem_cell")
    write_ngff(
        image,
        store,
        version=version,
        chunks=chunks,
        name="fibsem_cell",
        overwrite=overwrite,
        progress=progress,
    )
    for name in FIBSEM_LABELS:
        write_labels(store, name, sample.labels[name], chunks=chunks, progress=progress)
    sample.truth.to_csv(truth, index=False)
    _mark(
        store,
        {
            "sample": "fibsem",
            "seed": sample.seed,
            "truth": truth.name,
            "labels": list(FIBSEM_LABELS),
            # Nucleus halves and the known pore density in each (analysis.synthetic.PoreLayout).
            "pore_layout": sample.pore_layout.as_dict() if sample.pore_layout else None,
        },
    )
    log.info("wrote fibsem sample %s and truth %s", store, truth)
    return truth


class _TimedArraySource(ArrayVolumeSource):
    """An in-memory (t, z, y, x) source whose t axis has a scale in seconds."""

    def __init__(
        self, data: npt.NDArray[Any], scale_um: tuple[float, float, float], dt_s: float, name: str
    ) -> None:
        super().__init__(data, scale_um=scale_um, axes="tzyx", name=name)
        self._timed = tuple(replace(lev, scale=(dt_s, *lev.scale[1:])) for lev in self._levels)

    @property
    def levels(self) -> tuple[Level, ...]:
        return self._timed

    def read(self, level: int, region: Region | None = None) -> npt.NDArray[np.generic]:
        return super().read(level, region)


def write_timelapse_sample(
    sample: TimelapseSample,
    path: str | os.PathLike[str],
    *,
    version: Literal["0.4", "0.5"] = "0.5",
    chunks: tuple[int, int, int] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a :class:`~analysis.synthetic.TimelapseSample`: image, ``labels/nuclei``, GEFF, CSV.

    The lineage goes to ``path/tracks`` as GEFF (``geff.core_io.write_arrays``): node
    props ``t`` (frame; axis type time, scale = frame interval in seconds), ``z``, ``y``,
    ``x`` (µm; axis type space), ``label`` (the label value in that frame) and
    ``track_id`` (the tracklet, equal to the CTC label); edges parent -> child. The GEFF
    metadata names ``../labels/nuclei`` as related labels (``node_prop="label"``).

    Parameters
    ----------
    sample : TimelapseSample
        From :func:`analysis.synthetic.timelapse`.
    path : path-like
    version : {"0.4", "0.5"}, default: "0.5"
    chunks : (z, y, x) ints, optional
    overwrite, progress : bool, default: False

    Returns
    -------
    pathlib.Path
        The truth CSV (lineage nodes) next to the store.
    """
    from analysis.io._write import write_labels, write_ngff

    store, truth = check_sample_output(path, overwrite)
    source = _TimedArraySource(sample.image, sample.scale_um, sample.frame_interval_s, "timelapse")
    write_ngff(
        source,
        store,
        version=version,
        chunks=chunks,
        name="timelapse",
        overwrite=overwrite,
        progress=progress,
    )
    write_labels(store, TIMELAPSE_LABELS, sample.labels, chunks=chunks, progress=progress)
    _write_geff(sample, store / TRACKS_GROUP, zarr_format=3 if version == "0.5" else 2)
    sample.nodes.to_csv(truth, index=False)
    _mark(
        store,
        {
            "sample": "timelapse",
            "seed": sample.seed,
            "truth": truth.name,
            "labels": [TIMELAPSE_LABELS],
            "tracks": TRACKS_GROUP,
        },
    )
    log.info("wrote timelapse sample %s (lineage in %s/%s)", store, store, TRACKS_GROUP)
    return truth


def _write_geff(sample: TimelapseSample, target: Path, zarr_format: Literal[2, 3]) -> None:
    from geff.core_io import write_arrays
    from geff_spec import Axis, GeffMetadata, RelatedObject

    nodes = sample.nodes
    node_ids = nodes["node_id"].to_numpy(np.int64)
    props: dict[str, Any] = {
        "t": {"values": nodes["t"].to_numpy(np.int64), "missing": None},
        "z": {"values": nodes["z"].to_numpy(np.float64), "missing": None},
        "y": {"values": nodes["y"].to_numpy(np.float64), "missing": None},
        "x": {"values": nodes["x"].to_numpy(np.float64), "missing": None},
        "label": {"values": nodes["label"].to_numpy(np.int64), "missing": None},
        "track_id": {"values": nodes["track_id"].to_numpy(np.int64), "missing": None},
    }
    axes = [
        Axis(
            name="t",
            type="time",
            unit="frame",
            scale=sample.frame_interval_s,
            scaled_unit="second",
        ),
        Axis(name="z", type="space", unit="micrometer"),
        Axis(name="y", type="space", unit="micrometer"),
        Axis(name="x", type="space", unit="micrometer"),
    ]
    metadata = GeffMetadata(
        directed=True,
        axes=axes,
        node_props_metadata={},
        edge_props_metadata={},
        track_node_props={"tracklet": "track_id"},
        related_objects=[
            RelatedObject(type="labels", path=f"../labels/{TIMELAPSE_LABELS}", node_prop="label")
        ],
        extra={"vrscope": {"sample": "timelapse", "seed": sample.seed}},
    )
    write_arrays(
        str(target),
        node_ids,
        props,
        sample.edges.astype(np.int64).reshape(-1, 2),
        None,
        metadata,
        zarr_format=zarr_format,
    )
