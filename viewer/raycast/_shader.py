"""GLSL of the single-pass ray caster (GLSL 3.30 core: any OpenGL >= 3.3 context runs it).

All shader-side geometry is in world (x, y, z) µm: the host converts zyx once per frame.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._tree import SHADER_LEVELS

__all__ = ["FRAGMENT", "LABEL_FRAGMENT", "UPSAMPLE", "VERTEX", "label_hash"]

# A triangle that covers the viewport; no vertex buffer (gl_VertexID).
VERTEX = """
#version 330 core
void main() {
    vec2 p = vec2(float((gl_VertexID & 1) << 2) - 1.0, float((gl_VertexID & 2) << 1) - 1.0);
    gl_Position = vec4(p, 0.0, 1.0);
}
"""

# A scaled draw's low-resolution image over the target (premultiplied, bilinear).
UPSAMPLE = """
#version 330 core
uniform sampler2D u_low;
uniform vec4 u_viewport;
out vec4 frag;
void main() {
    frag = texture(u_low, (gl_FragCoord.xy - u_viewport.xy) / u_viewport.zw);
}
"""

_HEAD = f"""
#version 330 core
#define MAXL {SHADER_LEVELS}
"""
_BODY = """
uniform mat4 u_inv_vp;          // inverse(projection * view), world xyz
uniform vec4 u_viewport;        // x, y, width, height (pixels) of the drawn region
uniform vec3 u_box_lo;          // the volume's extent (world xyz)
uniform vec3 u_box_hi;
uniform int u_n_planes;
uniform vec4 u_planes[6];       // keep n . p + d >= 0
uniform int u_top;              // coarsest level
uniform ivec3 u_top_grid;       // its bricks (x, y, z)
uniform vec3 u_corner[MAXL];    // grid corner per level
uniform vec3 u_brick[MAXL];     // world size of a full brick
uniform vec3 u_level_hi[MAXL];  // far end of each level
uniform vec3 u_inv_scale[MAXL]; // 1 / voxel size
uniform vec3 u_tex_off[MAXL];   // 1.5 - voxel0 / scale: world -> slot texel, before the brick
uniform vec3 u_chunk[MAXL];     // voxels per brick
uniform ivec3 u_split[MAXL];    // 1 where a level-L brick has 2 children along the axis
uniform float u_step[MAXL];     // ray step (µm) when sampling a brick of the level
uniform float u_ref_step;       // the transfer function's alpha is per this length
uniform float u_min_ray;        // shortest ray segment drawn (µm), 0: any
uniform float u_nudge;          // look a node up this far past t (float robustness)
uniform int u_max_nodes;        // most nodes one ray visits
uniform usampler2D u_nodes;
uniform int u_nodes_width;
#ifdef LABELS
uniform usampler3D u_atlas;     // label ids (R32UI), read with texelFetch: nearest voxel
uniform usampler2D u_special;   // (id, flags, rgb, 0) sorted by id; flags: 1 hidden, 2 selected, 4 rgb given
uniform int u_n_special;
uniform int u_special_width;
uniform float u_label_alpha;    // per u_ref_step, opacity corrected like the image's
uniform float u_select_alpha;
uniform int u_outline;          // 1: an object's outline voxels opaque, its interior at u_interior_alpha
uniform float u_interior_alpha;

// lowbias32 (Chris Wellons): a well-mixed 32-bit hash; the colour of an id is its bytes.
uint lowbias32(uint x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

vec4 label_colour(uint id) {
    uint h = lowbias32(id);
    vec3 rgb = 0.2 + 0.8 * vec3(float(h & 255u), float((h >> 8) & 255u),
                                 float((h >> 16) & 255u)) / 255.0;
    uint flags = 0u;
    int lo = 0;
    int hi = u_n_special - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uvec3 e = texelFetch(u_special, ivec2(mid % u_special_width, mid / u_special_width), 0).rgb;
        if (e.x == id) {
            flags = e.y;
            if ((flags & 4u) != 0u)
                rgb = vec3(float(e.z & 255u), float((e.z >> 8) & 255u), float((e.z >> 16) & 255u)) / 255.0;
            break;
        }
        if (e.x < id) lo = mid + 1; else hi = mid - 1;
    }
    if ((flags & 1u) != 0u) return vec4(0.0);
    if ((flags & 2u) != 0u) return vec4(mix(rgb, vec3(1.0), 0.5), u_select_alpha);
    return vec4(rgb, u_label_alpha);
}
#else
uniform sampler3D u_atlas;
uniform sampler2D u_ranges;     // (min, max) of each slot image, texture units, one texel per slot
uniform int u_skip;             // 1: MIP / MinIP / iso-surface skip bricks that cannot change the ray
#endif
uniform ivec3 u_slots;          // slots per atlas axis (x, y, z)
uniform float u_slot_edge;      // B + 2 texels
uniform vec3 u_inv_atlas;       // 1 / atlas texels
uniform sampler2D u_tf;       // (N, 1) RGBA table, linear, clamped
uniform vec2 u_window;          // lo, 1 / (hi - lo) in texture units
uniform int u_mode;             // 0 composite, 1 maximum, 2 minimum intensity, 3 iso-surface
uniform float u_iso;            // iso value in texture units (mode 3)
uniform vec4 u_light;           // ambient, diffuse, specular, specular power (mode 3)
uniform int u_has_depth;
uniform sampler2D u_depth;      // depth of opaque geometry, [0, 1], same projection; texel (0, 0) = the viewport's corner
uniform vec2 u_depth_scale;     // depth texels per drawn pixel (1 / render scale)

out vec4 frag;

uint node(uint i) {
    return texelFetch(u_nodes, ivec2(int(i) % u_nodes_width, int(i) / u_nodes_width), 0).r;
}

vec3 unproject(vec2 ndc, float z) {
    vec4 p = u_inv_vp * vec4(ndc, z, 1.0);
    return p.xyz / p.w;
}

// Descend to the leaf (or empty node) holding q: its word, level and world box.
uint descend(vec3 q, out int level, out vec3 lo, out vec3 hi) {
    int L = u_top;
    ivec3 ijk = clamp(ivec3(floor((q - u_corner[L]) / u_brick[L])), ivec3(0), u_top_grid - 1);
    lo = u_corner[L] + vec3(ijk) * u_brick[L];
    uint w = node(uint((ijk.z * u_top_grid.y + ijk.y) * u_top_grid.x + ijk.x));
    while ((w >> 30) == 1u && L > 0) {
        ivec3 c = ivec3(greaterThanEqual(q, lo + u_brick[L - 1])) * u_split[L];
        L -= 1;
        lo += vec3(c) * u_brick[L];
        w = node((w & 0x3FFFFFFFu) + uint(c.z * 4 + c.y * 2 + c.x));
    }
    hi = min(lo + u_brick[L], u_level_hi[L]);
    level = L;
    return w;
}

float exit_t(vec3 ro, vec3 inv, vec3 lo, vec3 hi) {
    vec3 a = (lo - ro) * inv;
    vec3 b = (hi - ro) * inv;
    vec3 m = max(a, b);
    return min(min(m.x, m.y), m.z);
}

void main() {
    vec2 ndc = (gl_FragCoord.xy - u_viewport.xy) / u_viewport.zw * 2.0 - 1.0;
    // Near plane and NDC z = 0: both finite for perspective (even with an infinite far
    // plane) and parallel projections.
    vec3 ro = unproject(ndc, -1.0);
    vec3 rd = normalize(unproject(ndc, 0.0) - ro);
    vec3 inv = 1.0 / rd;
    vec3 a = (u_box_lo - ro) * inv;
    vec3 b = (u_box_hi - ro) * inv;
    vec3 mn = min(a, b);
    vec3 mx = max(a, b);
    // VTK's GPU ray caster (vtkOpenGLGPUVolumeRayCastMapper, 9.x) is the reference:
    // the ray enters at t0 (box face, or a clipping plane behind it), its first sample
    // is one step *past* t0 (g_rayOrigin += g_dirStep), it samples while the point is
    // inside the box (t <= tb) and goes on up to one step past the end set by clipping
    // planes and opaque depth (ts), because its termination test runs after the advance.
    float t0 = max(max(max(mn.x, mn.y), mn.z), 0.0);
    float tb = min(min(mx.x, mx.y), mx.z);
    float ts = 3.0e38;
    for (int i = 0; i < u_n_planes; ++i) {
        float dn = dot(u_planes[i].xyz, rd);
        float dist = dot(u_planes[i].xyz, ro) + u_planes[i].w;
        if (abs(dn) < 1e-12) {
            if (dist < 0.0) ts = -1.0;
        } else if (dn > 0.0) {
            t0 = max(t0, -dist / dn);
        } else {
            ts = min(ts, -dist / dn);
        }
    }
    if (u_has_depth != 0) {
        float d = texelFetch(u_depth, ivec2((gl_FragCoord.xy - u_viewport.xy) * u_depth_scale), 0).r;
        if (d < 1.0) ts = min(ts, dot(unproject(ndc, 2.0 * d - 1.0) - ro, rd));
    }
    frag = vec4(0.0);
#ifdef STATS
    // Per ray: samples taken, leaves sampled, leaves skipped by their value range
    // (MIP / MinIP / iso-surface), empty leaves stepped over.
    vec4 counts = vec4(0.0);
#endif
    // A host may drop rays that cross less than u_min_ray of the volume (VTK's ray
    // caster discards a ray whose first sample, t0 + step, is outside the box).
    if (!(tb > t0 + u_min_ray) || !(ts > t0)) return;

    vec4 acc = vec4(0.0);
    // The voxel axis closest to the ray (label outlines look across it).
    vec3 ard = abs(rd);
    int vaxis = ard.x >= max(ard.y, ard.z) ? 0 : (ard.y >= ard.z ? 1 : 2);
    float vmax = -1e30;
    float vmin = 1e30;
    float vprev = 0.0;   // iso-surface: the previous sample's value, across bricks
    bool have_prev = false;
    // The lattice is t0 + k * step, k >= 1 (no sample on the entry face): the step of
    // the level sampled where the ray enters.
    float t;
    {
        int L;
        vec3 lo, hi;
        uint w = descend(ro + rd * (t0 + u_nudge), L, lo, hi);
        t = t0 + u_step[(w >> 30) == 2u ? int((w >> 24) & 63u) : L];
    }
    float t1 = min(tb, ts + u_step[u_top]);
    for (int it = 0; it < u_max_nodes && t < t1; ++it) {
        int L;
        vec3 lo, hi;
        uint w = descend(ro + rd * (t + u_nudge), L, lo, hi);
        float tl = max(exit_t(ro, inv, lo, hi), t + u_nudge);
        if ((w >> 30) != 2u) {
            float tx = min(tl, min(tb, ts + u_step[L]));
            // Empty: skip the box in whole steps, so the sample lattice goes on unchanged.
            float st = u_step[L];
            t += max(ceil((tx - t) / st), 1.0) * st;
#ifdef STATS
            counts.w += 1.0;
#endif
            continue;
        }
        int Ls = int((w >> 24) & 63u);
        int slot = int(w & 0xFFFFFFu);
        float st = u_step[Ls];
        float tend = min(tb, ts + st);
        if (!(t < tend)) break;
        float tx = min(tl, tend);
        // The sampled brick: the leaf's own or the ancestor of level Ls that holds it.
        vec3 bijk = floor((0.5 * (lo + hi) - u_corner[Ls]) / u_brick[Ls]);
        vec3 so = vec3(slot % u_slots.x, (slot / u_slots.x) % u_slots.y,
                       slot / (u_slots.x * u_slots.y)) * u_slot_edge;
        vec3 off = so + u_tex_off[Ls] - bijk * u_chunk[Ls];
        // Texel centres of the slot's first and last texel: filtering never leaves the slot.
        vec3 tlo = so + 0.5;
        vec3 thi = so + u_slot_edge - 0.5;
        float ex = st / u_ref_step;
#ifndef LABELS
        if (u_skip != 0 && u_mode != 0) {
            // Bricks that cannot change this ray (every sample lies in the slot's value
            // range, border included): for MIP a brick whose max is not above the ray's
            // running max, for MinIP one whose min is not below its running min, for an
            // iso-surface one whose range leaves out the iso value while the previous
            // sample lies on the brick's side (no crossing at its first sample either).
            vec2 r = texelFetch(u_ranges, ivec2(slot % u_nodes_width, slot / u_nodes_width), 0).rg;
            bool skip = u_mode == 1 ? r.y <= vmax
                : u_mode == 2 ? r.x >= vmin
                : (u_iso < r.x || u_iso > r.y) && (!have_prev || (vprev - u_iso) * (r.x - u_iso) > 0.0);
            if (skip) {
                if (u_mode == 3) {
                    vprev = r.x;  // any value on the brick's side of the iso value
                    have_prev = true;
                }
                t += max(ceil((tx - t) / st), 1.0) * st;
#ifdef STATS
                counts.z += 1.0;
#endif
                continue;
            }
        }
#endif
#ifdef STATS
        counts.y += 1.0;
#endif
#ifdef LABELS
        uint last_id = 0u;
        vec4 last_c = vec4(0.0);
        float last_al = 0.0;
        float last_in = 0.0;
#endif
        for (; t < tx; t += st) {
            vec3 p = ro + rd * t;
#ifdef STATS
            counts.x += 1.0;
#endif
#ifdef LABELS
            ivec3 c = ivec3(clamp(p * u_inv_scale[Ls] + off, tlo, thi));
            uint id = texelFetch(u_atlas, c, 0).r;
            if (id == 0u) continue;  // background
            if (id != last_id) {  // runs of one id are the rule: look it up once per run
                last_id = id;
                last_c = label_colour(id);
                last_al = 1.0 - pow(max(1.0 - last_c.a, 0.0), ex);
                last_in = 1.0 - pow(max(1.0 - u_interior_alpha, 0.0), ex);
            }
            float al = last_al;
            if (u_outline != 0 && last_c.a > 0.0) {
                // Outline: a voxel with another id beside it across the view (the two
                // voxel axes closest to the image plane), as a slice outline is drawn
                // in the image plane: opaque; other voxels of the object faint.
                bool edge = false;
                for (int k = 0; k < 4; ++k) {
                    int ax = (vaxis + 1 + k / 2) % 3;
                    ivec3 q = c;
                    q[ax] += (k % 2) * 2 - 1;
                    q = clamp(q, ivec3(tlo), ivec3(thi));
                    edge = edge || texelFetch(u_atlas, q, 0).r != id;
                }
                al = edge ? 1.0 : min(last_in, last_al);
            }
            acc.rgb += (1.0 - acc.a) * al * last_c.rgb;
            acc.a += (1.0 - acc.a) * al;
            if (acc.a > 0.99) break;
#else
            vec3 tc = clamp(p * u_inv_scale[Ls] + off, tlo, thi);
            float v = texture(u_atlas, tc * u_inv_atlas).r;
            if (u_mode == 3) {
                // A crossing of the iso value between the previous sample and this one
                // (either direction): the surface's colour at the iso value, lit by a
                // headlight (two-sided, as VTK's volume shading), composited "over".
                bool cross = have_prev && (vprev - u_iso) * (v - u_iso) <= 0.0 && vprev != v;
                vprev = v;
                have_prev = true;
                if (!cross) continue;
                vec3 g = vec3(
                    texture(u_atlas, clamp(tc + vec3(1, 0, 0), tlo, thi) * u_inv_atlas).r
                        - texture(u_atlas, clamp(tc - vec3(1, 0, 0), tlo, thi) * u_inv_atlas).r,
                    texture(u_atlas, clamp(tc + vec3(0, 1, 0), tlo, thi) * u_inv_atlas).r
                        - texture(u_atlas, clamp(tc - vec3(0, 1, 0), tlo, thi) * u_inv_atlas).r,
                    texture(u_atlas, clamp(tc + vec3(0, 0, 1), tlo, thi) * u_inv_atlas).r
                        - texture(u_atlas, clamp(tc - vec3(0, 0, 1), tlo, thi) * u_inv_atlas).r)
                    * u_inv_scale[Ls];
                vec4 c = texture(u_tf, vec2(clamp((u_iso - u_window.x) * u_window.y, 0.0, 1.0), 0.5));
                float ndl = length(g) > 0.0 ? abs(dot(normalize(g), rd)) : 1.0;
                float spec = pow(max(2.0 * ndl * ndl - 1.0, 0.0), u_light.w);
                vec3 lit = c.rgb * (u_light.x + u_light.y * ndl) + u_light.z * spec;
                acc.rgb += (1.0 - acc.a) * c.a * min(lit, vec3(1.0));
                acc.a += (1.0 - acc.a) * c.a;
                if (acc.a > 0.99) break;
            } else if (u_mode == 0) {
                vec4 c = texture(u_tf, vec2(clamp((v - u_window.x) * u_window.y, 0.0, 1.0), 0.5));
                float al = 1.0 - pow(max(1.0 - c.a, 0.0), ex);
                acc.rgb += (1.0 - acc.a) * al * c.rgb;
                acc.a += (1.0 - acc.a) * al;
                if (acc.a > 0.99) break;
            } else {
                vmax = max(vmax, v);
                vmin = min(vmin, v);
            }
#endif
        }
        if (acc.a > 0.99) break;
    }
    if (u_mode == 0 || u_mode == 3) {
        frag = acc;
    } else if (vmax >= vmin) {
        float v = u_mode == 1 ? vmax : vmin;
        vec4 c = texture(u_tf, vec2(clamp((v - u_window.x) * u_window.y, 0.0, 1.0), 0.5));
        frag = vec4(c.rgb * c.a, c.a);
    }
#ifdef STATS
    frag = counts;
#endif
}
"""

FRAGMENT = _HEAD + _BODY
LABEL_FRAGMENT = _HEAD + "#define LABELS\n" + _BODY


def fragment(labels: bool = False, stats: bool = False) -> str:
    """The fragment shader of an image (or label) volume; ``stats``: instead of colour,
    each pixel gets its ray's counts (samples, leaves sampled, leaves skipped by their
    value range, empty leaves stepped over) as RGBA."""
    defines = ("#define LABELS\n" if labels else "") + ("#define STATS\n" if stats else "")
    return _HEAD + defines + _BODY


def label_hash(ids: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Colours (N, 3) the label shader gives ``ids`` (N,): the same lowbias32 hash in NumPy.

    For legends, pickers and tests; ids are taken modulo 2**32 like the shader's.
    """
    x = (np.asarray(ids, dtype=np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    byte = np.uint32(255)
    rgb = np.stack([x & byte, (x >> np.uint32(8)) & byte, (x >> np.uint32(16)) & byte], -1)
    return (0.2 + 0.8 * rgb.astype(np.float32) / np.float32(255.0)).astype(np.float32)
