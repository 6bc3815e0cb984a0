"""Your own hands and controllers, drawn in the headset: procedural triangle meshes.

A tracked hand (``XR_EXT_hand_tracking``) is drawn from its 26 joints: a sphere at
each joint and a tube along each bone (the finger bones, the thumb's, and the web
of the palm between the knuckles), skin-coloured, so it follows every finger the
runtime reports. A controller is drawn at its grip pose as a handle plus what tells
the profile families apart: the tracking ring of Touch-style controllers (Oculus /
Meta Touch, Pico, WMR), the Vive wand's ring head and trackpad, the Index's head
with its trackpad, or a plain handle with a button for the simple controller. Each
hand also gets its pointing ray (a line along the aim pose's -Z).

No mesh library is used: a tube, a UV sphere and a torus are a few lines of NumPy
each, built every frame from the poses (a few thousand vertices), and VTK's sources
would have to be moved to each pose through ``viewer.render`` anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .input._types import quat_rotate

__all__ = [
    "HAND_BONES",
    "HAND_COLOR",
    "Mesh",
    "RAY_LENGTH_M",
    "controller_family",
    "controller_mesh",
    "hand_mesh",
    "hand_models",
]

F64 = npt.NDArray[np.float64]
RGB = tuple[float, float, float]

HAND_COLOR: RGB = (0.85, 0.68, 0.58)
BODY_COLOR: RGB = (0.42, 0.44, 0.50)
RING_COLOR: RGB = (0.78, 0.80, 0.85)
PAD_COLOR: RGB = (0.20, 0.40, 0.95)
RAY_LENGTH_M = 0.25  # the pointing ray drawn from each hand
JOINT_RADIUS_M = 0.009
BONE_RADIUS_M = 0.007

#: Bones between ``XrHandJointEXT`` indices: wrist to each metacarpal base, each
#: finger's chain to its tip, and the web of the palm across the knuckles.
HAND_BONES: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 3), (3, 4), (4, 5),  # thumb
    *((a, b) for f in (6, 11, 16, 21) for a, b in ((1, f), (f, f + 1), (f + 1, f + 2),
                                                  (f + 2, f + 3), (f + 3, f + 4))),
    (7, 12), (12, 17), (17, 22),  # knuckles
    (6, 11), (11, 16), (16, 21),  # metacarpal bases
)  # fmt: skip


@dataclass
class Mesh:
    """Triangles with per-vertex colours and normals (stage metres)."""

    points: F64 = field(default_factory=lambda: np.zeros((0, 3)))
    triangles: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    colors: F64 = field(default_factory=lambda: np.zeros((0, 3)))
    normals: F64 = field(default_factory=lambda: np.zeros((0, 3)))

    @staticmethod
    def concat(meshes: list[Mesh]) -> Mesh:
        if not meshes:
            return Mesh()
        offsets = np.cumsum([0] + [len(m.points) for m in meshes[:-1]])
        return Mesh(
            np.concatenate([m.points for m in meshes]),
            np.concatenate([m.triangles + o for m, o in zip(meshes, offsets, strict=True)]),
            np.concatenate([m.colors for m in meshes]),
            np.concatenate([m.normals for m in meshes]),
        )


def _frame(axis: F64) -> tuple[F64, F64]:
    """Two unit vectors perpendicular to ``axis`` and to each other."""
    a = axis / max(float(np.linalg.norm(axis)), 1e-12)
    ref = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(a, ref)
    u /= np.linalg.norm(u)
    return u, np.cross(a, u)


def _grid(rows: int, cols: int, wrap_cols: bool = True) -> npt.NDArray[np.int64]:
    """Triangles of a ``rows`` x ``cols`` vertex grid (columns wrap around)."""
    r, c = np.mgrid[: rows - 1, : cols if wrap_cols else cols - 1]
    c1 = (c + 1) % cols
    a, b, d, e = r * cols + c, r * cols + c1, (r + 1) * cols + c, (r + 1) * cols + c1
    return np.concatenate(
        [np.c_[a.ravel(), b.ravel(), e.ravel()], np.c_[a.ravel(), e.ravel(), d.ravel()]]
    )


def tube(a: npt.ArrayLike, b: npt.ArrayLike, radius: float, color: RGB, sides: int = 10) -> Mesh:
    """An open cylinder from ``a`` to ``b`` (the joints' spheres close its ends)."""
    p0, p1 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    u, w = _frame(p1 - p0)
    ang = np.linspace(0.0, 2 * np.pi, sides, endpoint=False)
    ring = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * w
    pts = np.concatenate([p0 + radius * ring, p1 + radius * ring])
    return Mesh(pts, _grid(2, sides), np.tile(color, (len(pts), 1)), np.concatenate([ring, ring]))


def sphere(centre: npt.ArrayLike, radius: float, color: RGB, n: int = 8) -> Mesh:
    """A UV sphere (``n`` latitude rows, ``2 n`` meridians)."""
    th = np.linspace(0.0, np.pi, n)
    ph = np.linspace(0.0, 2 * np.pi, 2 * n, endpoint=False)
    t, p = np.meshgrid(th, ph, indexing="ij")
    nrm = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], axis=-1).reshape(
        -1, 3
    )
    pts = np.asarray(centre, dtype=np.float64) + radius * nrm
    return Mesh(pts, _grid(n, 2 * n), np.tile(color, (len(pts), 1)), nrm)


def torus(
    centre: npt.ArrayLike, normal: npt.ArrayLike, big: float, small: float, color: RGB
) -> Mesh:
    """A ring of radius ``big`` (tube radius ``small``) around ``normal``."""
    c = np.asarray(centre, dtype=np.float64)
    u, w = _frame(np.asarray(normal, dtype=np.float64))
    n_axis = np.cross(u, w)
    a = np.linspace(0.0, 2 * np.pi, 28, endpoint=False)
    b = np.linspace(0.0, 2 * np.pi, 8, endpoint=False)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    radial = np.cos(aa)[..., None] * u + np.sin(aa)[..., None] * w
    nrm = (np.cos(bb)[..., None] * radial + np.sin(bb)[..., None] * n_axis).reshape(-1, 3)
    pts = c + big * radial.reshape(-1, 3) + small * nrm
    # Rows run around the ring (wrapping too): close the last row onto the first.
    tri = _grid(len(a) + 1, len(b)) % (len(a) * len(b))
    return Mesh(pts, tri, np.tile(color, (len(pts), 1)), nrm)


def disk(centre: npt.ArrayLike, normal: npt.ArrayLike, radius: float, color: RGB) -> Mesh:
    """A flat round pad facing ``normal``."""
    c = np.asarray(centre, dtype=np.float64)
    nrm = np.asarray(normal, dtype=np.float64)
    nrm = nrm / max(float(np.linalg.norm(nrm)), 1e-12)
    u, w = _frame(nrm)
    a = np.linspace(0.0, 2 * np.pi, 20, endpoint=False)
    rim = c + radius * (np.cos(a)[:, None] * u + np.sin(a)[:, None] * w)
    pts = np.concatenate([c[None], rim])
    k = np.arange(1, 21)
    tri = np.c_[np.zeros(20, np.int64), k, k % 20 + 1]
    return Mesh(pts, tri, np.tile(color, (len(pts), 1)), np.tile(nrm, (len(pts), 1)))


def hand_mesh(joints: npt.ArrayLike, color: RGB = HAND_COLOR) -> Mesh:
    """Spheres at the 26 joints and tubes along :data:`HAND_BONES` (stage metres)."""
    j = np.asarray(joints, dtype=np.float64).reshape(26, 3)
    parts = [sphere(p, JOINT_RADIUS_M, color, n=6) for p in j]
    parts += [tube(j[a], j[b], BONE_RADIUS_M, color, sides=8) for a, b in HAND_BONES]
    return Mesh.concat(parts)


_FAMILIES = {
    "oculus/touch_controller": "touch",
    "meta/touch_pro_controller": "touch",
    "meta/touch_controller_plus": "touch",
    "bytedance/pico4_controller": "touch",
    "microsoft/motion_controller": "ring",
    "hp/mixed_reality_controller": "touch",
    "htc/vive_controller": "wand",
    "valve/index_controller": "index",
}


def controller_family(profile: str) -> str:
    """The model family of an interaction profile path (``"simple"`` when unknown)."""
    for key, family in _FAMILIES.items():
        if profile.endswith(key):
            return family
    return "simple"


def controller_mesh(grip: Any, side: str, family: str) -> Mesh:
    """A controller at ``grip`` (a :class:`~xrmode.input.Pose`; OpenXR's grip space:
    -Z along the handle, forward through the fist; +X out of the right palm)."""
    q = grip.orientation
    o = np.asarray(grip.position, dtype=np.float64)

    def at(x: float, y: float, z: float) -> F64:
        return o + np.asarray(quat_rotate(q, (x, y, z)))

    def d(x: float, y: float, z: float) -> F64:
        return np.asarray(quat_rotate(q, (x, y, z)))

    out = -1.0 if side == "left" else 1.0  # +X: away from the palm
    parts = [
        # The handle: a capsule through the fist.
        tube(at(0, 0, 0.05), at(0, 0, -0.04), 0.018, BODY_COLOR),
        sphere(at(0, 0, 0.05), 0.018, BODY_COLOR),
        sphere(at(0, 0, -0.04), 0.018, BODY_COLOR),
    ]
    if family == "touch":  # the tracking ring over the top, tilted back over the thumb
        parts.append(
            torus(at(-0.02 * out, 0.02, -0.05), d(-0.3 * out, 0.6, 1.0), 0.045, 0.006, RING_COLOR)
        )
        parts.append(disk(at(0, 0.02, -0.045), d(0, 1.0, 0.3), 0.012, PAD_COLOR))
    elif family == "ring":  # WMR: a larger ring around the front
        parts.append(torus(at(0, 0.0, -0.07), d(0, 0.3, 1.0), 0.05, 0.006, RING_COLOR))
        parts.append(disk(at(0, 0.02, -0.03), d(0, 1.0, 0.3), 0.014, PAD_COLOR))
    elif family == "wand":  # Vive: a long handle ending in a ring head, a trackpad on top
        parts.append(tube(at(0, 0, -0.04), at(0, 0, -0.10), 0.018, BODY_COLOR))
        parts.append(torus(at(0, 0.0, -0.14), d(0, 1.0, 0.3), 0.04, 0.007, RING_COLOR))
        parts.append(disk(at(0, 0.02, -0.07), d(0, 1.0, 0.0), 0.017, PAD_COLOR))
    elif family == "index":  # Index: a head above the handle with its trackpad
        parts.append(sphere(at(0, 0.03, -0.05), 0.026, BODY_COLOR))
        parts.append(disk(at(0, 0.057, -0.05), d(0, 1.0, 0.2), 0.014, PAD_COLOR))
        parts.append(
            tube(at(0.03 * out, 0.02, -0.05), at(0.03 * out, -0.01, 0.05), 0.004, RING_COLOR)
        )
    else:  # simple controller: a button on the handle
        parts.append(disk(at(0, 0.019, -0.02), d(0, 1.0, 0.0), 0.009, PAD_COLOR))
    return Mesh.concat(parts)


def hand_models(inp: Any) -> dict[str, Any]:
    """Meshes and rays of the tracked hands of an input frame, as ``XrOverlay`` fields:
    a hand from its joints, a controller from its grip pose and profile family, and
    for each a :data:`RAY_LENGTH_M` ray from the aim pose along its -Z."""
    meshes: list[Mesh] = []
    rays, ray_colors = [], []
    for h in (inp.left, inp.right):
        if h.aim is None:
            continue
        joints = getattr(h, "joints", None)
        if h.source == "hand" and joints is not None:
            meshes.append(hand_mesh(joints))
            color = HAND_COLOR
        else:
            grip = h.grip if h.grip is not None else h.aim
            meshes.append(controller_mesh(grip, h.side, controller_family(h.profile)))
            color = RING_COLOR
        start = np.asarray(h.aim.position, dtype=np.float64)
        rays.append([start, start + RAY_LENGTH_M * np.asarray(h.aim.forward)])
        ray_colors.append(color)
    mesh = Mesh.concat(meshes)
    return {
        "mesh_points": mesh.points,
        "mesh_triangles": mesh.triangles,
        "mesh_colors": mesh.colors,
        "mesh_normals": mesh.normals,
        "rays": np.asarray(rays, dtype=np.float64).reshape(-1, 2, 3),
        "ray_colors": np.asarray(ray_colors, dtype=np.float64).reshape(-1, 3),
    }
