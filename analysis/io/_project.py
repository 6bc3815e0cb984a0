"""Project folder files: ``project.json``, base annotations, scene state, tracks, CSV exports.

A project folder holds references and edits, never a copy of the image::

    project.json        ProjectInfo (versioned): image path/URL, label names, tracks base
    tracks.geff/        the base track graph the journal starts from (GEFF, zarr v2)
    annotations.json    the base annotations (analysis.annotations schema)
    journal.jsonl       every confirmed edit (analysis.edits.Journal, fsync'd)
    scene.json          the viewer's scene state (an opaque dict to analysis)

Small JSON files are replaced atomically (write a temporary file, fsync, rename,
fsync the folder) so a crash leaves the old or the new file, never half of one.
:mod:`analysis.project` calls these functions; it opens no file itself.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analysis.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from analysis.annotations import Marker, Measurement
    from analysis.tracks import TrackGraph

__all__ = [
    "ANNOTATIONS_FILE",
    "PROJECT_FILE",
    "PROJECT_SCHEMA_VERSION",
    "SCENE_FILE",
    "TRACKS_BASE",
    "ProjectInfo",
    "is_project",
    "read_json_file",
    "read_project_info",
    "read_tracks_file",
    "write_json_atomic",
    "write_markers_csv",
    "write_measurements_csv",
    "write_project_info",
    "write_tracks_file",
]

PROJECT_SCHEMA_VERSION = 1
PROJECT_FILE = "project.json"
ANNOTATIONS_FILE = "annotations.json"
SCENE_FILE = "scene.json"
TRACKS_BASE = "tracks.geff"

MARKER_COLUMNS = ("id", "class", "z_um", "y_um", "x_um", "t")
MEASUREMENT_COLUMNS = ("id", "kind", "value", "unit", "t", "n_points", "points_um")


class ProjectInfo(BaseModel):
    """``project.json``: what the project refers to.

    Attributes
    ----------
    image : str or None
        Image store as an absolute local path or a URL (not copied).
    labels : list of str
        Label image names inside the store, in display order.
    tracks : str or None
        The base tracks inside the folder (``tracks.geff``) or None.
    tracks_source : str or None
        Where the tracks were imported from, for the record.
    """

    model_config = ConfigDict(extra="forbid", title="vrscope project")

    schema_version: Literal[1] = 1
    image: str | None = None
    labels: list[str] = Field(default_factory=list)
    tracks: str | None = None
    tracks_source: str | None = None


def is_project(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds a ``project.json``."""
    return (Path(folder) / PROJECT_FILE).is_file()


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically and durably."""
    p = Path(path)
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return p


def read_json_file(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; FormatError naming the file when it is not JSON."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FormatError(f"{p} is not valid JSON: {exc}") from exc


def write_project_info(folder: str | os.PathLike[str], info: ProjectInfo) -> Path:
    return write_json_atomic(Path(folder) / PROJECT_FILE, info.model_dump(mode="json"))


def read_project_info(folder: str | os.PathLike[str]) -> ProjectInfo:
    """Read ``folder/project.json``.

    Raises
    ------
    FormatError
        The folder is not a project, or ``project.json`` is invalid or of a newer version.
    """
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise FormatError(f"project folder {p} does not exist")
    f = p / PROJECT_FILE
    if not f.is_file():
        raise FormatError(f"{p} is not a vrscope project (no {PROJECT_FILE})")
    raw = read_json_file(f)
    if isinstance(raw, dict) and raw.get("schema_version", 1) != PROJECT_SCHEMA_VERSION:
        raise FormatError(
            f"{f}: schema_version {raw.get('schema_version')} is not supported "
            f"(this vrscope reads {PROJECT_SCHEMA_VERSION})"
        )
    try:
        return ProjectInfo.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise FormatError(f"{f}: {where}: {err['msg']}") from exc


def read_tracks_file(path: str | os.PathLike[str]) -> TrackGraph:
    """A track graph from GEFF (folder/``.zarr``/``.geff``), a CSV spots table or a CTC folder."""
    from analysis.io._ctc import read_ctc
    from analysis.io._geff import read_geff
    from analysis.io._tracks_csv import read_tracks_csv

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    if p.suffix.lower() == ".csv":
        return read_tracks_csv(p)
    if p.is_dir() and any(p.glob("*_track.txt")):
        return read_ctc(p)[0]
    return read_geff(p)


def write_tracks_file(
    graph: TrackGraph, path: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write ``graph`` as a CSV spots table (``.csv``, edges next to it) or GEFF (otherwise)."""
    from analysis.io._geff import write_geff
    from analysis.io._tracks_csv import write_tracks_csv

    p = Path(path).expanduser()
    if p.suffix.lower() == ".csv":
        return write_tracks_csv(graph, p, overwrite=overwrite)[0]
    return write_geff(graph, p, zarr_format=2, overwrite=overwrite)


def _check_out(path: str | os.PathLike[str], overwrite: bool) -> Path:
    p = Path(path).expanduser()
    if not p.parent.is_dir():
        raise FormatError(f"output folder {p.parent} does not exist")
    if p.exists() and not overwrite:
        raise FormatError(f"{p} already exists (pass overwrite to replace it)")
    return p


def write_markers_csv(
    markers: Iterable[Marker], path: str | os.PathLike[str], overwrite: bool = True
) -> Path:
    """One row per marker: ``id, class, z_um, y_um, x_um, t`` (t empty for static volumes)."""
    import pandas as pd

    p = _check_out(path, overwrite)
    rows = [
        (m.id, m.class_name, *m.position_um, m.t if m.t is not None else float("nan"))
        for m in markers
    ]
    pd.DataFrame(rows, columns=list(MARKER_COLUMNS)).to_csv(p, index=False)
    return p


def write_measurements_csv(
    measurements: Iterable[Measurement], path: str | os.PathLike[str], overwrite: bool = True
) -> Path:
    """One row per measurement: ``id, kind, value, unit (µm or deg), t, n_points, points_um``
    (the points as a JSON list of [z, y, x] in µm)."""
    import pandas as pd

    p = _check_out(path, overwrite)
    rows = [
        (
            m.id,
            m.kind,
            m.value,
            m.unit,
            m.t if m.t is not None else float("nan"),
            len(m.points_um),
            json.dumps([list(pt) for pt in m.points_um]),
        )
        for m in measurements
    ]
    pd.DataFrame(rows, columns=list(MEASUREMENT_COLUMNS)).to_csv(p, index=False, encoding="utf-8")
    return p


def image_reference(image: str | os.PathLike[str] | None) -> str | None:
    """How ``project.json`` refers to an image: URLs as given, local paths made absolute."""
    if image is None:
        return None
    s = os.fspath(image)
    if "://" in s:
        return s
    p = Path(s).expanduser()
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", str(p))
    return str(p.resolve())


def check_labels(labels: Sequence[str]) -> list[str]:
    out = [str(n) for n in labels]
    if len(set(out)) != len(out):
        raise ParameterError(f"label names repeat: {out}")
    return out
