"""Base of the ``Vtk<Layer>`` adapters and numpy -> VTK helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from viewer.scene import ClippingPlane, Layer, Selection

from . import _vtk as v

if TYPE_CHECKING:
    from analysis.volume import VolumeSource

__all__ = [
    "DrawItem",
    "FrameContext",
    "VtkLayer",
    "choose_level",
    "draw_items",
    "polydata",
    "read_level_zyx",
]

# A streamed brick drawn with one crop box: (brick key, crop box lo + hi rounded to 1e-9).
DrawItem = tuple[int, tuple[float, ...]]


def draw_items(
    keys: Any, lo: Any, hi: Any
) -> dict[DrawItem, tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Streamed draw items keyed so that an item drawn last frame is found again.

    ``keys`` (N,) brick keys, ``lo`` / ``hi`` (N, 3) crop boxes; the value keeps the
    key and the unrounded boxes.
    """
    out: dict[DrawItem, tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
    for key, a, b in zip(np.asarray(keys).tolist(), lo, hi, strict=True):
        box = np.round(np.concatenate([a, b]), 9).tolist()
        out[(int(key), tuple(float(x) for x in box))] = (int(key), a, b)
    return out


log = logging.getLogger(__name__)


@dataclass
class FrameContext:
    """What adapters may need when they update, gathered once per frame."""

    current_time: float = 0.0
    selection: Selection = field(default_factory=Selection)
    planes: list[ClippingPlane] = field(default_factory=list)
    voxel_budget: int = 2**24
    display_size: tuple[int, int] = (400, 300)


class VtkLayer:
    """Draws one scene layer with VTK props.

    Event handlers only set ``dirty``; :meth:`sync` runs once per frame and
    calls :meth:`_update` when something changed. Subclasses fill ``props`` and
    implement ``_update(ctx)`` and ``_mappers()`` (for clipping).
    """

    @property
    def time_dependent(self) -> bool:
        """Redraw when the scene time changes."""
        return False

    @property
    def selection_dependent(self) -> bool:
        """Redraw when the selection changes."""
        return False

    @property
    def edits_pending(self) -> bool:
        """Whether a label edit announced to this layer is not drawn yet (checked after
        :meth:`sync`; layers that draw an edit in the frame that syncs it: never)."""
        return False

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.props: list[Any] = []
        self.dirty = True
        self.data_dirty = True
        layer.events.all.connect(self._on_property)
        layer.data_changed.connect(self._on_data)

    def _on_property(self, *_: object) -> None:
        self.dirty = True

    def _on_data(self, *_: object) -> None:
        self.dirty = True
        self.data_dirty = True

    def sync(self, ctx: FrameContext) -> None:
        if self.dirty:
            self._update(ctx)
            self.dirty = False
            self.data_dirty = False
        self._apply_visibility()

    def _apply_visibility(self) -> None:
        for p in self.props:
            p.SetVisibility(bool(self.layer.visible))

    def _update(self, ctx: FrameContext) -> None:
        raise NotImplementedError

    def layout(self, renderer: Any) -> None:
        """Place screen-space things for the camera just set (each frame; default none)."""

    def mappers(self) -> list[Any]:
        """Mappers the scene's clipping planes apply to."""
        return [p.GetMapper() for p in self.props if p.GetMapper() is not None]

    def close(self) -> None:
        self.layer.events.all.disconnect(self._on_property)
        self.layer.data_changed.disconnect(self._on_data)
        self.props.clear()


def choose_level(source: VolumeSource, voxel_budget: int, requested: int | None = None) -> int:
    """The finest pyramid level whose spatial voxel count fits ``voxel_budget``.

    ``requested`` wins when given (clipped to the levels that exist).
    """
    n = len(source.levels)
    if requested is not None:
        return min(max(int(requested), 0), n - 1)
    for i, lev in enumerate(source.levels):
        if int(np.prod(lev.shape[-3:], dtype=np.int64)) <= voxel_budget:
            return i
    return n - 1


def read_level_zyx(
    source: VolumeSource, level: int, t_index: int = 0, channel: int = 0
) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Read one whole level as (Z, Y, X) plus its spacing and origin (zyx µm).

    Leading ``t``/``c`` axes are indexed by ``t_index``/``channel`` (clipped).
    """
    lev = source.levels[level]
    region = []
    for ax, size in zip(source.axes, lev.shape, strict=True):
        if ax == "t":
            i = min(max(t_index, 0), size - 1)
            region.append(slice(i, i + 1))
        elif ax == "c":
            i = min(max(channel, 0), size - 1)
            region.append(slice(i, i + 1))
        else:
            region.append(slice(None))
    arr = np.asarray(source.read(level, tuple(region)))
    arr = arr.reshape(arr.shape[-3:])
    spacing = np.asarray(lev.scale_um, dtype=np.float64)
    origin = np.asarray(lev.translation[-3:], dtype=np.float64)
    return arr, spacing, origin


def _cells(conn: npt.NDArray[np.integer]) -> Any:
    conn = np.asarray(conn, dtype=np.int64)
    m, k = conn.shape if conn.ndim == 2 else (0, 0)
    ca = v.vtkCellArray()
    offsets = np.arange(0, m * k + 1, max(k, 1), dtype=np.int64) if m else np.zeros(1, np.int64)
    ca.SetData(
        v.numpy_to_vtkIdTypeArray(offsets, deep=True),
        v.numpy_to_vtkIdTypeArray(conn.reshape(-1).copy(), deep=True),
    )
    return ca


def polydata(
    points_xyz: npt.ArrayLike,
    polys: npt.ArrayLike | None = None,
    lines: npt.ArrayLike | None = None,
    colors: npt.ArrayLike | None = None,
    cell_arrays: dict[str, npt.ArrayLike] | None = None,
    point_arrays: dict[str, npt.ArrayLike] | None = None,
    normals: npt.ArrayLike | None = None,
) -> Any:
    """``vtkPolyData`` from numpy: points (N, 3) xyz, triangles (M, 3), segments (L, 2).

    ``colors`` (N, 3) floats 0..1 become the point scalars (uint8 RGB) the
    mappers draw directly.
    """
    pts = np.ascontiguousarray(np.asarray(points_xyz, dtype=np.float32).reshape(-1, 3))
    pd = v.vtkPolyData()
    vp = v.vtkPoints()
    vp.SetData(v.numpy_to_vtk(pts, deep=True))
    pd.SetPoints(vp)
    if polys is not None:
        pd.SetPolys(_cells(np.asarray(polys).reshape(-1, 3)))
    if lines is not None:
        pd.SetLines(_cells(np.asarray(lines).reshape(-1, 2)))
    if colors is not None:
        rgb = (np.clip(np.asarray(colors, dtype=np.float64).reshape(-1, 3), 0, 1) * 255).round()
        arr = v.numpy_to_vtk(np.ascontiguousarray(rgb.astype(np.uint8)), deep=True)
        arr.SetName("colors")
        pd.GetPointData().SetScalars(arr)
    if normals is not None:
        na = v.numpy_to_vtk(np.ascontiguousarray(np.asarray(normals, np.float32)), deep=True)
        na.SetName("normals")
        pd.GetPointData().SetNormals(na)
    for name, a in (cell_arrays or {}).items():
        va = v.numpy_to_vtk(np.ascontiguousarray(np.asarray(a)), deep=True)
        va.SetName(name)
        pd.GetCellData().AddArray(va)
    for name, a in (point_arrays or {}).items():
        va = v.numpy_to_vtk(np.ascontiguousarray(np.asarray(a)), deep=True)
        va.SetName(name)
        pd.GetPointData().AddArray(va)
    return pd
