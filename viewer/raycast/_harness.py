"""A standalone harness: an EGL context, an offscreen target, volumes held in memory.

What the tests and benchmarks draw with (no window, no VTK). A viewer does not use
:class:`Harness`; it gives :class:`VolumeRaycaster` its own context and framebuffer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from viewer.streaming import BrickGrid

from ._atlas import BrickAtlas, slot_from_level
from ._raycaster import Mode, VolumeRaycaster
from ._transfer import LabelStyle, TransferFunction
from ._tree import PageTree, leaf_words

__all__ = [
    "Harness",
    "ResidentVolume",
    "camera_matrices",
    "release_standalone_context",
    "standalone_context",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Vec3 = Sequence[float]


def standalone_context() -> Any:
    """A headless OpenGL >= 3.3 core context: EGL (Mesa llvmpipe or a GPU's driver)."""
    import moderngl

    # (moderngl's stub types the keyword settings wrongly as a dict)
    return moderngl.create_standalone_context(require=330, backend="egl")  # type: ignore[arg-type]


def release_standalone_context(ctx: Any) -> None:
    """Release a :func:`standalone_context` and leave no EGL context current.

    moderngl's ``release`` destroys the context but leaves it current on the
    thread; libglvnd then refuses any GLX context on that thread (``BadAccess``,
    which Xlib's default handler turns into process exit). ``eglReleaseThread``
    unbinds it.
    """
    import ctypes

    ctx.release()
    try:
        ctypes.CDLL("libEGL.so.1").eglReleaseThread()
    except OSError:  # no libEGL: the context was not an EGL one
        pass


def camera_matrices(
    position: Vec3,
    focal_point: Vec3,
    view_up: Vec3,
    view_angle: float,
    size: tuple[int, int],
    near: float | None = None,
    far: float | None = None,
) -> tuple[F64, F64]:
    """OpenGL view and projection matrices (4, 4) of a camera given in world **zyx** µm.

    Parameters are those of :class:`viewer.scene.Camera` (``view_angle`` is the
    vertical field of view in degrees); ``size`` is (width, height) pixels. The view
    matrix maps world **xyz** to eye space. Default clipping range: from 1e-3 to 1e3
    times the focal distance.
    """
    eye = np.asarray(position, float)[::-1]
    f = np.asarray(focal_point, float)[::-1] - eye
    dist = float(np.linalg.norm(f))
    if dist <= 0:
        raise ParameterError("camera position and focal point coincide")
    f /= dist
    r = np.cross(f, np.asarray(view_up, float)[::-1])
    if np.linalg.norm(r) < 1e-12:
        raise ParameterError("view_up is parallel to the view direction")
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = r, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    n = near if near is not None else 1e-3 * dist
    fa = far if far is not None else 1e3 * dist
    t = 1.0 / math.tan(math.radians(view_angle) / 2)
    w, h = size
    proj = np.array(
        [
            [t * h / w, 0, 0, 0],
            [0, t, 0, 0],
            [0, 0, (fa + n) / (n - fa), 2 * fa * n / (n - fa)],
            [0, 0, -1, 0],
        ]
    )
    return view, proj


class ResidentVolume:
    """A volume whose chosen bricks all sit in one atlas: the tree built once.

    Parameters
    ----------
    ctx : moderngl.Context
    levels : sequence of (Z, Y, X) arrays
        Every pyramid level, finest first (same dtype).
    grid : BrickGrid
        Bricks of those levels (e.g. ``BrickGrid.from_source(source)``).
    leaf_levels : (M,) int, optional
        The tree's leaves; default every brick of level 0.
    leaf_ijk : (M, 3) int, optional
    sample_levels : (M,) int, optional
        Level of the brick each leaf is drawn from (>= its own: a coarser one stands
        in); default the leaf's own.
    budget_bytes : int, optional
        Atlas size; default just what the bricks need.
    labels : bool, default: False
        The levels hold label ids (drawn with a :class:`LabelStyle`).
    """

    def __init__(
        self,
        ctx: Any,
        levels: Sequence[npt.NDArray[np.generic]],
        grid: BrickGrid,
        leaf_levels: npt.ArrayLike | None = None,
        leaf_ijk: npt.ArrayLike | None = None,
        sample_levels: npt.ArrayLike | None = None,
        budget_bytes: int | None = None,
        labels: bool = False,
    ) -> None:
        self.grid = grid
        self.tree = PageTree(grid)
        if leaf_levels is None:
            g = grid.grid[0]
            ijk = np.stack(np.meshgrid(*(np.arange(n) for n in g), indexing="ij"), -1)
            leaf_ijk = ijk.reshape(-1, 3)
            leaf_levels = np.zeros(len(leaf_ijk), np.int64)
        lv = np.asarray(leaf_levels, np.int64).reshape(-1)
        ij = np.asarray(leaf_ijk, np.int64).reshape(-1, 3)
        sl = lv if sample_levels is None else np.asarray(sample_levels, np.int64).reshape(-1)
        if (sl < lv).any():
            raise ParameterError("a leaf can only be drawn from its own level or a coarser one")
        self.leaf_levels, self.leaf_ijk, self.sample_levels = lv, ij, sl
        sample_ijk = self.tree.ancestors(lv, ij, sl)
        codes = self.tree.codes(sl, sample_ijk)
        uniq, inverse = np.unique(codes, return_inverse=True)
        edge = int(grid.chunks.max())
        dtype = levels[0].dtype
        probe = BrickAtlas(ctx, edge, dtype, 1, max_uploads=0, labels=labels)
        slot_bytes = probe.slot_bytes
        probe.release()
        budget = budget_bytes if budget_bytes is not None else len(uniq) * slot_bytes
        self.atlas = BrickAtlas(ctx, edge, dtype, budget, max_uploads=len(uniq), labels=labels)
        if self.atlas.n_slots < len(uniq):
            raise ParameterError(
                f"{len(uniq)} bricks do not fit an atlas of {self.atlas.n_slots} slots"
            )
        u_lv, u_ijk = grid.decode(uniq)
        start = u_ijk * grid.chunks[u_lv]

        def fetch(i: int) -> npt.NDArray[np.generic]:
            return slot_from_level(levels[int(u_lv[i])], start[i].tolist(), edge)

        self.atlas.table.next_frame()
        self.atlas.upload(np.arange(len(uniq)), fetch)
        self._slots = self.atlas.table.lookup(np.arange(len(uniq))).take(inverse)
        self.pool = self.tree.build(lv, ij, leaf_words(self._slots, sl))
        self.skipped = 0

    def skip_transparent(self, tf: TransferFunction | LabelStyle | None) -> int:
        """Rebuild the tree with bricks wholly transparent under ``tf`` as empty leaves
        (empty-space skipping for composite draws; None: draw every brick again).

        Returns the number of leaves skipped.
        """
        slots = self._slots
        if tf is not None:
            slots = np.where(self.atlas.transparent_slots(tf).take(slots), -1, slots)
        self.skipped = int(np.count_nonzero(slots < 0))
        self.pool = self.tree.build(
            self.leaf_levels, self.leaf_ijk, leaf_words(slots, self.sample_levels)
        )
        return self.skipped

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_levels)

    def release(self) -> None:
        self.atlas.release()


class Harness:
    """An offscreen RGBA float target of ``size`` on a standalone context, and a ray caster.

    Parameters
    ----------
    size : (width, height)
    ctx : moderngl.Context, optional
        Default :func:`standalone_context`.
    dtype : {"f4", "f2", "f1"}, default: "f4"
        Colour target: float32 (tests compare images), half float, or RGBA8 (what a
        headset swapchain holds; the benchmarks).
    """

    def __init__(self, size: tuple[int, int], ctx: Any = None, dtype: str = "f4") -> None:
        self._owns_ctx = ctx is None
        self.ctx = ctx if ctx is not None else standalone_context()
        self.size = (int(size[0]), int(size[1]))
        self.colour = self.ctx.texture(self.size, 4, dtype=dtype)
        self.fbo = self.ctx.framebuffer(color_attachments=[self.colour])
        self.raycaster = VolumeRaycaster(self.ctx)
        self._depth: Any = None

    def matrices(
        self, position: Vec3, focal_point: Vec3, view_up: Vec3, view_angle: float = 30.0
    ) -> tuple[F64, F64]:
        return camera_matrices(position, focal_point, view_up, view_angle, self.size)

    def depth_texture(self, depth: npt.ArrayLike) -> Any:
        """A depth image (H, W) in [0, 1], row 0 at the top, as the texture draw() reads."""
        d = np.ascontiguousarray(np.asarray(depth, np.float32)[::-1])
        if d.shape != (self.size[1], self.size[0]):
            raise ParameterError(f"depth image must be {(self.size[1], self.size[0])}")
        if self._depth is None:
            import moderngl

            self._depth = self.ctx.texture(self.size, 1, dtype="f4")
            self._depth.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._depth.write(d.tobytes())
        return self._depth

    def render(
        self,
        volume: ResidentVolume,
        tf: TransferFunction | LabelStyle,
        position: Vec3,
        focal_point: Vec3,
        view_up: Vec3 = (0.0, -1.0, 0.0),
        view_angle: float = 30.0,
        *,
        depth: npt.ArrayLike | None = None,
        clip_planes: npt.ArrayLike | None = None,
        mode: Mode = "composite",
        step_factor: float = 0.5,
        read: bool = True,
        iso_value: float | None = None,
        render_scale: float = 1.0,
        skip_bricks: bool = True,
        statistics: bool = False,
    ) -> npt.NDArray[np.float32] | None:
        """Draw ``volume`` over a transparent background; the premultiplied RGBA image
        (``statistics``: each ray's counts instead, see :meth:`VolumeRaycaster.draw`).

        Returns
        -------
        (H, W, 4) float32 or None
            Row 0 at the top; None when ``read`` is False (benchmarks time the draw).
        """
        view, proj = self.matrices(position, focal_point, view_up, view_angle)
        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 0.0)
        self.raycaster.set_nodes(volume.pool)
        dtex = None if depth is None else self.depth_texture(depth)
        self.raycaster.draw(
            self.fbo,
            view,
            proj,
            volume.tree,
            volume.atlas,
            tf,
            depth=dtex,
            clip_planes=clip_planes,
            mode=mode,
            step_factor=step_factor,
            iso_value=iso_value,
            render_scale=render_scale,
            skip_bricks=skip_bricks,
            statistics=statistics,
        )
        if not read:
            return None
        w, h = self.size
        img = np.frombuffer(self.fbo.read(components=4, dtype="f4"), np.float32)
        return img.reshape(h, w, 4)[::-1].copy()

    def release(self) -> None:
        self.raycaster.release()
        self.fbo.release()
        self.colour.release()
        if self._depth is not None:
            self._depth.release()
        if self._owns_ctx:
            release_standalone_context(self.ctx)
