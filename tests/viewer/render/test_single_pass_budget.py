"""The frame budget of the single-pass volumes: fewer ray steps and fewer rays while the
view moves over budget, progressive refinement to the full-quality picture once it is
still; the two eyes of a stereo frame are no move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.viewer.raycast._marcher import psnr


@pytest.fixture(scope="module")
def fib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from analysis.io import write_fibsem_sample
    from analysis.synthetic import fibsem_cell

    out = tmp_path_factory.mktemp("fib") / "cell.zarr"
    write_fibsem_sample(fibsem_cell(size=96, seed=3), out)
    return out


def _scene(store: Path) -> Any:
    from viewer.render import build_store_scene, use_coarse_contrast
    from viewer.scene import Image

    scene = build_store_scene(str(store), azimuth=30.0, elevation=20.0)
    for lay in [lay for lay in scene.layers if not isinstance(lay, Image)]:
        scene.layers.remove(lay)
    use_coarse_contrast(scene)
    return scene


def _render(
    store: Path, budget_ms: float | None
) -> tuple[np.ndarray, list[float], list[Any], list[float]]:
    """Settle, orbit 6 frames, then draw with the camera still until the host rests.
    Returns the last picture, the render scale of every drawn frame, the host
    ``behind`` flags after each still frame and the step factor of every drawn frame."""
    from viewer.render import SceneRenderer, StreamingController

    scene = _scene(store)
    scales: list[float] = []
    steps: list[float] = []
    rest: list[Any] = []
    with (
        SceneRenderer(scene, size=(160, 120), show_scale_bar=False, show_axes=False) as r,
        StreamingController(r, brick_size=16, frame_budget_ms=budget_ms) as ctl,
    ):
        ctl.settle(60)
        host = ctl.host
        assert host is not None
        for _ in range(6):
            scene.camera.orbit(0.5, 0.0)
            ctl.render()
            scales.append(host.render_scale)
            steps.append(host.step_factor)
        for _ in range(4):  # the camera back where the reference is
            scene.camera.orbit(-0.75, 0.0)
            ctl.render()
            scales.append(host.render_scale)
            steps.append(host.step_factor)
        for _ in range(30):
            ctl.render()
            scales.append(host.render_scale)
            steps.append(host.step_factor)
            rest.append(host.behind)
            if not host.behind:
                break
        img = r.screenshot()
    return img.astype(np.float64) / 255.0, scales, rest, steps


def test_still_view_refines_to_the_full_quality_picture(fib: Path) -> None:
    # A budget no frame can meet (llvmpipe takes milliseconds): every moving frame
    # overruns it.
    img, scales, rest, steps = _render(fib, budget_ms=1e-3)
    ref, ref_scales, _, ref_steps = _render(fib, budget_ms=None)
    assert set(ref_scales) == {1.0} and set(ref_steps) == {1.0}
    # While the view moved, fewer rays and fewer steps: the scale fell to the floor,
    # the sample distance (the quality's one voxel) rose to its ceiling.
    moving = scales[:10]
    assert min(moving) == pytest.approx(0.25) and moving[-1] < 1.0
    assert max(steps[:10]) == pytest.approx(4.0) and steps[9] > 1.0
    assert steps[-1] == 1.0
    # Still: the scale climbed back frame by frame (progressive refinement), the host
    # asking for redraws until the picture was the full-quality one.
    still = scales[10:]
    assert still[-1] == 1.0 and len(still) >= 3
    assert all(a <= b for a, b in zip(still, still[1:], strict=False))
    assert rest[-1] is False and all(rest[:-1])
    assert ref.std() > 0.02
    assert psnr(ref, img) >= 40.0


def test_the_two_eyes_of_a_stereo_frame_are_no_move(fib: Path) -> None:
    """Two views drawn in turn as eyes 0 and 1 of each frame, the head still: the budget
    (which no frame meets) leaves full quality; drawn as one eye they are a move."""
    from viewer.render import SceneRenderer, StreamingController

    scene = _scene(fib)
    got: dict[str, list[tuple[float, float]]] = {}
    for name, eyes in (("stereo", (0, 1)), ("one eye", (0, 0))):
        with (
            SceneRenderer(scene, size=(96, 72), show_scale_bar=False, show_axes=False) as r,
            StreamingController(r, brick_size=16, frame_budget_ms=1e-3) as ctl,
        ):
            ctl.settle(60)
            host = ctl.host
            assert host is not None
            drawn = got[name] = []
            base = np.asarray(scene.camera.position)
            # The eyes 6 % of the viewing distance apart, along x.
            sep = np.array([0.0, 0.0, 0.03 * scene.camera.distance])
            for _ in range(8):
                for eye, pos in zip(eyes, (base - sep, base + sep), strict=True):
                    scene.camera.position = tuple(float(v) for v in pos)
                    host.eye = eye
                    r.render()
                    drawn.append((host.step_factor, host.render_scale))
            assert host.budget is not None and host.budget.frames > 0
            moving = host.budget.moving
        if name == "stereo":
            assert not moving
    # Stereo: the first frame is a move (the settled view was the left eye's centre),
    # then the head is still: back to full quality, and it stays there.
    assert got["stereo"][-6:] == [(1.0, 1.0)] * 6
    assert got["one eye"][-1][0] > 1.0 and got["one eye"][-1][1] < 1.0
