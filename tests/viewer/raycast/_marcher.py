"""A NumPy reference ray marcher, written from the definitions, independent of the shader.

Rays come from look-at + pinhole definitions (not ``camera_matrices``), samples are
trilinear (``scipy.ndimage.map_coordinates``, edges clamped), the transfer function is
the table interpolated at texel centres; composite is front-to-back "over" with the
opacity correction ``1 - (1 - a) ** (step / ref)`` and stops at alpha > 0.99.

Samples follow VTK's GPU ray caster (vtkOpenGLGPUVolumeRayCastMapper), as the shader
does: at ``t0 + k * step`` for k >= 1 (none on the entry face), while inside the box
(``t < t_box``) and up to one step past the end set by clipping planes or ``t_end``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage

F64 = npt.NDArray[np.float64]


def rays(position_zyx, focal_zyx, up_zyx, view_angle_deg, size) -> tuple[F64, F64]:
    """Eye (3,) and unit directions (H, W, 3), world zyx, row 0 at the top."""
    eye = np.asarray(position_zyx, float)
    fwd = np.asarray(focal_zyx, float) - eye
    fwd /= np.linalg.norm(fwd)
    # Right-handed in xyz: right = fwd x up computed in xyz, converted back to zyx.
    right = np.cross(fwd[::-1], np.asarray(up_zyx, float)[::-1])[::-1]
    right /= np.linalg.norm(right)
    up = np.cross(right[::-1], fwd[::-1])[::-1]
    w, h = size
    t = math.tan(math.radians(view_angle_deg) / 2)
    nx = ((np.arange(w) + 0.5) / w * 2 - 1) * t * w / h
    ny = (1 - (np.arange(h) + 0.5) / h * 2) * t
    d = fwd + nx[None, :, None] * right + ny[:, None, None] * up
    return eye, d / np.linalg.norm(d, axis=-1, keepdims=True)


def slab(eye: F64, d: F64, lo: F64, hi: F64) -> tuple[F64, F64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (lo - eye) / d
        b = (hi - eye) / d
    t0 = np.nanmax(np.minimum(a, b), axis=-1)
    t1 = np.nanmin(np.maximum(a, b), axis=-1)
    return np.maximum(t0, 0.0), t1


def march(
    field,
    box_lo,
    box_hi,
    eye,
    d,
    step,
    ref_step,
    table,
    window,
    mode="composite",
    planes=(),
    t_end=None,
):
    """Image (H, W, 4) premultiplied.

    field(points (P, 3) zyx) -> values (P,) in texture units; window = (lo, hi) in the
    same units; planes: (4,) zyx half-spaces n.p + d >= 0; t_end (H, W): ray ends.
    """
    h, w, _ = d.shape
    dd = d.reshape(-1, 3)
    t0, tb = slab(eye, dd, np.asarray(box_lo, float), np.asarray(box_hi, float))
    ts = np.full_like(tb, np.inf)  # end set by planes and t_end
    for pl in planes:
        n, off = np.asarray(pl[:3], float), float(pl[3])
        dn = dd @ n
        dist = eye @ n + off
        with np.errstate(divide="ignore", invalid="ignore"):
            th = -dist / dn
        t0 = np.where(dn > 0, np.maximum(t0, th), t0)
        ts = np.where(dn < 0, np.minimum(ts, th), ts)
        ts = np.where((dn == 0) & (dist < 0), -np.inf, ts)
    if t_end is not None:
        ts = np.minimum(ts, np.asarray(t_end, float).reshape(-1))
    # VTK's lattice (module docstring): first sample one step in; the termination test
    # runs after the step, so samples go on to one step past ts.
    t1 = np.where(ts > t0, np.minimum(tb, ts + step), t0)
    n_tab = len(table)

    def tf(v):
        u = np.clip((v - window[0]) / (window[1] - window[0]), 0, 1) * n_tab - 0.5
        return np.stack([np.interp(u, np.arange(n_tab), table[:, c]) for c in range(4)], -1)

    acc = np.zeros((len(dd), 4))
    vmax = np.full(len(dd), -np.inf)
    vmin = np.full(len(dd), np.inf)
    t = t0 + step
    live = t < t1
    ex = step / ref_step
    while live.any():
        idx = live.nonzero()[0]
        p = eye + dd[idx] * t[idx, None]
        v = field(p)
        if mode == "composite":
            c = tf(v)
            al = 1 - (1 - c[:, 3]) ** ex
            a = acc[idx]
            a[:, :3] += ((1 - a[:, 3]) * al)[:, None] * c[:, :3]
            a[:, 3] += (1 - a[:, 3]) * al
            acc[idx] = a
            live[idx] = a[:, 3] <= 0.99
        else:
            vmax[idx] = np.maximum(vmax[idx], v)
            vmin[idx] = np.minimum(vmin[idx], v)
        t[idx] += step
        live &= t < t1
    if mode != "composite":
        v = vmax if mode == "mip" else vmin
        hit = np.isfinite(v)
        c = tf(np.where(hit, v, 0.0))
        acc = np.where(hit[:, None], np.concatenate([c[:, :3] * c[:, 3:], c[:, 3:]], 1), 0.0)
    return acc.reshape(h, w, 4)


def trilinear(level_array, voxel0, scale, one):
    """field(points zyx) of one level: trilinear, clamped at the edges, / ``one``."""
    arr = np.asarray(level_array, np.float64) / one

    def f(p):
        c = ((p - np.asarray(voxel0)) / np.asarray(scale)).T
        return ndimage.map_coordinates(arr, c, order=1, mode="nearest")

    return f


def psnr(a, b, peak=1.0) -> float:
    mse = float(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(peak**2 / mse)


def lowbias32(ids) -> np.ndarray:
    """Chris Wellons' lowbias32 hash, written from its definition (uint32 wrap-around)."""
    out = []
    for x in np.asarray(ids, np.uint64).reshape(-1).tolist():
        x &= 0xFFFFFFFF
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        x ^= x >> 16
        out.append(x)
    return np.asarray(out, np.uint64)


def march_labels(
    level_array,
    voxel0,
    scale,
    box_lo,
    box_hi,
    eye,
    d,
    step,
    ref_step,
    opacity,
    hidden=(),
    selected=(),
    selected_opacity=0.9,
    colors=None,
):
    """Label image (H, W, 4): nearest voxel, colour = 0.2 + 0.8 * hash bytes / 255, or
    ``colors[id]`` (RGB in [0, 1], 8-bit quantised) for the ids that mapping holds."""
    h, w, _ = d.shape
    dd = d.reshape(-1, 3)
    t0, t1 = slab(eye, dd, np.asarray(box_lo, float), np.asarray(box_hi, float))
    arr = np.asarray(level_array)
    shape = np.asarray(arr.shape)
    ids = np.unique(arr)
    hsh = lowbias32(ids)
    rgb = 0.2 + 0.8 * np.stack([hsh & 255, (hsh >> 8) & 255, (hsh >> 16) & 255], 1) / 255.0
    for i, c in (colors or {}).items():
        rgb[np.searchsorted(ids, i)] = np.round(np.clip(c, 0, 1) * 255) / 255
    alpha = np.full(len(ids), float(opacity))
    sel = np.isin(ids, selected)
    rgb[sel] = 0.5 * rgb[sel] + 0.5
    alpha[sel] = selected_opacity
    alpha[np.isin(ids, hidden) | (ids == 0)] = 0.0
    ex = step / ref_step
    acc = np.zeros((len(dd), 4))
    t = t0 + step  # VTK's lattice, as in march()
    live = t < t1
    while live.any():
        idx = live.nonzero()[0]
        p = eye + dd[idx] * t[idx, None]
        vox = np.clip(np.floor((p - voxel0) / scale + 0.5), 0, shape - 1).astype(np.int64)
        k = np.searchsorted(ids, arr[vox[:, 0], vox[:, 1], vox[:, 2]])
        al = 1 - (1 - alpha[k]) ** ex
        a = acc[idx]
        a[:, :3] += ((1 - a[:, 3]) * al)[:, None] * rgb[k]
        a[:, 3] += (1 - a[:, 3]) * al
        acc[idx] = a
        live[idx] = a[:, 3] <= 0.99
        t[idx] += step
        live &= t < t1
    return acc.reshape(h, w, 4)
