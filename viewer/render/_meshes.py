"""Label surfaces: marching cubes per object, smoothing, decimation, export (no VTK here).

Meshes are ``trimesh.Trimesh`` in world **x, y, z** µm (the renderer's and the
usual mesh-file convention), faces wound outward.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trimesh

from analysis.errors import ParameterError

__all__ = ["LabelMeshCache", "decimate_to_budget", "export_meshes", "label_mesh"]

log = logging.getLogger(__name__)


def label_mesh(
    labels: npt.NDArray[np.integer],
    label_id: int,
    spacing_um: Sequence[float] | npt.NDArray[np.float64],
    origin_um: Sequence[float] | npt.NDArray[np.float64] = (0.0, 0.0, 0.0),
    bbox: tuple[slice, ...] | None = None,
    smoothing_iterations: int = 10,
) -> trimesh.Trimesh | None:
    """Surface of one object by marching cubes (scikit-image) on its padded bounding box.

    Parameters
    ----------
    labels : (Z, Y, X) int array
    label_id : int
    spacing_um : (3,) floats, zyx voxel size
    origin_um : (3,) floats, zyx world position of voxel (0, 0, 0)'s centre
    bbox : tuple of 3 slices, optional
        The object's bounding box (``scipy.ndimage.find_objects``); found when omitted.
    smoothing_iterations : int, default: 10
        Taubin passes (trimesh); Taubin keeps the volume, unlike plain Laplacian.

    Returns
    -------
    trimesh.Trimesh in world xyz µm, or None when the object is absent.
    """
    from scipy import ndimage
    from skimage import measure

    marching_cubes: Any = measure.marching_cubes

    if bbox is None:
        found = ndimage.find_objects((labels == label_id).astype(np.uint8))
        if not found or found[0] is None:
            return None
        bbox = found[0]
    start = np.array([max(s.start - 1, 0) for s in bbox])
    stop = np.array([min(s.stop + 1, n) for s, n in zip(bbox, labels.shape, strict=True)])
    crop = labels[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] == label_id
    if not crop.any():
        return None
    # Pad with background so objects touching the volume border are closed.
    mask = np.pad(crop, 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(
        mask, level=0.5, spacing=tuple(float(s) for s in spacing_um)
    )
    verts_zyx = verts + (start - 1) * np.asarray(spacing_um) + np.asarray(origin_um)
    # scikit-image winds its faces inward in (z, y, x); the zyx -> xyz swap is a
    # reflection, which turns the same faces outward (tests check volume > 0).
    mesh = trimesh.Trimesh(vertices=verts_zyx[:, ::-1], faces=faces, process=False)
    if smoothing_iterations > 0 and len(mesh.faces) > 8:
        taubin: Any = trimesh.smoothing.filter_taubin
        taubin(mesh, iterations=smoothing_iterations)
    return mesh


def decimate_to_budget(
    meshes: Mapping[int, trimesh.Trimesh], budget: int, min_faces: int = 80
) -> dict[int, trimesh.Trimesh]:
    """Quadric decimation (trimesh / fast-simplification) so all meshes fit ``budget`` faces.

    Each mesh keeps a share of the budget proportional to its face count, at
    least ``min_faces``; meshes already under their share are kept as they are.
    """
    total = sum(len(m.faces) for m in meshes.values())
    if total <= budget:
        return dict(meshes)
    out = {}
    for k, m in meshes.items():
        target = max(min_faces, int(budget * len(m.faces) / total))
        if len(m.faces) > target:
            try:
                m = m.simplify_quadric_decimation(face_count=target)
            except ImportError:  # pragma: no cover - fast-simplification missing
                log.warning("fast-simplification is not installed; meshes are not decimated")
                return dict(meshes)
        out[k] = m
    return out


class LabelMeshCache:
    """Meshes per label id, rebuilt only for objects whose voxels changed.

    ``update(labels, ...)`` meshes every id present that is not cached;
    ``invalidate(ids)`` drops some (after an edit), ``clear()`` all (new data).
    """

    def __init__(self) -> None:
        self._meshes: dict[int, trimesh.Trimesh] = {}
        self._key: tuple[object, ...] | None = None
        self.built = 0  # meshes built over the cache's life (tests check reuse)

    def invalidate(self, ids: Iterable[int]) -> None:
        for i in ids:
            self._meshes.pop(int(i), None)

    def clear(self) -> None:
        self._meshes.clear()

    def update(
        self,
        labels: npt.NDArray[np.integer],
        spacing_um: Sequence[float] | npt.NDArray[np.float64],
        origin_um: Sequence[float] | npt.NDArray[np.float64],
        smoothing_iterations: int,
    ) -> dict[int, trimesh.Trimesh]:
        """Mesh all objects of ``labels`` (missing ones only) and return id -> mesh."""
        from scipy import ndimage

        key = (
            labels.shape,
            tuple(np.asarray(spacing_um).tolist()),
            tuple(np.asarray(origin_um).tolist()),
            smoothing_iterations,
        )
        if key != self._key:
            self._meshes.clear()
            self._key = key
        if labels.size == 0:
            return {}
        lab = np.asarray(labels)
        if lab.min() < 0:
            raise ParameterError("label ids must be >= 0")
        boxes = ndimage.find_objects(lab)
        present = {i + 1 for i, b in enumerate(boxes) if b is not None}
        for gone in set(self._meshes) - present:
            del self._meshes[gone]
        for lid in sorted(present - set(self._meshes)):
            m = label_mesh(lab, lid, spacing_um, origin_um, boxes[lid - 1], smoothing_iterations)
            if m is not None:
                self._meshes[lid] = m
                self.built += 1
        return dict(self._meshes)


def export_meshes(
    meshes: Mapping[int, trimesh.Trimesh], ids: Iterable[int], path: str | Path
) -> Path:
    """Write the meshes of ``ids`` into one GLB, PLY or STL file (by suffix), via trimesh.

    GLB keeps one named node per object (``label_<id>``); PLY and STL hold the
    concatenated surfaces.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".glb", ".ply", ".stl"}:
        raise ParameterError(
            f"mesh export supports .glb, .ply and .stl, not {suffix or path.name!r}"
        )
    chosen = [int(i) for i in ids]
    missing = [i for i in chosen if i not in meshes]
    if missing:
        raise ParameterError(f"no mesh for label ids {missing[:10]}")
    if not chosen:
        raise ParameterError("no label ids given for export")
    if suffix == ".glb":
        scene = trimesh.Scene()
        for i in chosen:
            scene.add_geometry(meshes[i], node_name=f"label_{i}", geom_name=f"label_{i}")
        export: Any = scene.export
        export(str(path))
    else:
        merged: Any = trimesh.util.concatenate([meshes[i] for i in chosen])
        merged.export(str(path))
    return path
