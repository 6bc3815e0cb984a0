"""``VolumeRaycaster``: the one draw call per volume layer and eye, on a context it is given."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError

from ._atlas import BrickAtlas
from ._shader import FRAGMENT, UPSAMPLE, VERTEX, fragment
from ._transfer import LabelStyle, TransferFunction
from ._tree import SHADER_LEVELS, PageTree

__all__ = ["MODES", "DrawStats", "VolumeRaycaster"]

F64 = npt.NDArray[np.float64]
U32 = npt.NDArray[np.uint32]

MODES = {"composite": 0, "mip": 1, "minip": 2, "isosurface": 3}
Mode = Literal["composite", "mip", "minip", "isosurface"]
#: Headlight shading of iso-surfaces: ambient, diffuse, specular, specular power
#: (``vtkVolumeProperty``'s defaults, as VTK's ray caster shades them).
ISO_LIGHT = (0.1, 0.7, 0.2, 10.0)
# Node pool texture width: rows of 4096 words (GL_MAX_TEXTURE_SIZE is >= 16384: 67M nodes).
_NODES_W = 4096


@dataclass
class DrawStats:
    """What the last :meth:`VolumeRaycaster.draw` did.

    Attributes
    ----------
    draw_calls : int
        Ray-casting draw calls (``volume_passes``): 1 per draw.
    node_words : int
        Words in the node pool.
    node_rows_uploaded : int
        Rows of the node texture rewritten (0 when the pool did not change).
    """

    draw_calls: int = 0
    node_words: int = 0
    node_rows_uploaded: int = 0


class VolumeRaycaster:
    """Ray casts one volume layer through a :class:`BrickAtlas` and a :class:`PageTree` pool.

    Parameters
    ----------
    ctx : moderngl.Context
        Any context of OpenGL >= 3.3: a standalone EGL one (tests, benchmarks) or
        the host's current one (``moderngl.create_context()`` inside VTK's frame).

    Notes
    -----
    :meth:`draw` changes: the bound framebuffer and viewport (restored), blending
    (enabled with premultiplied-alpha "over" during the call, then left as moderngl
    knows it: disabled), depth test (disabled during the call), the program, texture
    units 0-3 and the bound vertex array. A host with its own GL state cache (VTK's
    ``vtkOpenGLState``) must reset that cache after the call.
    """

    def __init__(self, ctx: Any) -> None:
        import moderngl

        self.ctx = ctx
        # One program per volume kind; the label one is compiled on first use.
        self.programs: dict[str, Any] = {
            "image": ctx.program(vertex_shader=VERTEX, fragment_shader=FRAGMENT)
        }
        self.vaos: dict[str, Any] = {"image": ctx.vertex_array(self.programs["image"], [])}
        self.program = self.programs["image"]
        self._special: Any = None
        self._special_table: npt.NDArray[np.uint32] | None = None
        self._style: LabelStyle | None = None
        self._low: Any = None  # render_scale < 1: the low-resolution image and its target
        self._low_fbo: Any = None
        self._upsample: Any = None
        self._upsample_vao: Any = None
        self._nodes: Any = None  # the node texture of the pool set last
        self._pool: U32 | None = None
        # owner -> (node texture, its rows, the padded pool it holds)
        self._node_textures: dict[Any, tuple[Any, int, U32 | None]] = {}
        self._tf: Any = None
        self._tf_table: npt.NDArray[np.float32] | None = None
        self._ranges: Any = None  # per slot (min, max), for skipping bricks by value
        self._ranges_of: tuple[int, int] | None = None  # (id(atlas), atlas.uploads) held
        self._moderngl = moderngl
        self.stats = DrawStats()
        self.total_draw_calls = 0

    # -- inputs ------------------------------------------------------------------------
    def set_nodes(
        self,
        pool: U32,
        owner: Any = None,
        changed: tuple[U32 | None, tuple[int, int]] | None = None,
    ) -> int:
        """Upload the node pool; only the rows that changed since the last call.

        ``owner`` (any hashable, e.g. one per volume layer) keeps one node texture per
        volume, so volumes drawn in turn do not rewrite each other's pools; a pool
        already in its texture (the same array object) costs nothing. ``changed``:
        ``(previous, (first, stop))``, the rows of ``pool`` that differ from the
        array ``previous``, trusted when ``previous`` is what the owner's texture
        holds (a :class:`StreamedVolume` computes them off the frame thread). A pool
        array is taken as immutable once given (change a copy).

        Returns the number of texture rows written.
        """
        tex, rows_cap, held = self._node_textures.get(owner, (None, 0, None))
        if held is not None and pool is held:
            self._use_nodes(tex, held, 0)
            return 0
        if len(pool) % _NODES_W == 0 and pool.dtype == np.uint32 and pool.flags.c_contiguous:
            padded = pool
        else:
            padded = np.zeros(max(1, -(-len(pool) // _NODES_W)) * _NODES_W, np.uint32)
            padded[: len(pool)] = pool
        rows = len(padded) // _NODES_W
        grid = padded.reshape(rows, _NODES_W)
        if tex is None or rows > rows_cap:
            if tex is not None:
                tex.release()
            rows_cap = 1 << max(0, math.ceil(math.log2(rows)))
            tex = self.ctx.texture((_NODES_W, rows_cap), 1, dtype="u4")
            tex.filter = (self._moderngl.NEAREST, self._moderngl.NEAREST)
            held = None
        first, last = 0, rows
        if held is not None and len(held) == len(padded):
            if changed is not None and changed[0] is held:
                first, last = changed[1]
            else:
                diff = (held.reshape(rows, _NODES_W) != grid).any(axis=1).nonzero()[0]
                first, last = (int(diff[0]), int(diff[-1]) + 1) if len(diff) else (0, 0)
        if last > first:
            tex.write(grid[first:last], viewport=(0, first, _NODES_W, last - first), alignment=4)
        self._node_textures[owner] = (tex, rows_cap, padded)
        self._use_nodes(tex, padded, last - first)
        return last - first

    def forget_nodes(self, owner: Any) -> None:
        """Release ``owner``'s node texture (its volume is gone)."""
        tex, _, _ = self._node_textures.pop(owner, (None, 0, None))
        if tex is not None:
            if tex is self._nodes:
                self._nodes, self._pool = None, None
            tex.release()

    def _use_nodes(self, tex: Any, pool: U32, rows: int) -> None:
        self._nodes = tex
        self._pool = pool
        self.stats.node_words = len(pool)
        self.stats.node_rows_uploaded = rows

    def set_transfer(self, tf: TransferFunction) -> None:
        """Upload the transfer function table (only when it changed)."""
        table = np.ascontiguousarray(tf.table, dtype=np.float32)
        if self._tf_table is not None and np.array_equal(self._tf_table, table):
            return
        if self._tf is None or self._tf.width != len(table):
            if self._tf is not None:
                self._tf.release()
            # moderngl has no 1D textures: the table is an (N, 1) 2D texture.
            self._tf = self.ctx.texture((len(table), 1), 4, dtype="f4")
            self._tf.filter = (self._moderngl.LINEAR, self._moderngl.LINEAR)
            self._tf.repeat_x = self._tf.repeat_y = False
        self._tf.write(table.tobytes())
        self._tf_table = table

    # -- drawing -----------------------------------------------------------------------
    def draw(
        self,
        target: Any,
        view: F64,
        projection: F64,
        tree: PageTree,
        atlas: BrickAtlas,
        tf: TransferFunction | LabelStyle,
        *,
        viewport: tuple[int, int, int, int] | None = None,
        depth: Any = None,
        clip_planes: npt.ArrayLike | None = None,
        mode: Mode = "composite",
        step_factor: float = 0.5,
        max_nodes: int = 4096,
        min_ray_um: float = 0.0,
        iso_value: float | None = None,
        render_scale: float = 1.0,
        skip_bricks: bool = True,
        statistics: bool = False,
    ) -> None:
        """One pass: every pixel of ``viewport`` marches its ray through the tree.

        Parameters
        ----------
        target : moderngl.Framebuffer
            Drawn over with premultiplied alpha (``ONE, ONE_MINUS_SRC_ALPHA``).
        view, projection : (4, 4) float
            OpenGL matrices, world **xyz** -> eye -> clip (the host's camera).
        tree : PageTree
            Its pool was given to :meth:`set_nodes`.
        atlas : BrickAtlas
        tf : TransferFunction or LabelStyle
            A :class:`LabelStyle` draws a label atlas (``atlas.labels``): ids sampled
            nearest, one colour per id, composite only.
        viewport : (x, y, width, height), optional
            Default: the whole target.
        depth : moderngl.Texture, optional
            Depth of the opaque geometry already drawn ([0, 1], same projection and
            viewport size); rays end there.
        clip_planes : (K, 4) float, optional
            Up to 6 half-spaces ``n . p + d >= 0`` with ``n`` in world **zyx** (the
            scene's convention, :func:`viewer.streaming.clip_planes_array`).
        mode : {"composite", "mip", "minip", "isosurface"}
            ``isosurface``: where the ray crosses ``iso_value`` (either way), the
            transfer function's colour and opacity at that value, lit by a headlight
            (:data:`ISO_LIGHT`, normals from central differences), composited front
            to back (an opacity of 1 shows the first surface only).
        step_factor : float, default: 0.5
            Ray step as a fraction of each level's smallest voxel side.
        max_nodes : int, default: 4096
            Most tree leaves one ray visits (a bound for the shader's loop).
        min_ray_um : float, default: 0
            Rays whose segment inside the volume (after clipping) is not longer than
            this are not drawn. VTK's GPU ray caster takes no sample on a ray shorter
            than its sample distance; a host matching VTK's whole-level pictures passes
            its step (silhouette pixels, grazing rays).
        iso_value : float, optional
            Data value of the iso-surface (``mode="isosurface"``); default: the middle
            of the contrast limits.
        render_scale : float, default: 1
            Rays per pixel along each axis, (0, 1]: below 1 the rays are cast into an
            offscreen float image of ``ceil(scale * size)`` pixels (each ray ending at
            the depth of the full-resolution pixel under its centre), which is then
            blended over the target with bilinear filtering: about ``scale**2`` of the
            rays (a host's interactive quality, a headset's frame budget); the target's
            other contents keep full resolution.
        skip_bricks : bool, default: True
            MIP, MinIP and iso-surfaces skip bricks that cannot change the ray, from
            each atlas slot's value range (border included): for MIP a brick whose
            maximum is not above the ray's running maximum (MinIP: minimum, not
            below), for an iso-surface a brick whose range leaves out the iso value
            (the previous sample on the same side). Composite draws skip wholly
            transparent bricks in the tree instead (:meth:`StreamedVolume.update`).
        statistics : bool, default: False
            Draw, instead of colour, each ray's counts (samples, leaves sampled,
            leaves skipped by their value range, empty leaves) as the RGBA of a float
            target (tests and benchmarks; ``render_scale`` must be 1).
        """
        if mode not in MODES:
            raise ParameterError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        if not step_factor > 0:
            raise ParameterError(f"step_factor must be > 0, got {step_factor}")
        if not 0 < render_scale <= 1:
            raise ParameterError(f"render_scale must be in (0, 1], got {render_scale}")
        planes = np.zeros((0, 4)) if clip_planes is None else np.asarray(clip_planes, float)
        planes = planes.reshape(-1, 4)
        if len(planes) > 6:
            raise ParameterError(f"at most 6 clipping planes, got {len(planes)}")
        if self._pool is None:
            raise ParameterError("set_nodes() before draw()")
        kind = "labels" if isinstance(tf, LabelStyle) else "image"
        if statistics and render_scale < 1.0:
            raise ParameterError("statistics are drawn at render_scale 1 only")
        if (kind == "labels") != atlas.labels:
            raise ParameterError(
                f"a {kind} style needs {'a label' if atlas.labels else 'an image'} atlas"
            )
        if kind == "labels":
            if mode != "composite":
                raise ParameterError("label volumes are drawn in composite mode only")
            self._use_labels(tf)  # type: ignore[arg-type]
        else:
            self.set_transfer(tf)  # type: ignore[arg-type]
        self.program = self._program(kind, statistics)
        vao = self.vaos[kind + ("+stats" if statistics else "")]
        full = tuple(viewport) if viewport is not None else (0, 0, *target.size)
        vp = full
        scaled = render_scale < 1.0
        if scaled:
            low = self._low_target(
                (
                    max(1, math.ceil(full[2] * render_scale)),
                    max(1, math.ceil(full[3] * render_scale)),
                )
            )
            vp = (0, 0, *low.size)
        self._uniforms(view, projection, tree, atlas, tf, vp, planes, mode, step_factor, max_nodes)
        self._uniform("u_depth_scale", (full[2] / vp[2], full[3] / vp[3]))
        self._uniform("u_has_depth", int(depth is not None))
        self._uniform("u_min_ray", float(min_ray_um))
        if mode == "isosurface" and not isinstance(tf, LabelStyle):
            lo, hi = tf.contrast_limits
            iso = 0.5 * (lo + hi) if iso_value is None else float(iso_value)
            self._uniform("u_iso", iso / atlas.value_one)
            self._uniform("u_light", ISO_LIGHT)
        skip = skip_bricks and kind == "image" and mode != "composite"
        self._uniform("u_skip", int(skip))
        if skip:
            self._use_ranges(atlas)
        ctx = self.ctx
        prev_fbo, prev_vp = ctx.fbo, ctx.viewport
        if scaled:
            self._low_fbo.use()
            self._low_fbo.clear(0.0, 0.0, 0.0, 0.0)
        else:
            target.use()
        ctx.viewport = vp
        ctx.disable(self._moderngl.DEPTH_TEST)
        ctx.enable(self._moderngl.BLEND)
        ctx.blend_func = self._moderngl.ONE, self._moderngl.ONE_MINUS_SRC_ALPHA
        atlas.texture.use(0)
        self._nodes.use(1)
        if kind == "labels":
            self._special.use(2)
        else:
            self._tf.use(2)
        if depth is not None:
            depth.use(3)
        if skip:
            self._ranges.use(4)
        try:
            vao.render(self._moderngl.TRIANGLES, vertices=3)
            if scaled:
                target.use()
                ctx.viewport = full
                self._low.use(0)
                self._upsample["u_low"].value = 0
                self._upsample["u_viewport"].value = tuple(float(v) for v in full)
                self._upsample_vao.render(self._moderngl.TRIANGLES, vertices=3)
        finally:
            ctx.disable(self._moderngl.BLEND)
            ctx.blend_func = self._moderngl.DEFAULT_BLENDING
            if prev_fbo is not None:
                prev_fbo.use()
            ctx.viewport = prev_vp
        self.stats.draw_calls = 1
        self.total_draw_calls += 1

    def _low_target(self, size: tuple[int, int]) -> Any:
        """The offscreen RGBA16F image of a scaled draw (made again when its size changes)."""
        if self._low is None or self._low.size != size:
            for obj in (self._low_fbo, self._low):
                if obj is not None:
                    obj.release()
            self._low = self.ctx.texture(size, 4, dtype="f2")
            self._low.filter = (self._moderngl.LINEAR, self._moderngl.LINEAR)
            self._low.repeat_x = self._low.repeat_y = False
            self._low_fbo = self.ctx.framebuffer(color_attachments=[self._low])
        if self._upsample is None:
            self._upsample = self.ctx.program(vertex_shader=VERTEX, fragment_shader=UPSAMPLE)
            self._upsample_vao = self.ctx.vertex_array(self._upsample, [])
        return self._low

    def _program(self, kind: str, statistics: bool) -> Any:
        """The program of ``kind`` ("image" or "labels"), compiled on first use."""
        name = kind + ("+stats" if statistics else "")
        if name not in self.programs:
            src = fragment(labels=kind == "labels", stats=statistics)
            prog = self.ctx.program(vertex_shader=VERTEX, fragment_shader=src)
            self.programs[name] = prog
            self.vaos[name] = self.ctx.vertex_array(prog, [])
        return self.programs[name]

    def _use_ranges(self, atlas: BrickAtlas) -> None:
        """Upload the atlas slots' value ranges (texture units) when slots were written
        since the last upload (a float pair per slot: a few bytes per brick)."""
        key = (id(atlas), atlas.uploads)
        if self._ranges is not None and self._ranges_of == key:
            return
        n = atlas.n_slots
        rows = max(1, -(-n // _NODES_W))
        data = np.zeros((rows * _NODES_W, 2), np.float32)
        data[:n, 0] = atlas.slot_min / atlas.value_one
        data[:n, 1] = atlas.slot_max / atlas.value_one
        if self._ranges is None or self._ranges.size != (_NODES_W, rows):
            if self._ranges is not None:
                self._ranges.release()
            self._ranges = self.ctx.texture((_NODES_W, rows), 2, dtype="f4")
            self._ranges.filter = (self._moderngl.NEAREST, self._moderngl.NEAREST)
        self._ranges.write(data.tobytes())
        self._ranges_of = key

    def _use_labels(self, style: LabelStyle) -> None:
        """Compile the label program once; upload the hidden/selected ids when they changed."""
        self._program("labels", False)
        if style is self._style:
            return
        table = style.table
        self._style = style
        if self._special_table is not None and np.array_equal(self._special_table, table):
            return
        rows = max(1, -(-len(table) // _NODES_W))
        data = np.zeros((rows * _NODES_W, 4), np.uint32)
        data[: len(table)] = table
        if self._special is None or self._special.size != (_NODES_W, rows):
            if self._special is not None:
                self._special.release()
            self._special = self.ctx.texture((_NODES_W, rows), 4, dtype="u4")
            self._special.filter = (self._moderngl.NEAREST, self._moderngl.NEAREST)
        self._special.write(data.tobytes())
        self._special_table = table

    def _uniform(self, name: str, value: Any) -> None:
        # The GLSL compiler drops unused uniforms (e.g. u_depth when never read).
        if name in self.program:
            self.program[name].value = value

    def _uniforms(
        self,
        view: F64,
        projection: F64,
        tree: PageTree,
        atlas: BrickAtlas,
        tf: TransferFunction | LabelStyle,
        vp: tuple[int, ...],
        planes: F64,
        mode: str,
        step_factor: float,
        max_nodes: int,
    ) -> None:
        lv = tree.levels
        n = tree.grid.n_levels

        def xyz(a: F64) -> list[tuple[float, ...]]:
            rows = [tuple(float(v) for v in r[::-1]) for r in a]
            return rows + [(0.0, 0.0, 0.0)] * (SHADER_LEVELS - n)

        inv_vp = np.linalg.inv(np.asarray(projection, float) @ np.asarray(view, float))
        u = self._uniform
        # moderngl takes matrices column-major.
        u("u_inv_vp", tuple(float(v) for v in inv_vp.T.reshape(-1)))
        u("u_viewport", tuple(float(v) for v in vp))
        g = tree.grid
        first = g.translation[0]
        last = first + (g.shape[0] - 1) * g.scale[0]
        # An axis one voxel thick is drawn one voxel thick (as a whole level would be).
        thin = g.shape[0] == 1
        lo = np.where(thin, first - 0.5 * g.scale[0], first)
        hi = np.where(thin, last + 0.5 * g.scale[0], last)
        u("u_box_lo", tuple(float(v) for v in lo[::-1]))
        u("u_box_hi", tuple(float(v) for v in hi[::-1]))
        u("u_n_planes", len(planes))
        pl = [(float(p[2]), float(p[1]), float(p[0]), float(p[3])) for p in planes]
        u("u_planes", pl + [(0.0, 0.0, 0.0, 0.0)] * (6 - len(pl)))
        u("u_top", tree.top)
        u("u_top_grid", tuple(int(v) for v in lv.grid[tree.top][::-1]))
        u("u_corner", xyz(lv.corner))
        u("u_brick", xyz(lv.brick_um))
        u("u_level_hi", xyz(lv.level_hi))
        inv_scale = 1.0 / lv.scale
        u("u_inv_scale", xyz(inv_scale))
        u("u_tex_off", xyz(1.5 - lv.voxel0 * inv_scale))
        u("u_chunk", xyz(lv.chunks.astype(float)))
        split = [tuple(int(v == 2) for v in r[::-1]) for r in lv.factor]
        u("u_split", split + [(0, 0, 0)] * (SHADER_LEVELS - n))
        steps = step_factor * lv.scale.min(axis=1)
        u("u_step", [float(s) for s in steps] + [1.0] * (SHADER_LEVELS - n))
        ref = tf.ref_step_um if tf.ref_step_um is not None else float(lv.scale[0].min())
        u("u_ref_step", float(ref))
        extent = float(np.abs(np.concatenate([lo, hi])).max()) + 1.0
        # A few float32 ulps at the volume's scale, but far below a step.
        u("u_nudge", float(max(1e-3 * steps.min(), 8 * extent * 2.0**-23)))
        u("u_max_nodes", int(max_nodes))
        u("u_nodes", 1)
        u("u_nodes_width", _NODES_W)
        u("u_atlas", 0)
        u("u_slots", tuple(int(s) for s in atlas.slots_xyz))
        u("u_slot_edge", float(atlas.edge))
        u("u_inv_atlas", tuple(1.0 / float(t) for t in atlas.texels))
        if isinstance(tf, LabelStyle):
            u("u_special", 2)
            u("u_special_width", _NODES_W)
            u("u_n_special", len(tf.table))
            u("u_label_alpha", float(tf.opacity))
            u("u_select_alpha", float(tf.selected_opacity))
            u("u_outline", int(tf.outline))
            u("u_interior_alpha", float(tf.interior_opacity))
        else:
            u("u_tf", 2)
            clo, chi = (float(c) / atlas.value_one for c in tf.contrast_limits)
            u("u_window", (clo, 1.0 / (chi - clo)))
        u("u_mode", MODES[mode])
        u("u_depth", 3)
        u("u_ranges", 4)

    def release(self) -> None:
        objs = [*self.vaos.values(), *self.programs.values(), self._tf, self._special]
        objs.append(self._ranges)
        objs += [t for t, _, _ in self._node_textures.values()]
        self._node_textures.clear()
        objs += [self._low_fbo, self._low, self._upsample_vao, self._upsample]
        for obj in objs:
            if obj is not None:
                obj.release()
