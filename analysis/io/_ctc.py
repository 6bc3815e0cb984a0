"""Cell Tracking Challenge (CTC) tracks: ``res_track.txt`` / ``man_track.txt`` + mask TIFFs.

The CTC format stores one label image per frame (``mask000.tif`` ... or
``man_track000.tif`` ...) where every track has its own label ``L``, and a text
file with one line ``L B E P`` per track: label, first frame, last frame, parent
track label (0 = none). We read it into a :class:`~analysis.tracks.TrackGraph`
(one node per label per frame at its centroid, edges along each track and from a
parent's last node to a daughter's first node) and write it back, relabelling
the masks so every CTC track gets its own label (tracks are our tracklets, split
where a tracklet skips frames because CTC tracks must be continuous).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from analysis.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from analysis.tracks import TrackGraph

__all__ = ["read_ctc", "read_ctc_masks", "write_ctc"]

log = logging.getLogger(__name__)

_FRAME_RE = re.compile(r"^(.*?)(\d+)$")


def _track_file(folder: Path) -> Path:
    cands = sorted(folder.glob("*_track.txt"))
    if not cands:
        raise FormatError(f"{folder} has no CTC track file (res_track.txt or man_track.txt)")
    if len(cands) > 1:
        raise FormatError(f"{folder} has several track files: {[c.name for c in cands]}")
    return cands[0]


def _mask_files(folder: Path) -> list[tuple[int, Path]]:
    found: dict[str, list[tuple[int, Path]]] = {}
    for f in folder.iterdir():
        if f.suffix.lower() not in (".tif", ".tiff"):
            continue
        m = _FRAME_RE.match(f.stem)
        if m:
            found.setdefault(m.group(1), []).append((int(m.group(2)), f))
    if not found:
        raise FormatError(f"{folder} has no CTC mask TIFFs (mask000.tif, man_track000.tif, ...)")
    if len(found) > 1:
        raise FormatError(f"{folder} mixes mask series {sorted(found)}; keep one per folder")
    files = sorted(next(iter(found.values())))
    frames = [t for t, _ in files]
    if len(set(frames)) != len(frames):
        raise FormatError(f"{folder}: two mask files for the same frame")
    return files


def _read_track_table(path: Path) -> npt.NDArray[np.int64]:
    rows: list[list[int]] = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            vals = [int(v) for v in parts]
        except ValueError:
            raise FormatError(
                f"{path} line {i}: expected 4 integers 'L B E P', got {line!r}"
            ) from None
        if len(vals) != 4:
            raise FormatError(f"{path} line {i}: expected 4 integers 'L B E P', got {line!r}")
        rows.append(vals)
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    labels = table[:, 0]
    if np.any(labels <= 0):
        raise FormatError(f"{path}: track labels must be positive")
    if np.unique(labels).size != labels.size:
        raise FormatError(f"{path}: a track label appears twice")
    if np.any(table[:, 2] < table[:, 1]):
        raise FormatError(f"{path}: a track ends before it begins")
    return table


def read_ctc_masks(folder: str | os.PathLike[str]) -> npt.NDArray[np.integer[Any]]:
    """The mask TIFFs of a CTC folder stacked to (T, [Z,] Y, X), frame = file number."""
    import tifffile

    def imread(f: Path) -> npt.NDArray[Any]:
        try:
            img: npt.NDArray[Any] = np.asarray(tifffile.imread(f))
        except (tifffile.TiffFileError, ValueError, OSError) as exc:
            raise FormatError(f"{f}: not a readable mask TIFF ({exc})") from exc
        if img.dtype.kind not in "iu":
            raise FormatError(f"{f}: masks must hold integers, not {img.dtype}")
        return img

    files = _mask_files(Path(folder))
    first = imread(files[0][1])
    n_frames = files[-1][0] + 1
    out = np.zeros((n_frames, *first.shape), dtype=first.dtype)
    for t, f in files:
        img = imread(f)
        if img.shape != first.shape:
            raise FormatError(f"{f} has shape {img.shape}, the first mask has {first.shape}")
        out[t] = img
    return out


def read_ctc(
    folder: str | os.PathLike[str],
    scale_um: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[TrackGraph, npt.NDArray[np.integer[Any]]]:
    """Read a CTC result or ground-truth folder.

    Parameters
    ----------
    folder : path-like
        Holds ``res_track.txt`` or ``man_track.txt`` and the mask TIFFs.
    scale_um : (z, y, x) floats, default: (1, 1, 1)
        Voxel size; node positions are mask centroids in µm (2D masks: z = 0).

    Returns
    -------
    graph : TrackGraph
        ``label`` = the CTC track label of each node; node ids numbered by (t, label).
    masks : (T, [Z,] Y, X) int array
        The stacked masks, as stored.

    Raises
    ------
    FormatError
        Missing or malformed track file or masks, labels in the masks without a
        track line (or the reverse), parents that do not exist or end too late.
    """
    from skimage.measure import regionprops_table

    from analysis.tracks import TrackGraph

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(root))
    track_path = _track_file(root)
    table = _read_track_table(track_path)
    masks = read_ctc_masks(root)
    if masks.dtype.kind not in "iu":
        raise FormatError(f"{root}: masks must be integer label images, got {masks.dtype}")
    ndim = masks.ndim - 1
    if ndim not in (2, 3):
        raise FormatError(f"{root}: masks must be 2D or 3D per frame, got {ndim}D")
    scale = np.asarray(scale_um, dtype=np.float64)[-ndim:]

    t_list, lab_list, pos_list = [], [], []
    for t in range(masks.shape[0]):
        props = regionprops_table(  # type: ignore[no-untyped-call]
            np.asarray(masks[t]), properties=("label", "centroid")
        )
        if props["label"].size == 0:
            continue
        cen = np.stack([props[f"centroid-{k}"] for k in range(ndim)], axis=1) * scale
        pos = np.zeros((cen.shape[0], 3))
        pos[:, 3 - ndim :] = cen
        t_list.append(np.full(props["label"].size, t, dtype=np.int64))
        lab_list.append(props["label"].astype(np.int64))
        pos_list.append(pos)
    if not t_list:
        raise FormatError(f"{root}: the masks hold no objects")
    tt = np.concatenate(t_list)
    lab = np.concatenate(lab_list)
    pos = np.concatenate(pos_list)
    ids = np.arange(tt.size, dtype=np.int64)  # sorted by (t, label) by construction

    by_label = {int(r[0]): r for r in table}
    edges: list[npt.NDArray[np.int64]] = []
    first_last: dict[int, tuple[int, int, int]] = {}
    order = np.lexsort((tt, lab))
    lab_sorted = lab[order]
    cuts = np.flatnonzero(np.diff(lab_sorted)) + 1
    for grp in np.split(order, cuts):
        label = int(lab[grp[0]])
        row = by_label.get(label)
        if row is None:
            raise FormatError(
                f"{root}: label {label} is in the masks (frame {int(tt[grp[0]])}) "
                f"but not in {track_path.name}"
            )
        b, e = int(row[1]), int(row[2])
        times = tt[grp]
        if times.min() < b or times.max() > e:
            raise FormatError(
                f"{root}: label {label} appears at frames {int(times.min())}-{int(times.max())}, "
                f"outside its track {b}-{e} in {track_path.name}"
            )
        if times.size > 1:
            edges.append(np.stack([ids[grp[:-1]], ids[grp[1:]]], axis=1))
        first_last[label] = (int(ids[grp[0]]), int(ids[grp[-1]]), int(times.max()))
    for label, _b, _e, parent in table.tolist():
        if label not in first_last:
            raise FormatError(
                f"{root}: track {label} in {track_path.name} has no pixels in the masks"
            )
        if parent == 0:
            continue
        if parent not in first_last:
            raise FormatError(f"{root}: track {label} has parent {parent}, which does not exist")
        edges.append(np.array([[first_last[parent][1], first_last[label][0]]], dtype=np.int64))
    edge_arr = np.concatenate(edges) if edges else np.empty((0, 2), np.int64)
    try:
        graph = TrackGraph.from_arrays(ids, tt, pos, edge_arr, label=lab)
    except FormatError as exc:
        raise FormatError(f"{root}: {exc}") from exc
    return graph, masks


def _check_labels_present(graph: TrackGraph, m: npt.NDArray[Any]) -> None:
    """Every node's label must be an object of its frame, and unique within the frame."""
    tt, labels, ids = graph.t, graph.label, graph.node_ids
    order = np.lexsort((labels, tt))
    same = (np.diff(tt[order]) == 0) & (np.diff(labels[order]) == 0)
    if same.any():
        k = order[int(np.flatnonzero(same)[0])]
        raise ParameterError(
            f"two nodes at t={int(tt[k])} share label {int(labels[k])}; CTC needs one object each"
        )
    for t in np.unique(tt).tolist():
        sel = np.flatnonzero(tt == t)
        frame = m[t]
        present = np.zeros(int(max(frame.max(), labels[sel].max())) + 1, dtype=bool)
        present[frame] = True
        absent = sel[~present[labels[sel]]]
        if absent.size:
            k = int(absent[0])
            raise ParameterError(
                f"node {int(ids[k])} has label {int(labels[k])}, which is not in mask frame {t}"
            )


def write_ctc(
    graph: TrackGraph,
    folder: str | os.PathLike[str],
    masks: npt.ArrayLike,
    *,
    kind: Literal["res", "man"] = "res",
    overwrite: bool = False,
) -> Path:
    """Write ``graph`` as a CTC folder: relabelled masks plus the track file.

    Parameters
    ----------
    graph : TrackGraph
        Every node needs ``label`` > 0: the object's value in ``masks`` at its frame.
    folder : path-like
        Created if missing.
    masks : (T, [Z,] Y, X) int array
        The segmentation the node labels refer to. Objects without a node are dropped.
    kind : {"res", "man"}, default: "res"
        ``res_track.txt`` + ``maskNNN.tif`` (results) or ``man_track.txt`` +
        ``man_trackNNN.tif`` (ground truth).
    overwrite : bool, default: False

    Returns
    -------
    pathlib.Path
        The track file written.
    """
    import tifffile

    m = np.asarray(masks)
    if m.ndim not in (3, 4) or m.dtype.kind not in "iu":
        raise ParameterError(
            f"masks must be a (T, [Z,] Y, X) integer array, got {m.dtype} {m.shape}"
        )
    if len(graph) == 0:
        raise ParameterError("the track graph is empty; nothing to export")
    labels = graph.label
    if np.any(labels <= 0):
        bad = int(graph.node_ids[np.flatnonzero(labels <= 0)[0]])
        raise ParameterError(f"node {bad} has no segmentation label; CTC export needs one per node")
    tt = graph.t
    if tt.min() < 0 or tt.max() >= m.shape[0]:
        raise ParameterError(
            f"node times {int(tt.min())}..{int(tt.max())} exceed the {m.shape[0]} mask frames"
        )
    _check_labels_present(graph, m)
    out = Path(folder).expanduser()
    track_name = "res_track.txt" if kind == "res" else "man_track.txt"
    prefix = "mask" if kind == "res" else "man_track"
    if (out / track_name).exists() and not overwrite:
        raise FormatError(f"{out / track_name} already exists (use overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)

    ids = graph.node_ids
    tracklet = graph.tracklet_ids()
    # CTC tracks are continuous in time: a tracklet that skips frames is split there
    # and its later part becomes a daughter of the earlier part.
    o = np.lexsort((tt, tracklet))
    seg_start = np.ones(o.size, dtype=bool)
    seg_start[1:] = (tracklet[o][1:] != tracklet[o][:-1]) | (np.diff(tt[o]) > 1)
    seg_index = np.cumsum(seg_start) - 1
    n_seg = int(seg_index[-1]) + 1
    starts = np.flatnonzero(seg_start)
    ends = np.append(starts[1:], o.size) - 1
    seg_first_t = tt[o][starts]
    # Number CTC tracks by (first frame, tracklet id) so output is deterministic.
    rank = np.lexsort((tracklet[o][starts], seg_first_t))
    ctc_id = np.empty(n_seg, dtype=np.int64)
    ctc_id[rank] = np.arange(1, n_seg + 1)
    node_ctc = np.empty(o.size, dtype=np.int64)
    node_ctc[o] = ctc_id[seg_index]
    row_of = {int(i): k for k, i in enumerate(ids.tolist())}
    lines = []
    for s in range(n_seg):
        first_node = int(ids[o][starts[s]])
        parent_id = 0
        if (
            seg_start[starts[s]]
            and starts[s] > 0
            and tracklet[o][starts[s] - 1] == tracklet[o][starts[s]]
        ):
            parent_id = int(ctc_id[s - 1])  # continuation after a gap
        else:
            p = graph.parent(first_node)
            if p is not None:
                parent_id = int(node_ctc[row_of[p]])
        lines.append((int(ctc_id[s]), int(tt[o][starts[s]]), int(tt[o][ends[s]]), parent_id))
    lines.sort()

    max_id = n_seg
    dtype = np.uint16 if max_id < 2**16 else np.uint32
    width = max(3, len(str(m.shape[0] - 1)))
    t_order = np.argsort(tt, kind="stable")
    cuts = np.flatnonzero(np.diff(tt[t_order])) + 1
    groups = {int(tt[g[0]]): g for g in np.split(t_order, cuts)}
    for t in range(m.shape[0]):
        frame = m[t]
        g = groups.get(t)
        relabelled = np.zeros(frame.shape, dtype=dtype)
        if g is not None:
            lut = np.zeros(int(max(frame.max(), labels[g].max())) + 1, dtype=dtype)
            lut[labels[g]] = node_ctc[g]
            relabelled = lut[frame]
        tifffile.imwrite(out / f"{prefix}{t:0{width}d}.tif", relabelled, compression="zlib")
    track_file = out / track_name
    track_file.write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in lines))
    return track_file
