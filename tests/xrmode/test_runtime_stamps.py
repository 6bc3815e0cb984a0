"""The headset's 3D brush on headless Monado: a stamp shows in the first frame rendered
after the trigger was sampled, while its durable write runs on its own thread.

The app runs as ``vrscope xr --stream`` would (streamed label surfaces: the painted voxels
are drawn once the touched bricks are meshed again, frames later). ``VRSCOPE_XR_RECORD``
saves the eye images of the frame before the trigger and of the frames from it; the
trace names the first frame that saw the trigger. References: the object's own colour in
the same eye image (for paint), the pixels there the frame before (for erase), the
eye's pose and projection as the runtime reported them (projection done here with SciPy
rotations), and, for the voxels, a NumPy ball around the stamp's voxel in the label array
as written, compared with zarr-python's reading of the project's working copy.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.analysis.edits._labels_support import assert_pyramid, levels_of
from xrmode.testing import move

from .test_runtime import finish, start, world_to_stage

pytestmark = pytest.mark.xr_runtime

VOXEL_UM = 0.22  # the brush's 1.25 µm = 5.68 voxels: no voxel centre on its boundary
SHAPE = (32, 32, 64)
OBJ_R_UM = 2.0
OBJ_VOX = [(16, 16, 16), (16, 16, 48)]  # ids 1, 2
BRUSH_UM = 1.25  # the labels tool's default brush (1 µm), one thumbstick-up larger
REACH_M = 0.05  # the tools' tip is 5 cm ahead of the aim pose
#: The hand points along stage -z with the controller upside down (half a turn about its
#: pointing axis): the tip is 5 cm ahead of it, the controller's head below and behind the
#: stamp as the eyes see it, never in front of it.
UPSIDE_DOWN = (0.0, 0.0, 1.0, 0.0)
#: The head looks at the stamp from the other side (-z), 30 degrees down, 14 cm away.
HEAD_FROM_M = np.array([0.0, 0.07, -0.12])


def _labels() -> np.ndarray:
    zyx = np.indices(SHAPE).transpose(1, 2, 3, 0) * VOXEL_UM
    lab = np.zeros(SHAPE, np.uint16)
    for i, c in enumerate(OBJ_VOX, 1):
        d2 = ((zyx - np.asarray(c) * VOXEL_UM) ** 2).sum(-1)
        lab[d2 < OBJ_R_UM**2] = i
    return lab


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from analysis.io import write_labels, write_ngff

    lab = _labels()
    path = tmp_path_factory.mktemp("xr-stamps") / "sample.zarr"
    write_ngff(
        (lab > 0).astype(np.uint8) * 120, path, scale_um=(VOXEL_UM,) * 3, chunks=(16, 16, 16)
    )
    write_labels(path, "cells", lab, chunks=(16, 16, 16))
    return path


def _ball(c_vox: tuple[int, int, int]) -> np.ndarray:
    zyx = np.indices(SHAPE).transpose(1, 2, 3, 0)
    return (((zyx - np.asarray(c_vox)) * VOXEL_UM) ** 2).sum(-1) <= BRUSH_UM**2


def _stage_to_world(tr: dict, p: np.ndarray) -> np.ndarray:
    """Inverse of ``world_to_stage`` (rotation matrix from SciPy)."""
    from scipy.spatial.transform import Rotation

    r = Rotation.from_quat(tr["rotation_xyzw"]).as_matrix()
    xyz = r.T @ ((np.asarray(p) - np.asarray(tr["translation_m"])) / tr["scale_m_per_um"])
    return xyz[::-1]


def _looking_at(direction: np.ndarray) -> tuple[float, ...]:
    """(x, y, z, w) turning the view's -z onto ``direction`` with no roll (yaw, then
    pitch)."""
    from scipy.spatial.transform import Rotation

    d = direction / np.linalg.norm(direction)
    yaw = np.degrees(np.arctan2(-d[0], -d[2]))
    pitch = np.degrees(np.arcsin(d[1]))
    rot = Rotation.from_euler("YX", [yaw, pitch], degrees=True)
    assert np.allclose(rot.apply([0.0, 0.0, -1.0]), d, atol=1e-9)
    return tuple(float(x) for x in rot.as_quat())


def _eyes(folder: Path) -> tuple[list[np.ndarray], dict]:
    imgs = [np.asarray(Image.open(folder / f"{n}.png")).astype(float) for n in ("left", "right")]
    return imgs, json.loads((folder / "eyes.json").read_text())


def _project(meta: dict, eye: int, p_stage: np.ndarray) -> np.ndarray:
    """(column, row from the top) of stage points in eye ``eye``."""
    from scipy.spatial.transform import Rotation

    e = meta["eyes"][eye]
    w, h = e["size"]
    rot = Rotation.from_quat(e["orientation_xyzw"])
    cam = rot.inv().apply(np.atleast_2d(p_stage) - np.asarray(e["position_m"]))
    clip = np.c_[cam, np.ones(len(cam))] @ np.asarray(e["projection"]).T
    ndc = clip[:, :2] / clip[:, 3:4]
    return np.c_[(ndc[:, 0] + 1) / 2 * w - 0.5, (1 - ndc[:, 1]) / 2 * h - 0.5]


def _disk(img: np.ndarray, meta: dict, eye: int, centre: np.ndarray, r_m: float, ring: bool):
    """Pixels of ``img`` where a ball of radius ``r_m`` at stage ``centre`` projects (an
    ellipse: the eyes' pixels are not square): ``ring``: between 0.4 and 0.85 of its
    radius (the cursor at the tip is inside), else within 0.6 of it."""
    pts = np.array([centre, centre + [r_m, 0.0, 0.0], centre + [0.0, 0.0, r_m]])
    (c, r), (cx, _), (_, rz) = _project(meta, eye, pts)
    ax, az = abs(cx - c), abs(rz - r)
    assert min(ax, az) > 6, f"the ball projects {ax:.1f} x {az:.1f} px: too small to check"
    rows, cols = np.mgrid[: img.shape[0], : img.shape[1]]
    d = np.hypot((rows - r) / az, (cols - c) / ax)
    sel = ((d > 0.4) & (d < 0.85)) if ring else d < 0.6
    return img[sel][:, :3]


def _chroma(px: np.ndarray) -> np.ndarray:
    return px - px.mean(axis=-1, keepdims=True)


def _like(px: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Pixels whose chroma points the way ``colour``'s does (a lit surface changes its
    brightness, not its hue) with at least 0.35 of its strength (not faded out)."""
    a, b = _chroma(px), _chroma(colour[None])[0]
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b)
    cos = (a @ b) / (na * nb + 1e-9)
    return (cos > 0.9) & (na > 0.35 * nb)


def _session(monado, tmp_path, store, monkeypatch, mode: str, stamp_of, stream: str = "--stream"):
    """Paint (thumbstick right once) or erase (twice) one stamp at the voxel
    ``stamp_of(transform)``; return (the frame before the trigger, the first that saw it,
    a snapshot after the hand left), the stamp's voxel and stage point, the transform,
    the trace and the project folder."""
    rec, snap, proj = tmp_path / "rec", tmp_path / "snap", tmp_path / "p"
    monkeypatch.setenv("VRSCOPE_XR_RECORD", str(rec))
    app, rig, session = start(
        monado,
        tmp_path,
        [str(store), "--labels", "cells", "--project", str(proj), "--tool", "labels"]
        + [stream, "--no-adaptive-quality", "--snapshot", str(snap)],
    )
    try:
        tr = session["transform"]
        stamp_vox = stamp_of(tr)
        for _ in range(1 if mode == "paint" else 2):
            rig.hand("right", thumbstick=(1.0, 0.0))
            app.wait_frames(lambda e: True, 3)
            rig.hand("right", thumbstick=(0.0, 0.0))
            app.wait_frames(lambda e: True, 3)
        rig.hand("right", thumbstick=(0.0, 1.0))  # thumbstick up: brush radius x 1.25
        app.wait_frames(lambda e: True, 3)
        rig.hand("right", thumbstick=(0.0, 0.0))
        tip = world_to_stage(tr, np.asarray(stamp_vox) * VOXEL_UM)
        aim = tip + np.array([0.0, 0.0, REACH_M])
        rig.set(head_position=tuple(tip + HEAD_FROM_M), head_orientation=_looking_at(-HEAD_FROM_M))
        move(rig, app, "right", aim, orientation=UPSIDE_DOWN)
        if not any(e["event"] == "snapshot" for e in app.events):
            app.wait_for(lambda e: e["event"] == "snapshot", 120, "the first snapshot")
        # Let the streamed bricks of the new view land (and their meshes after them).
        app.wait_frames(
            lambda e: all(st["undrawn"] == 0 for st in (e["stream"] or {}).values()), 10, 120
        )
        rig.hand("right", trigger_click=True, trigger=1.0)
        hit = app.wait_frames(lambda e: "right.select" in e["buttons"], 1, 60)
        app.wait_frames(lambda e: True, 2)
        rig.hand("right", trigger_click=False, trigger=0.0)
        app.wait_frames(lambda e: "right.select" not in e["buttons"], 1, 60)
        # The hand leaves: what stays is the stamp, not the brush cursor.
        move(rig, app, "right", aim + [0.0, -0.1, 0.1], orientation=UPSIDE_DOWN)
        app.wait_count(lambda e: e["event"] == "edit", 1, 60, "the stroke journaled")
        app.wait_frames(lambda e: e.get("stamps") == 0, 1, 60)  # the surfaces draw it
        os.kill(app.proc.pid, signal.SIGUSR1)  # type: ignore[union-attr]
        app.wait_for(lambda e: e["event"] == "snapshot", 120, "the second snapshot")
        finish(app, rig)
    finally:
        app.stop()
        rig.close()
    i = int(hit["i"])
    frames = (rec / str(i - 1), rec / str(i), snap / "1")
    return frames, stamp_vox, tip, tr, app.events, proj


@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_a_painted_stamp_shows_in_the_frame_that_sampled_the_trigger(
    monado, store, tmp_path, monkeypatch, stream
):
    """Streamed label surfaces (re-meshed bricks land frames after the write) and
    whole-level ones (re-meshed in the frame that learns of the write)."""
    lab = _labels()
    (f_before, f_hit, after), stamp, tip, tr, events, proj = _session(
        monado, tmp_path, store, monkeypatch, "paint", lambda tr: (16, 16, 32), stream
    )  # background, between the two objects
    r_m = BRUSH_UM * tr["scale_m_per_um"]
    obj_stage = world_to_stage(tr, np.asarray(OBJ_VOX[0]) * VOXEL_UM)
    (b0, b1), meta_b = _eyes(f_before)
    (h0, h1), meta_h = _eyes(f_hit)
    (a0, a1), meta_a = _eyes(after)
    for eye, (before, hit, later) in enumerate(((b0, h0, a0), (b1, h1, a1))):
        # Object 1's colour, as this eye shows it (the brush paints id 1).
        colour = np.median(
            _disk(before, meta_b, eye, obj_stage, OBJ_R_UM * tr["scale_m_per_um"], False), axis=0
        )
        assert np.ptp(colour) > 30, f"eye {eye}: object 1 is not coloured ({colour})"
        was = _like(_disk(before, meta_b, eye, tip, r_m, True), colour)
        now = _like(_disk(hit, meta_h, eye, tip, r_m, True), colour)
        assert was.mean() < 0.2, f"eye {eye}: the stamp's place had the colour ({was.mean():.2f})"
        became = (now & ~was).mean()
        assert became > 0.5, f"eye {eye}: the first frame after the trigger: {became:.2f}"
        # After the hand left and the edit was written and meshed: still there.
        stays = _like(_disk(later, meta_a, eye, tip, r_m, False), colour).mean()
        assert stays > 0.6, f"eye {eye}: the stamp left with the hand ({stays:.2f})"
        # No flicker: every frame recorded from the trigger on (through the write, the
        # re-meshing of the bricks and the release) shows it.
        for k in sorted(int(q.name) for q in f_hit.parent.iterdir()):
            if k > int(f_hit.name):
                imgs, meta = _eyes(f_hit.parent / str(k))
                got = (_like(_disk(imgs[eye], meta, eye, tip, r_m, True), colour) & ~was).mean()
                assert got > 0.5, f"eye {eye}: frame {k} lost the stamp ({got:.2f})"
    levels = levels_of(proj / "labels" / "cells.zarr")
    np.testing.assert_array_equal(levels[0], np.where(_ball(stamp), 1, lab))
    assert_pyramid(levels)
    # One step: the stamp (one, the hand held still) and the stroke's group.
    assert [e["description"] for e in events if e["event"] == "edit"] == ["paint 1", "paint stroke"]


def _facing_surface(tr: dict) -> tuple[int, int, int]:
    """The voxel of object 2's surface on top (stage up: the head looks down on it)."""
    c = np.asarray(OBJ_VOX[1]) * VOXEL_UM
    d = _stage_to_world(tr, world_to_stage(tr, c) + [0.0, 1e-3, 0.0]) - c  # stage up
    p = c + OBJ_R_UM * d / np.linalg.norm(d)
    return tuple(int(v) for v in np.rint(p / VOXEL_UM))  # type: ignore[return-value]


def test_an_erase_stamp_clears_the_object_in_the_frame_that_sampled_the_trigger(
    monado, store, tmp_path, monkeypatch
):
    lab = _labels()
    (f_before, f_hit, _), stamp, tip, tr, events, proj = _session(
        monado, tmp_path, store, monkeypatch, "erase", _facing_surface
    )
    assert lab[stamp] == 2 or _ball(stamp)[lab == 2].any()
    r_m = BRUSH_UM * tr["scale_m_per_um"]
    obj_stage = world_to_stage(tr, np.asarray(OBJ_VOX[1]) * VOXEL_UM)
    (b0, b1), meta_b = _eyes(f_before)
    (h0, h1), meta_h = _eyes(f_hit)
    for eye, (before, hit) in enumerate(((b0, h0), (b1, h1))):
        colour = np.median(
            _disk(before, meta_b, eye, obj_stage, OBJ_R_UM * tr["scale_m_per_um"], False), axis=0
        )
        assert np.ptp(colour) > 30, f"eye {eye}: object 2 is not coloured ({colour})"
        was = _like(_disk(before, meta_b, eye, tip, r_m, True), colour)
        now = _like(_disk(hit, meta_h, eye, tip, r_m, True), colour)
        assert was.mean() > 0.3, f"eye {eye}: object 2 is not where the stamp goes"
        # Cleared: the object's colour has left the stamp's place.
        cleared = (was & ~now).sum() / was.sum()
        assert cleared > 0.6, f"eye {eye}: the first frame after the trigger: {cleared:.2f}"
    levels = levels_of(proj / "labels" / "cells.zarr")
    np.testing.assert_array_equal(levels[0], np.where(_ball(stamp) & (lab > 0), 0, lab))
    assert_pyramid(levels)
    # One step: the stamp (one, the hand held still) and the stroke's group.
    assert [e["description"] for e in events if e["event"] == "edit"] == ["erase", "erase stroke"]
