"""A synthetic 3D time-lapse of fluorescent nuclei that move and divide, with the true lineage.

Model
-----
Nuclei are ellipsoids (random orientation, 3-4.5 µm semi-axes) simulated in µm in a
cubic field of view. Each frame every nucleus takes a step of a smooth random walk
(velocity = 0.7 x previous velocity + Gaussian kick, about 1 µm per frame, so a cell
moves a fraction of its radius between frames). Moves that would bring two nuclei closer than
``gap_um`` (surface to surface, bounding spheres) or out of the field are shortened or
cancelled, so nuclei never overlap or touch. Each nucleus has a cell-cycle length;
when it is reached the nucleus condenses (smaller, brighter) for one frame and then
splits into two daughters (half the volume each) placed side by side along a random
axis; daughters grow back over their cycle. At least one division happens whenever
``frames >= 4``.

Labels follow the Cell Tracking Challenge convention: one label id per track segment
(a cell between its birth or the first frame and its division or the last frame); the
daughters of a division get new ids. The lineage is a graph of nodes (one per label per
frame: ``node_id, t, z, y, x`` in µm at the centroid of the label mask, ``label``,
``track_id``) and edges parent -> child: consecutive frames of one track, and the last
node of a mother to the first node of each daughter.

Image: uint16, background ~100 counts, nuclei 600-1400 counts with a soft edge and
chromatin texture, blurred (point-spread function), Poisson shot noise plus Gaussian
read noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi

from analysis.errors import ParameterError
from analysis.synthetic._shapes import (
    ProgressCallback,
    box_around,
    random_rotation,
    random_unit_vectors,
)

__all__ = ["NODE_COLUMNS", "TRACK_COLUMNS", "TimelapseSample", "timelapse"]

log = logging.getLogger(__name__)

#: Columns of ``TimelapseSample.nodes``.
NODE_COLUMNS = ("node_id", "t", "z", "y", "x", "label", "track_id", "parent_id")
#: Columns of ``TimelapseSample.tracks`` (the CTC ``man_track.txt`` table: L B E P).
TRACK_COLUMNS = ("track_id", "start", "end", "parent_track_id")

_BACKGROUND = 100.0
_READ_NOISE = 12.0


@dataclass(frozen=True)
class TimelapseSample:
    """A generated time-lapse and its true lineage.

    Attributes
    ----------
    image : (t, z, y, x) uint16 array
    labels : (t, z, y, x) uint16 array
        CTC-style instance labels: the value is the track (segment) id, 0 is background.
    scale_um : (3,) floats
        Voxel size (z, y, x) in µm.
    frame_interval_s : float
        Time between frames in seconds.
    nodes : pandas.DataFrame
        Columns :data:`NODE_COLUMNS`; ``z, y, x`` in µm (label centroids), ``t`` the frame,
        ``parent_id`` the previous node in the lineage (-1 for none).
    edges : (E, 2) int64 array
        ``(parent node_id, child node_id)``, forward in time.
    tracks : pandas.DataFrame
        Columns :data:`TRACK_COLUMNS`: the CTC track table (parent 0 = none).
    seed : int
    """

    image: npt.NDArray[np.uint16]
    labels: npt.NDArray[np.uint16]
    scale_um: tuple[float, float, float]
    frame_interval_s: float
    nodes: pd.DataFrame = field(repr=False)
    edges: npt.NDArray[np.int64] = field(repr=False)
    tracks: pd.DataFrame = field(repr=False)
    seed: int = 0

    @property
    def divisions(self) -> npt.NDArray[np.int64]:
        """Node ids of the mothers: the nodes with two children, shape (D,)."""
        parents, counts = np.unique(self.edges[:, 0], return_counts=True)
        out: npt.NDArray[np.int64] = parents[counts == 2].astype(np.int64)
        return out


@dataclass
class _Cell:
    track_id: int
    pos: npt.NDArray[np.float64]  # µm (z, y, x)
    vel: npt.NDArray[np.float64]
    axes: npt.NDArray[np.float64]  # full-grown semi-axes, µm
    rot: npt.NDArray[np.float64]  # columns = ellipsoid axes in (z, y, x)
    brightness: float
    age: int
    cycle: int
    growth: float  # current size factor (2**(-1/3) just after division, up to 1)
    condensed: bool = False

    @property
    def bound(self) -> float:
        """Bounding-sphere radius (µm) at the current size."""
        return float(self.axes.max() * self.growth)


def _check(frames: int, size: int, n_cells: int, seed: int) -> None:
    for name, value, lo, hi in (
        ("frames", frames, 2, 500),
        ("size", size, 32, 512),
        ("n_cells", n_cells, 1, 200),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ParameterError(f"{name} must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise ParameterError(f"{name} must be between {lo} and {hi}, got {value}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")


def timelapse(
    frames: int = 20,
    size: int = 96,
    n_cells: int | None = None,
    seed: int = 0,
    *,
    voxel_size_um: Sequence[float] = (1.0, 0.5, 0.5),
    frame_interval_s: float = 300.0,
    gap_um: float | None = None,
    progress: ProgressCallback | None = None,
) -> TimelapseSample:
    """Generate moving, dividing fluorescent nuclei with labels and the true lineage.

    Parameters
    ----------
    frames : int, default: 20
        Number of time points (2-500).
    size : int, default: 96
        Edge length in x and y in voxels; z has ``size * sy / sz`` voxels so the field of
        view is a cube (48 µm at the defaults).
    n_cells : int, optional
        Nuclei in the first frame. Default: one per 12,000 µm³ of field, at least 2
        (8 at the defaults).
    seed : int, default: 0
    voxel_size_um : (3,) floats, default: (1.0, 0.5, 0.5)
        Voxel size (z, y, x) in µm (light-sheet-like: coarser in z).
    frame_interval_s : float, default: 300
    gap_um : float, optional
        Minimum surface gap between nuclei; default two of the largest voxel size, so
        label masks never touch.
    progress : callable ``(stage, done, total)``, optional
        Called once per frame after the arguments are checked.

    Returns
    -------
    TimelapseSample

    Raises
    ------
    ParameterError
        For out-of-range arguments, or when ``n_cells`` nuclei do not fit in the field.
    """
    _check(frames, size, n_cells if n_cells is not None else 1, seed)
    scale = np.asarray(voxel_size_um, dtype=np.float64)
    if scale.shape != (3,) or np.any(~np.isfinite(scale)) or np.any(scale <= 0):
        raise ParameterError(f"voxel_size_um must be three positive numbers, got {voxel_size_um!r}")
    if not np.isfinite(frame_interval_s) or frame_interval_s <= 0:
        raise ParameterError(f"frame_interval_s must be positive, got {frame_interval_s!r}")
    gap = float(2.0 * scale.max() if gap_um is None else gap_um)
    if not np.isfinite(gap) or gap < scale.max():
        raise ParameterError(f"gap_um must be at least one voxel ({scale.max()} µm), got {gap}")
    field_um = size * scale[1]
    shape = (max(4, round(field_um / scale[0])), int(size), max(4, round(field_um / scale[2])))
    extent = np.asarray(shape, dtype=np.float64) * scale
    if n_cells is None:
        n_cells = max(2, round(float(np.prod(extent)) / 12000.0))
    rng = np.random.default_rng(int(seed))

    cells = _initial_cells(int(n_cells), extent, gap, rng)
    next_id = max(c.track_id for c in cells) + 1
    if frames >= 4:
        # Guarantee a division in the middle of the sequence: the test of a tracker
        # needs at least one.
        cells[0].cycle = cells[0].age + max(1, frames // 2 - 1)

    tracks: dict[int, list[int]] = {}  # track_id -> [start, end, parent]
    for c in cells:
        tracks[c.track_id] = [0, 0, 0]
    image = np.empty((frames, *shape), dtype=np.uint16)
    labels = np.zeros((frames, *shape), dtype=np.uint16)
    for t in range(frames):
        if progress is not None:
            progress(f"frame {t}", t, frames)
        _render(cells, shape, scale, image, labels, t, rng)
        for c in cells:
            tracks[c.track_id][1] = t
        if t == frames - 1:
            break
        cells, next_id = _step(cells, extent, gap, next_id, t, tracks, rng)

    nodes, edges = _lineage(labels, scale, tracks)
    if progress is not None:
        progress("done", frames, frames)
    track_table = pd.DataFrame(
        [(k, v[0], v[1], v[2]) for k, v in sorted(tracks.items())], columns=list(TRACK_COLUMNS)
    ).astype(np.int64)
    log.info(
        "timelapse: %d frames, %d tracks, %d divisions",
        frames,
        len(track_table),
        int((track_table["parent_track_id"] > 0).sum() // 2),
    )
    return TimelapseSample(
        image=image,
        labels=labels,
        scale_um=(float(scale[0]), float(scale[1]), float(scale[2])),
        frame_interval_s=float(frame_interval_s),
        nodes=nodes,
        edges=edges,
        tracks=track_table,
        seed=int(seed),
    )


def _new_axes(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    a = rng.uniform(3.6, 4.5)
    out: npt.NDArray[np.float64] = a * np.array(
        [1.0, rng.uniform(0.8, 0.95), rng.uniform(0.7, 0.85)]
    )
    return out


def _fits(
    pos: npt.NDArray[np.float64],
    bound: float,
    others: Sequence[tuple[npt.NDArray[np.float64], float]],
    extent: npt.NDArray[np.float64],
    gap: float,
) -> bool:
    """A bounding sphere inside the field (with ``gap`` margin) and ``gap`` away from others."""
    if np.any(pos - bound < gap) or np.any(pos + bound > extent - gap):
        return False
    for p, b in others:
        if float(np.linalg.norm(pos - p)) < bound + b + gap:
            return False
    return True


def _initial_cells(
    n: int, extent: npt.NDArray[np.float64], gap: float, rng: np.random.Generator
) -> list[_Cell]:
    cells: list[_Cell] = []
    for track_id in range(1, n + 1):
        axes = _new_axes(rng)
        cycle = int(rng.integers(18, 36))
        age = int(rng.integers(0, cycle))
        growth = 2 ** (-1 / 3) + (1 - 2 ** (-1 / 3)) * age / cycle
        bound = float(axes.max() * growth)
        others = [(c.pos, c.bound) for c in cells]
        for _ in range(2000):
            pos = rng.uniform(0, 1, 3) * extent
            if _fits(pos, bound, others, extent, gap):
                break
        else:
            raise ParameterError(
                f"n_cells={n} nuclei do not fit in a {extent.round(1).tolist()} µm field; "
                "use fewer cells or a larger size"
            )
        cells.append(
            _Cell(
                track_id=track_id,
                pos=pos,
                vel=rng.normal(0, 0.6, 3),
                axes=axes,
                rot=random_rotation(rng),
                brightness=float(rng.uniform(600, 1400)),
                age=age,
                cycle=cycle,
                growth=growth,
            )
        )
    return cells


def _step(
    cells: list[_Cell],
    extent: npt.NDArray[np.float64],
    gap: float,
    next_id: int,
    t: int,
    tracks: dict[int, list[int]],
    rng: np.random.Generator,
) -> tuple[list[_Cell], int]:
    """Advance one frame: divide the cells due, then move and grow the rest."""
    out: list[_Cell] = []
    pending = list(cells)
    while pending:
        c = pending.pop(0)
        others = [(o.pos, o.bound) for o in out + pending]
        if c.condensed:
            daughters = _divide(c, others, extent, gap, next_id, rng)
            if daughters is not None:
                for d in daughters:
                    tracks[d.track_id] = [t + 1, t + 1, c.track_id]
                next_id += 2
                out.extend(daughters)
                continue
            # No room to divide now: stay condensed and try again next frame.
        elif c.age + 1 >= c.cycle:
            # Prophase: the nucleus condenses (smaller, brighter) for a frame, then splits.
            c.condensed = True
            c.growth *= 0.9
        elif c.growth < 1.0:
            grown = min(1.0, c.growth + (1 - 2 ** (-1 / 3)) / c.cycle)
            if _fits(c.pos, float(c.axes.max() * grown), others, extent, gap):
                c.growth = grown
        c.age += 1
        c.vel = 0.7 * c.vel + rng.normal(0, 0.6, 3)
        speed = float(np.linalg.norm(c.vel))
        if speed > 1.8:  # keep steps well below a radius: trackable, not trivial
            c.vel *= 1.8 / speed
        for factor in (1.0, 0.5, 0.25):
            new = c.pos + factor * c.vel
            if _fits(new, c.bound, others, extent, gap):
                c.pos = new
                break
        else:
            c.vel = -0.5 * c.vel
        out.append(c)
    return out, next_id


def _divide(
    c: _Cell,
    others: Sequence[tuple[npt.NDArray[np.float64], float]],
    extent: npt.NDArray[np.float64],
    gap: float,
    next_id: int,
    rng: np.random.Generator,
) -> list[_Cell] | None:
    """Two daughters side by side along a random axis, or None if they do not fit."""
    growth = 2 ** (-1 / 3)
    daughter_axes = [_new_axes(rng), _new_axes(rng)]
    bounds = [float(a.max() * growth) for a in daughter_axes]
    for axis in random_unit_vectors(8, rng):
        half = (bounds[0] + bounds[1] + gap) / 2 + 0.3
        p0, p1 = c.pos + axis * half, c.pos - axis * half
        if _fits(p0, bounds[0], others, extent, gap) and _fits(
            p1, bounds[1], [*others, (p0, bounds[0])], extent, gap
        ):
            return [
                _Cell(
                    track_id=next_id + i,
                    pos=p,
                    vel=axis * (0.5 if i == 0 else -0.5),
                    axes=daughter_axes[i],
                    rot=random_rotation(rng),
                    brightness=c.brightness * rng.uniform(0.85, 1.15),
                    age=0,
                    cycle=int(rng.integers(18, 36)),
                    growth=growth,
                )
                for i, p in enumerate((p0, p1))
            ]
    return None


def _render(
    cells: Sequence[_Cell],
    shape: tuple[int, int, int],
    scale: npt.NDArray[np.float64],
    image: npt.NDArray[np.uint16],
    labels: npt.NDArray[np.uint16],
    t: int,
    rng: np.random.Generator,
) -> None:
    """Draw frame ``t``: labels exactly where the normalised ellipsoid radius is <= 1."""
    frame = np.full(shape, _BACKGROUND, dtype=np.float32)
    lab = labels[t]
    for c in cells:
        axes = c.axes * c.growth
        reach = c.bound + 2.0
        lo, hi = (c.pos - reach) / scale, (c.pos + reach) / scale
        b = box_around(lo, hi, shape)
        if b is None:
            continue
        box, _ = b
        z, y, x = (
            (np.arange(sl.start, sl.stop) * s - p).reshape([-1 if i == k else 1 for i in range(3)])
            for k, (sl, s, p) in enumerate(zip(box, scale, c.pos, strict=True))
        )
        # Coordinates in the ellipsoid's own frame: u_k = (p - c) . axis_k / a_k.
        rho2 = np.zeros(tuple(sl.stop - sl.start for sl in box), dtype=np.float64)
        for k in range(3):
            r = c.rot[:, k]
            u = (z * r[0] + y * r[1] + x * r[2]) / axes[k]
            rho2 = rho2 + u * u
        rho = np.sqrt(rho2)
        mask = rho <= 1.0
        if (lab[box][mask] != 0).any():
            raise RuntimeError("nuclei overlap; this is a bug in the simulation")
        lab[box][mask] = c.track_id
        bright = c.brightness * (1.6 if c.condensed else 1.0)
        texture = 1.0 + 0.15 * rng.standard_normal(rho.shape)
        edge = 1.0 / (1.0 + np.exp((rho - 1.0) / 0.08))
        frame[box] += (bright * edge * texture).astype(np.float32)
    sigma = 0.6 / scale * scale.min()  # a PSF of ~0.6 fine voxels, thinner in voxels along z
    frame = ndi.gaussian_filter(frame, sigma, output=np.float32)
    noisy = rng.poisson(np.maximum(frame, 0)).astype(np.float32)
    noisy += rng.normal(0.0, _READ_NOISE, size=shape).astype(np.float32)
    image[t] = np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)


def _lineage(
    labels: npt.NDArray[np.uint16],
    scale: npt.NDArray[np.float64],
    tracks: dict[int, list[int]],
) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """Nodes at the exact label centroids and parent -> child edges, from the label images."""
    rows: list[tuple[int, int, float, float, float, int, int, int]] = []
    last_node: dict[int, int] = {}
    edges: list[tuple[int, int]] = []
    node_id = 0
    for t in range(labels.shape[0]):
        frame = labels[t]
        for index, box in enumerate(ndi.find_objects(frame), start=1):
            if box is None:
                continue
            coords = np.nonzero(frame[box] == index)
            centroid = [
                (float(cc.mean()) + sl.start) * s
                for cc, sl, s in zip(coords, box, scale, strict=True)
            ]
            if index in last_node:
                parent = last_node[index]
            else:
                mother = tracks[index][2]
                parent = last_node.get(mother, -1) if mother else -1
            rows.append((node_id, t, centroid[0], centroid[1], centroid[2], index, index, parent))
            if parent >= 0:
                edges.append((parent, node_id))
            last_node[index] = node_id
            node_id += 1
    nodes = pd.DataFrame.from_records(rows, columns=list(NODE_COLUMNS))
    nodes = nodes.astype(
        {
            "node_id": np.int64,
            "t": np.int64,
            "label": np.int64,
            "track_id": np.int64,
            "parent_id": np.int64,
        }
    )
    edge_arr = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return nodes, edge_arr
