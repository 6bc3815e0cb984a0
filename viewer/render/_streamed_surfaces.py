"""Streamed label surfaces: per-brick meshes at the level the view needs, built off the frame thread.

A ``Labels`` layer drawn as surfaces (``mode="surface"``) gets a
:class:`viewer.streaming.VolumeStreamer` (``labels=True``) like a label volume,
and :class:`VtkStreamedSurfaces` draws one mesh per brick the streamer chose,
the way neuroglancer's multi-resolution meshes refine as one zooms in.

Meshing a brick (:func:`brick_surface`)
    The brick with its one-voxel border (:meth:`VolumeStreamer.padded`; zeros
    beyond the volume's outer faces, so objects there are closed) is meshed by
    scikit-image's marching cubes per id present (:func:`label_mesh`, no
    smoothing), in the level's voxel index units where every vertex of a binary
    mask lies on a half-integer, exactly. A triangle lies inside one cube of 8
    voxel centres and depends only on their values, so two neighbouring bricks
    with each other's voxels as border produce *the same* triangles in the cubes
    they share. Each brick keeps the triangles whose centroid lies in its own box
    (half-open ``[lo, hi)``, open at the volume's outer faces): the bricks of a
    level together hold exactly the triangles of a whole-level marching cubes,
    with neither gaps nor duplicates at brick faces. (Clipping the triangles at
    the box instead would cut the many triangles that lie *in* a brick face,
    since brick faces are at voxel edges where a mask's surface sits; the
    centroid rule gives each of them to exactly one brick.)

Progressive drawing
    Meshes are built on a small thread pool; the frame thread only assembles the
    padded brick (a copy from the cache, as the image adapter does) and wraps
    finished meshes in actors. A brick counts as drawable once its mesh exists:
    the streamer's own stand-in rule (:meth:`VolumeStreamer._draw_items`) runs on
    that "meshed" mask, so a leaf whose mesh is not ready is drawn by its nearest
    meshed ancestor cropped to the leaf's box (triangles by centroid), and finer
    meshes replace it as they arrive. A mesh built while a neighbour was missing
    (edge voxels repeated as border) is rebuilt when the neighbour arrives and
    keeps being drawn until then.

Cache
    Meshes are kept per brick key in an LRU bounded in bytes; a mesh is dropped
    when its brick leaves the streamer's cache. Meshes drawn, and those of the
    current view's leaves, are never evicted: the budget bounds what is kept beyond
    the view. (Evicting a leaf's fresh mesh before it was drawn made a view whose
    meshes exceed the budget mesh the same bricks forever and never complete: the
    medulla's 525 bodies at level 0, about 16 MB a brick against 256 MB.)

Not carried over from :class:`VtkLabels`: Taubin smoothing (it would move the
shared border vertices differently in each brick and open cracks) and
decimation to ``triangle_budget`` (the level of detail bounds the triangles
instead); meshes of different levels meet with small cracks at level
transitions (no skirts or stitching). A label edit (``labels_regions``) re-reads the
resident bricks it touched (and their neighbours within a voxel) on the frame thread
and re-meshes only those; their old meshes are drawn until the new ones land. Colours (id, feature,
fixed), opacity, hidden ids, the selection outline and picking (the ``label``
cell array) work as in :class:`VtkLabels`; :meth:`VtkStreamedSurfaces.export`
writes the meshes drawn now (mixed levels).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trimesh

from viewer.scene import Labels
from viewer.streaming import PaddedBrick, StreamFrame, VolumeStreamer

from . import _vtk as v
from ._base import DrawItem, FrameContext, draw_items, polydata
from ._labels import VtkLabels, label_colors
from ._meshes import export_meshes, label_mesh

__all__ = ["BrickSurface", "VtkStreamedSurfaces", "brick_surface"]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(eq=False)
class BrickSurface:
    """The triangles one brick owns, in world coordinates.

    Attributes
    ----------
    key, level : int
    vertices_xyz : (N, 3) float32
        World x, y, z µm.
    normals_xyz : (N, 3) float32
        Unit vertex normals (from the whole padded brick's triangles, so vertices on
        the brick's faces get the same normals as in a whole-level mesh).
    faces : (F, 3) int64
        Triangles, wound outward.
    face_ids : (F,) int64
        Label id of each triangle.
    centroids_zyx : (3, F) float64
        World z, y, x of each triangle's centroid, one row per axis (for cropping
        stand-ins: a contiguous row per comparison).
    ids : (K,) int64
        Distinct ids with triangles.
    box_lo_um, box_hi_um : (3,) float64
        The brick's own world box (zyx).
    neighbours : frozenset of int
        Neighbour keys whose voxels made the border.
    polydata : vtkPolyData or None
        Built by the mesh worker: points, normals, ``colors`` and the ``label`` cell array.
    colors_for : object
        Colour settings the polydata's colours were made with.
    """

    key: int
    level: int
    vertices_xyz: npt.NDArray[np.float32]
    normals_xyz: npt.NDArray[np.float32]
    faces: I64
    face_ids: I64
    centroids_zyx: F64
    ids: I64
    box_lo_um: F64
    box_hi_um: F64
    neighbours: frozenset[int]
    polydata: Any = None
    colors_for: object = None

    @property
    def nbytes(self) -> int:
        # The VTK copy of points, normals, colours and cells roughly doubles the arrays.
        own = sum(
            int(a.nbytes) for a in (self.vertices_xyz, self.normals_xyz, self.faces, self.face_ids)
        )
        return 2 * own + int(self.centroids_zyx.nbytes)


def brick_surface(
    pb: PaddedBrick,
    level_shape: tuple[int, int, int],
    translation_um: npt.ArrayLike,
    scale_um: npt.ArrayLike,
) -> BrickSurface:
    """Multi-label surface of one brick: the marching-cubes triangles it owns.

    Parameters
    ----------
    pb : PaddedBrick
        The brick with its one-voxel border (:meth:`VolumeStreamer.padded`).
    level_shape : (3,) ints
        Voxels of the brick's level (zyx), to know the volume's outer faces.
    translation_um, scale_um : (3,) floats
        The level's voxel (0, 0, 0) centre and voxel size (zyx µm).

    Returns
    -------
    BrickSurface (without its ``polydata``).

    Notes
    -----
    Marching cubes is scikit-image's, per id on the id's bounding box
    (:func:`viewer.render._meshes.label_mesh`, unsmoothed), on the brick padded to
    one voxel beyond its box on every side: neighbour voxels, repeated edge voxels
    where the neighbour is not resident, zeros beyond the volume. Triangles are
    kept when their centroid lies in ``[start - 0.5, stop - 0.5)`` voxels (per
    axis; unbounded at the volume's outer faces), see the module notes.
    """
    from scipy import ndimage

    scale = np.asarray(scale_um, dtype=np.float64).reshape(3)
    trans = np.asarray(translation_um, dtype=np.float64).reshape(3)
    start = np.array([s.start for s in pb.region], dtype=np.int64)
    stop = np.array([s.stop for s in pb.region], dtype=np.int64)
    arr = np.asarray(pb.array)
    corner = np.rint((np.asarray(pb.origin_um) - trans) / scale).astype(np.int64)
    pad_lo = start - corner
    pad_hi = np.asarray(arr.shape) - (stop - start) - pad_lo
    # Zeros beyond the volume's outer faces (where padded() adds no border): every
    # array below covers voxels start - 1 .. stop of the level on every axis.
    a = np.pad(arr, [(int(1 - lo), int(1 - hi)) for lo, hi in zip(pad_lo, pad_hi, strict=True)])
    offset = start - 1  # level voxel index of a[0, 0, 0]
    ids, inv = _compact(a)
    # Compact labels 1..K for find_objects (ids may be huge); 0 stays background.
    has_bg = len(ids) > 0 and ids[0] == 0
    compact = inv if has_bg else inv + 1
    real = ids if not has_bg else ids[1:]
    own_lo = np.where(start > 0, start - 0.5, -np.inf)
    own_hi = np.where(stop < np.asarray(level_shape), stop - 0.5, np.inf)
    boxes = ndimage.find_objects(compact)
    verts: list[F64] = []
    norms: list[F64] = []
    faces: list[I64] = []
    fids: list[I64] = []
    cents: list[F64] = []
    n_vert = 0
    interior = [(1, n + 1) for n in (stop - start)]
    for j, bb in enumerate(boxes, start=1):
        if bb is None:
            continue
        # An id only in the upper border owns no triangle (its surfaces lie at or
        # beyond the box's upper faces, which are open); one in the lower border may
        # (a surface *in* the lower face belongs to this brick).
        if any(s.start >= hi for s, (_, hi) in zip(bb, interior, strict=True)):
            continue
        m = label_mesh(compact, j, (1.0, 1.0, 1.0), offset.astype(np.float64), bb, 0)
        if m is None or len(m.faces) == 0:
            continue
        vz = np.asarray(m.vertices, dtype=np.float64)[:, ::-1]  # level voxel zyx, exact halves
        f = np.asarray(m.faces, dtype=np.int64)
        # Normals over the whole padded mesh, before cropping (see BrickSurface).
        nz = np.asarray(m.vertex_normals, dtype=np.float64)[:, ::-1]
        c = (vz[f[:, 0]] + vz[f[:, 1]] + vz[f[:, 2]]) / 3.0
        keep = np.all((c >= own_lo) & (c < own_hi), axis=1)
        if not keep.any():
            continue
        f = f[keep]
        used, f_new = np.unique(f, return_inverse=True)
        verts.append(vz[used])
        norms.append(nz[used])
        faces.append(f_new.reshape(-1, 3) + n_vert)
        fids.append(np.full(len(f), int(real[j - 1]), dtype=np.int64))
        cents.append(c[keep])
        n_vert += len(used)
    if verts:
        vz_all = np.concatenate(verts)
        nz_all = np.concatenate(norms)
        f_all = np.concatenate(faces)
        fid_all = np.concatenate(fids)
        c_all = np.concatenate(cents)
    else:
        vz_all = nz_all = c_all = np.zeros((0, 3))
        f_all = np.zeros((0, 3), np.int64)
        fid_all = np.zeros(0, np.int64)
    world = trans + vz_all * scale
    # A normal maps by the inverse transpose of the (diagonal) voxel scaling.
    nw = nz_all / scale
    nw /= np.maximum(np.linalg.norm(nw, axis=1, keepdims=True), 1e-12)
    return BrickSurface(
        key=int(pb.key),
        level=int(pb.level),
        vertices_xyz=np.ascontiguousarray(world[:, ::-1], dtype=np.float32),
        normals_xyz=np.ascontiguousarray(nw[:, ::-1], dtype=np.float32),
        faces=f_all,
        face_ids=fid_all,
        centroids_zyx=np.ascontiguousarray((trans + c_all * scale).T),
        ids=np.unique(fid_all),
        box_lo_um=np.asarray(pb.box_lo_um, dtype=np.float64),
        box_hi_um=np.asarray(pb.box_hi_um, dtype=np.float64),
        neighbours=pb.neighbours,
    )


def _compact(a: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """Sorted distinct values of ``a`` and ``a`` as indices into them (``np.unique``'s
    ``return_inverse``), by a lookup table when the largest id is small: sorting a
    66³ brick costs ~40 ms, the table a few."""
    if a.size == 0:
        return np.zeros(0, a.dtype), np.zeros(a.shape, np.intp)
    top = int(a.max())
    if a.dtype.kind in "ui" and int(a.min()) >= 0 and top < 4 * a.size + 1024:
        present = np.flatnonzero(np.bincount(a.reshape(-1).astype(np.intp), minlength=1))
        lut = np.zeros(top + 1, np.intp)
        lut[present] = np.arange(len(present))
        return present.astype(a.dtype), lut[a]
    ids, inv = np.unique(a, return_inverse=True)
    return ids, inv.reshape(a.shape)


def _colors_stamp(layer: Labels) -> tuple[object, ...]:
    """What the colours of a ``Labels`` layer depend on (a change means recolouring)."""
    feats = layer.features.get(layer.feature) if layer.feature is not None else None
    return (
        layer.color_mode,
        tuple(layer.fixed_color),
        layer.feature,
        layer.colormap,
        layer.feature_limits,
        id(feats),
        len(feats) if feats is not None else 0,
    )


def _rgb_u8(colors: F64) -> npt.NDArray[np.uint8]:
    return np.ascontiguousarray((np.clip(colors, 0, 1) * 255).round().astype(np.uint8))


def _vertex_colors(layer: Labels, surf: BrickSurface) -> npt.NDArray[np.uint8]:
    """(N, 3) uint8 RGB of ``surf``'s vertices by their object's colour."""
    n = len(surf.vertices_xyz)
    out = np.zeros((n, 3), np.uint8)
    if not len(surf.ids):
        return out
    table = _rgb_u8(label_colors(layer, [int(i) for i in surf.ids]))
    # Each vertex belongs to triangles of one id (meshes are per id).
    vid = np.zeros(n, np.int64)
    vid[surf.faces.reshape(-1)] = np.repeat(surf.face_ids, 3)
    out[:] = table[np.searchsorted(surf.ids, vid)]
    return out


class VtkStreamedSurfaces(VtkLabels):
    """A ``Labels`` layer drawn as surfaces, streamed: one mesh per drawn brick.

    Parameters
    ----------
    layer : Labels
    streamer : VolumeStreamer
        Made with ``labels=True`` on the layer's data.
    n_workers : int, default: 1
        Mesh threads (marching cubes holds the GIL part of the time; on a busy
        machine one thread keeps the frame thread responsive).
    cache_bytes : int, default: 256 MiB
        Budget of the mesh cache (drawn meshes are kept even over it).
    max_jobs : int, optional
        Most meshes queued or running at once; the
        rest wait for a later frame, so priorities follow the camera. Default
        ``4 * n_workers``: enough queued that a thread never waits for the next frame.

    Attributes
    ----------
    mesher : callable
        ``mesher(padded_brick, level_shape, translation_um, scale_um) -> BrickSurface``
        run on the mesh threads (:func:`brick_surface`; tests wrap it).
    frame : StreamFrame or None
        The streamer's last frame given to :meth:`show`.
    items : list of (key, level, lo, hi)
        What is drawn: brick key, its level and the world box (zyx) it is cropped to.
    complete : bool
        Every leaf of the last frame is drawn by its own, up-to-date mesh.
    built : int
        Meshes built so far.
    """

    def __init__(
        self,
        layer: Labels,
        streamer: VolumeStreamer,
        n_workers: int = 1,
        cache_bytes: int = 256 << 20,
        max_jobs: int | None = None,
    ) -> None:
        super().__init__(layer)
        self.streamer = streamer
        self.mesher: Callable[..., BrickSurface] = brick_surface
        self.cache_bytes = int(cache_bytes)
        self.max_jobs = max(int(max_jobs) if max_jobs is not None else 4 * n_workers, 1)
        self._pool = ThreadPoolExecutor(max(n_workers, 1), thread_name_prefix="vrscope-mesh")
        self._results: queue.SimpleQueue[tuple[int, BrickSurface | BaseException]] = (
            queue.SimpleQueue()
        )
        self._arrival = threading.Event()
        self._jobs: set[int] = set()  # keys queued or meshing
        self._failed: set[int] = set()
        self._meshes: OrderedDict[int, BrickSurface] = OrderedDict()
        self._mesh_keys = np.zeros(0, np.int64)  # sorted keys of _meshes
        self._mesh_bytes = 0
        self._stale: set[int] = set()
        #: Regions of label edits not applied yet (per edit: per level, (z, y, x) regions).
        self._edits: list[Any] = []
        #: Bricks whose voxels changed while they were being meshed: meshed again.
        self._remesh: set[int] = set()
        #: Bricks an edit re-read whose new mesh has not landed yet (:attr:`edits_pending`).
        self._edited: set[int] = set()
        self._unshown: list[I64] = []
        self._cache_version = -1
        self._actors: dict[DrawItem, tuple[Any, BrickSurface, I64 | None]] = {}
        self._hidden: frozenset[int] = frozenset(layer.hidden_ids)
        self._stamp = _colors_stamp(layer)
        self.surface_property = v.vtkActor().GetProperty()
        self.surface_property.SetSpecular(0.2)
        self.frame: StreamFrame | None = None
        self.items: list[tuple[int, int, F64, F64]] = []
        self.complete = False
        self.waiting = 0  # meshes wanted but not yet handed to the pool
        self.built = 0
        g = streamer.grid
        self._level_shape = [tuple(int(n) for n in s) for s in g.shape]
        self._extent_lo = g.translation[0]
        self._extent_hi = g.translation[0] + (g.shape[0] - 1) * g.scale[0]
        self.props = [self.outline_actor]
        layer.labels_regions.connect(self._on_labels_regions)
        layer.labels_remapped.connect(self._on_labels_remapped)

    # -- VtkLabels surface that does not apply ---------------------------------------------
    @property
    def jobs(self) -> int:
        """Meshes queued or being built now."""
        return len(self._jobs)

    @property
    def edits_pending(self) -> bool:
        """Whether an edit is not drawn yet: its regions are not re-read, or a brick drawn
        now still shows its mesh from before the edit (the re-meshed one has not landed)."""
        if self._edits:
            return True
        edited = self._edited
        return bool(edited) and any(ik[0] in edited for ik in self._actors)

    def _on_labels_update(self, ids: list[int]) -> None:
        # Where the voxels changed comes with labels_regions (the bricks to re-read).
        self.dirty = True

    def _on_labels_regions(self, regions: Any) -> None:
        self._edits.append(regions)
        self.dirty = True

    def _on_labels_remapped(self, ids: Any) -> None:
        # An id mapping change: the bricks holding these ids (a frozenset marks it).
        self._edits.append(frozenset(int(i) for i in ids))
        self.dirty = True

    def _apply_edits(self) -> None:
        """Re-read the bricks the edits touched (a voxel more: neighbours' borders) and
        mark their meshes stale; the old meshes stay drawn until the new ones land."""
        edits, self._edits = self._edits, []
        keys: list[int] = []
        for regions in edits:
            if isinstance(regions, frozenset):  # id mapping change: bricks holding the ids
                keys += self.streamer.reload_ids(sorted(regions))
                continue
            for level, boxes in enumerate(regions):
                if level >= len(self._level_shape):
                    break
                for box in boxes:
                    grown = tuple(slice(s.start - 1, s.stop + 1) for s in box)
                    keys += self.streamer.reload(level, grown)
        for k in keys:
            if k in self._jobs:
                self._remesh.add(k)
                self._edited.add(k)
            if k in self._meshes:
                self._stale.add(k)
                self._edited.add(k)

    # -- mesh threads --------------------------------------------------------------------------
    def _job(self, pb: PaddedBrick) -> None:
        try:
            g = self.streamer.grid
            lv = pb.level
            surf = self.mesher(pb, self._level_shape[lv], g.translation[lv], g.scale[lv])
            stamp = _colors_stamp(self.layer)
            surf.polydata = self._colored_polydata(surf)
            surf.colors_for = stamp
            self._results.put((pb.key, surf))
        except BaseException as exc:  # handed to the frame thread, which logs it
            self._results.put((pb.key, exc))
        finally:
            self._arrival.set()

    def _colored_polydata(self, surf: BrickSurface) -> Any:
        pd = polydata(
            surf.vertices_xyz,
            polys=surf.faces,
            cell_arrays={"label": surf.face_ids},
            normals=surf.normals_xyz,
        )
        rgb = v.numpy_to_vtk(_vertex_colors(self.layer, surf), deep=True)
        rgb.SetName("colors")
        pd.GetPointData().SetScalars(rgb)
        return pd

    def wait(self, timeout: float) -> None:
        """Block until a mesh finishes (or ``timeout`` s); for one-shot renders and tests."""
        if not self._jobs or not self._results.empty():
            return
        self._arrival.clear()
        if self._results.empty() and self._jobs:
            self._arrival.wait(timeout)

    # -- frame thread --------------------------------------------------------------------------
    def note(self, frame: StreamFrame) -> None:
        """Schedule meshing for ``frame`` without changing what is drawn."""
        self._step(frame, draw=False)

    def show(self, frame: StreamFrame) -> None:
        """Schedule meshing for ``frame`` and draw the best meshes ready."""
        self._step(frame, draw=True)

    def _step(self, frame: StreamFrame, draw: bool) -> None:
        st = self.streamer
        self.frame = frame
        if self._edits:
            self._apply_edits()
        changed = self._drain(frame)
        if st.cache.version != self._cache_version:
            changed |= self._drop_evicted()
        if len(frame.arrived):
            self._unshown.append(frame.arrived)
        if self._unshown:
            self._mark_stale(np.concatenate(self._unshown))
            self._unshown.clear()
        wanted, src = self._wanted(frame)
        self._schedule(frame, src)
        if draw:
            self._draw(wanted, force=changed)

    def _drain(self, frame: StreamFrame) -> bool:
        got = False
        while True:
            try:
                key, res = self._results.get_nowait()
            except queue.Empty:
                break
            self._jobs.discard(key)
            if isinstance(res, BaseException):
                self._failed.add(key)
                self._edited.discard(key)
                log.error("labels %s: meshing brick %d failed: %s", self.layer.name, key, res)
                continue
            if self.streamer.cache.peek(key) is None:
                continue  # the brick left the cache while it was meshed
            old = self._meshes.pop(key, None)
            if old is not None:
                self._mesh_bytes -= old.nbytes
            # A neighbour that arrived while this was meshing leaves it stale.
            nbrs = {int(k) for k in self.streamer.neighbour_keys(key) if k >= 0}
            missing = {k for k in nbrs - res.neighbours if self.streamer.cache.peek(k) is not None}
            if key in self._remesh:
                self._remesh.discard(key)
                self._stale.add(key)
            else:
                self._edited.discard(key)  # meshed from voxels read after every edit
                if missing:
                    self._stale.add(key)
                else:
                    self._stale.discard(key)
            self._meshes[key] = res
            self._mesh_bytes += res.nbytes
            self.built += 1
            got = True
        if got:
            self._mesh_keys = np.array(sorted(self._meshes), dtype=np.int64)
            self._evict(frame)
        return got

    def _drop_evicted(self) -> bool:
        self._cache_version = self.streamer.cache.version
        if not self._meshes:
            return False
        keys = self._mesh_keys
        gone = keys[~self.streamer.cache.contains_array(keys)]
        for k in gone.tolist():
            m = self._meshes.pop(k)
            self._mesh_bytes -= m.nbytes
            self._stale.discard(k)
            self._edited.discard(k)
        if len(gone):
            self._mesh_keys = np.array(sorted(self._meshes), dtype=np.int64)
        return bool(len(gone))

    def _evict(self, frame: StreamFrame) -> None:
        """Drop least recently drawn meshes while over the budget, never one drawn now or
        one of ``frame``'s leaves (it is about to be drawn)."""
        if self._mesh_bytes <= self.cache_bytes:
            return
        sel = frame.selection
        keep = {ik[0] for ik in self._actors}
        keep.update((self.streamer.key_base() + sel.nodes.take(sel.leaf_index)).tolist())
        for k in list(self._meshes):
            if self._mesh_bytes <= self.cache_bytes:
                break
            if k in keep:
                continue
            self._mesh_bytes -= self._meshes.pop(k).nbytes
            self._stale.discard(k)
            self._edited.discard(k)
        self._mesh_keys = np.array(sorted(self._meshes), dtype=np.int64)

    def _mark_stale(self, arrived: I64) -> None:
        st = self.streamer
        for k in arrived.tolist():
            for nk in st.neighbour_keys(int(k)).tolist():
                m = self._meshes.get(nk)
                if m is not None and k not in m.neighbours:
                    self._stale.add(nk)

    def _schedule(self, frame: StreamFrame, src: I64) -> None:
        """Hand the most wanted meshes to the pool, coarse level first.

        Wanted: the bricks the streamer draws (``frame.keys``: resident leaves and
        resident stand-ins) and, for each leaf with no mesh on its path yet (``src``
        -1), the coarsest resident brick on its path: one coarse mesh covers many
        leaves, so surfaces appear fast even when fine bricks load as fast as coarse.
        """
        st = self.streamer
        sel = frame.selection
        keys = frame.keys
        levels = frame.levels
        bare = np.flatnonzero(src < 0)
        if len(bare):
            base = st.key_base()
            resident = st.cache.contains_array(base + sel.nodes)
            # Coarsest resident node on each node's path, one pass down the levels
            # (nodes are stored coarsest level first, parents before children).
            top = np.where(resident, np.arange(len(resident)), -1)
            parent = sel.node_parent
            for _, s0, e0 in sel.level_bounds[1:]:
                up = top.take(parent[s0:e0])
                seg = top[s0:e0]
                np.copyto(seg, up, where=up >= 0)
            extra = top.take(sel.leaf_index.take(bare))
            extra = np.unique(extra[extra >= 0])
            if len(extra):
                keys = np.concatenate([keys, base + sel.nodes.take(extra)])
                levels = np.concatenate([levels, sel.node_levels.take(extra)])
        if len(keys) == 0:
            self.waiting = 0
            return
        order = np.argsort(-levels, kind="stable")
        want = []
        seen: set[int] = set()
        for k in keys[order].tolist():
            if k in seen or k in self._jobs or k in self._failed:
                continue
            seen.add(k)
            if k in self._meshes and k not in self._stale:
                continue
            want.append(k)
        free = max(self.max_jobs - len(self._jobs), 0)
        for k in want[:free]:
            pb = st.padded(k)
            if pb is None:
                continue
            self._jobs.add(k)
            self._pool.submit(self._job, pb)
        self.waiting = max(len(want) - free, 0)

    def _wanted(self, frame: StreamFrame) -> tuple[dict[DrawItem, tuple[int, F64, F64]], I64]:
        """The items to draw (brick key, crop box) from the meshes ready, and each leaf's
        source node (-1: no mesh on its path yet); sets ``complete``."""
        st = self.streamer
        sel = frame.selection
        base = st.key_base()
        node_keys = base + sel.nodes
        if len(self._mesh_keys) and len(node_keys):
            i = np.minimum(np.searchsorted(self._mesh_keys, node_keys), len(self._mesh_keys) - 1)
            meshed = self._mesh_keys[i] == node_keys
        else:
            meshed = np.zeros(len(node_keys), dtype=bool)
        # The streamer's stand-in rule with "meshed" as residency: a leaf without its
        # mesh is drawn by its nearest meshed ancestor, cropped to the leaf's box.
        # (Private API of VolumeStreamer: its per-leaf boxes are those of ``sel``, the
        # selection of the update() that made ``frame``, which the controller just ran.)
        idx, lo, hi, src = st._draw_items(sel, meshed)
        own = src == sel.leaf_index
        self.complete = bool(
            frame.complete
            and own.all()
            and not any(int(k) in self._stale for k in node_keys[sel.leaf_index].tolist())
        )
        return draw_items(base + sel.nodes[idx], lo, hi), src

    def _draw(self, wanted: dict[DrawItem, tuple[int, F64, F64]], force: bool) -> None:
        changed = force
        for ik in [ik for ik in self._actors if ik not in wanted]:
            del self._actors[ik]
            changed = True
        for ik, (key, a, b) in wanted.items():
            got = self._actors.get(ik)
            surf = self._meshes.get(key)
            if surf is None:
                continue
            if got is None or got[1] is not surf:
                self._actors[ik] = self._actor(surf, a, b)
                changed = True
            self._meshes.move_to_end(key)
        if not changed:
            return
        self.items = [
            (ik[0], surf.level, np.asarray(ik[1][:3]), np.asarray(ik[1][3:]))
            for ik, (_, surf, _) in self._actors.items()
        ]
        self.props = [a for a, _, _ in self._actors.values()] + [self.outline_actor]
        self.dirty = True

    def _crop(self, surf: BrickSurface, lo: F64, hi: F64) -> I64 | None:
        """Triangles of ``surf`` whose centroid lies in the box ``[lo, hi)`` (None: all).

        Box faces on the brick's own faces or on the volume's extent are open: the
        brick's mesh already stops there (its own triangles), and caps of objects at
        the volume's faces lie half a voxel outside the extent.
        """
        tol = 1e-6 * float(np.max(surf.box_hi_um - surf.box_lo_um))
        open_lo = (lo <= surf.box_lo_um + tol) | (lo <= self._extent_lo + tol)
        open_hi = (hi >= surf.box_hi_um - tol) | (hi >= self._extent_hi - tol)
        hidden = self._hidden
        keep: npt.NDArray[np.bool_] | None = None
        c = surf.centroids_zyx
        # Only the box faces that cut (a stand-in usually has one to three).
        for ax in range(3):
            if not open_lo[ax]:
                m = c[ax] >= lo[ax]
                keep = m if keep is None else np.logical_and(keep, m, out=keep)
            if not open_hi[ax]:
                m = c[ax] < hi[ax]
                keep = m if keep is None else np.logical_and(keep, m, out=keep)
        if hidden and np.isin(surf.ids, list(hidden)).any():
            vis = ~np.isin(surf.face_ids, list(hidden))
            keep = vis if keep is None else keep & vis
        return None if keep is None else np.flatnonzero(keep)

    def _actor(self, surf: BrickSurface, lo: F64, hi: F64) -> tuple[Any, BrickSurface, I64 | None]:
        faces = self._crop(surf, lo, hi)
        if surf.colors_for != self._stamp:
            self._recolor(surf)
        pd = surf.polydata
        if faces is not None:
            # Shares the brick's points and point data (colours, normals); only the
            # triangles and their labels are new.
            sub = v.vtkPolyData()
            sub.SetPoints(pd.GetPoints())
            sub.GetPointData().ShallowCopy(pd.GetPointData())
            cells = polydata(np.zeros((0, 3)), polys=surf.faces[faces])
            sub.SetPolys(cells.GetPolys())
            lab = v.numpy_to_vtk(np.ascontiguousarray(surf.face_ids[faces]), deep=True)
            lab.SetName("label")
            sub.GetCellData().AddArray(lab)
            pd = sub
        mapper = v.vtkPolyDataMapper()
        mapper.SetInputData(pd)
        mapper.SetColorModeToDirectScalars()
        mapper.SetScalarModeToUsePointData()
        actor = v.vtkActor()
        actor.SetMapper(mapper)
        actor.SetProperty(self.surface_property)
        actor.SetVisibility(bool(self.layer.visible))
        return actor, surf, faces

    def _recolor(self, surf: BrickSurface) -> None:
        """Colours of ``surf`` by the layer's current colour settings, in place."""
        if surf.polydata is None or not len(surf.faces):
            surf.colors_for = self._stamp
            return
        arr = surf.polydata.GetPointData().GetScalars()
        v.vtk_to_numpy(arr)[:] = _vertex_colors(self.layer, surf)
        arr.Modified()
        surf.colors_for = self._stamp

    # -- VtkLayer ------------------------------------------------------------------------------
    def _update(self, ctx: FrameContext) -> None:
        lay = self.layer
        stamp = _colors_stamp(lay)
        if stamp != self._stamp:
            self._stamp = stamp
            for surf in {id(s): s for _, s, _ in self._actors.values()}.values():
                self._recolor(surf)
        hidden = frozenset(int(i) for i in lay.hidden_ids)
        if hidden != self._hidden:
            self._hidden = hidden
            for ik, (_, surf, _) in list(self._actors.items()):
                self._actors[ik] = self._actor(surf, np.asarray(ik[1][:3]), np.asarray(ik[1][3:]))
            self.props = [a for a, _, _ in self._actors.values()] + [self.outline_actor]
        self.surface_property.SetOpacity(lay.opacity)
        sel = ctx.selection
        chosen = {int(i) for i in sel.label_ids} - hidden
        self._outline_on = False
        if lay.outline_selected and sel.layer == lay.name and chosen:
            merged = self._merged_ids(chosen)
            if merged is not None:
                self.outline.SetInputData(merged)
                self._outline_on = True

    def _merged_ids(self, ids: set[int]) -> Any:
        """One polydata of the drawn triangles of ``ids`` (for the selection outline)."""
        pts, tri, lab = [], [], []
        n = 0
        want = np.asarray(sorted(ids), dtype=np.int64)
        for _, surf, faces in self._actors.values():
            if not np.isin(surf.ids, want).any():
                continue
            f_idx = np.arange(len(surf.faces)) if faces is None else faces
            f_idx = f_idx[np.isin(surf.face_ids[f_idx], want)]
            f = surf.faces[f_idx]
            used, inv = np.unique(f, return_inverse=True)
            pts.append(surf.vertices_xyz[used])
            tri.append(inv.reshape(-1, 3) + n)
            lab.append(surf.face_ids[f_idx])
            n += len(used)
        if not pts:
            return None
        return polydata(
            np.concatenate(pts),
            polys=np.concatenate(tri),
            cell_arrays={"label": np.concatenate(lab)},
        )

    def _apply_visibility(self) -> None:
        vis = bool(self.layer.visible)
        for a, _, _ in self._actors.values():
            a.SetVisibility(vis)
        self.outline_actor.SetVisibility(vis and self._outline_on)

    def mappers(self) -> list[Any]:
        return [a.GetMapper() for a, _, _ in self._actors.values()] + [
            self.outline_actor.GetMapper()
        ]

    def drawn_triangles(self) -> list[tuple[int, npt.NDArray[np.float32], I64, I64]]:
        """What is drawn, per item: (level, vertices (N, 3) xyz, triangles (F, 3), ids (F,))."""
        out = []
        for _, surf, faces in self._actors.values():
            f = surf.faces if faces is None else surf.faces[faces]
            ids = surf.face_ids if faces is None else surf.face_ids[faces]
            out.append((surf.level, surf.vertices_xyz, f, ids))
        return out

    def export(self, ids: list[int], path: str) -> Path:
        """Write the drawn meshes of ``ids`` (at the levels drawn now) as GLB/PLY/STL."""
        meshes: dict[int, trimesh.Trimesh] = {}
        for i in ids:
            parts = []
            for _, verts, f, fid in self.drawn_triangles():
                sel = f[fid == int(i)]
                if len(sel):
                    parts.append(trimesh.Trimesh(verts, sel, process=False))
            if parts:
                merged: Any = trimesh.util.concatenate(parts)
                meshes[int(i)] = merged
        return export_meshes(meshes, ids, path)

    def close_pool(self) -> None:
        """Stop the mesh threads (a running mesh finishes; queued ones are dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.layer.labels_regions.disconnect(self._on_labels_regions)
        self.layer.labels_remapped.disconnect(self._on_labels_remapped)
        self.close_pool()
        self._actors.clear()
        self._meshes.clear()
        super().close()
