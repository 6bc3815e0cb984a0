"""The frame budget of the single-pass volumes: fewer rays while the view moves over
budget, progressive refinement to the full-quality picture once it is still."""

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


def _render(store: Path, budget_ms: float | None) -> tuple[np.ndarray, list[float], list[Any]]:
    """Settle, orbit 6 frames, then draw with the camera still until the host rests.
    Returns the last picture, the render scale of every drawn frame and the host
    ``behind`` flags after each still frame."""
    from viewer.render import SceneRenderer, StreamingController

    scene = _scene(store)
    scales: list[float] = []
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
        for _ in range(4):  # the camera back where the reference is
            scene.camera.orbit(-0.75, 0.0)
            ctl.render()
            scales.append(host.render_scale)
        for _ in range(30):
            ctl.render()
            scales.append(host.render_scale)
            rest.append(host.behind)
            if not host.behind:
                break
        img = r.screenshot()
        scales.append(host.render_scale)
    return img.astype(np.float64) / 255.0, scales, rest


def test_still_view_refines_to_the_full_quality_picture(fib: Path) -> None:
    # A budget no frame can meet (llvmpipe takes milliseconds): every moving frame
    # overruns it.
    img, scales, rest = _render(fib, budget_ms=1e-3)
    ref, ref_scales, _ = _render(fib, budget_ms=None)
    assert set(ref_scales) == {1.0}
    # While the view moved, fewer rays: the scale fell to the floor.
    moving = scales[:10]
    assert min(moving) == pytest.approx(0.25) and moving[-1] < 1.0
    # Still: the scale climbed back frame by frame (progressive refinement), the host
    # asking for redraws until the picture was the full-quality one.
    still = scales[10:]
    assert still[-1] == 1.0 and len(still) >= 3
    assert all(a <= b for a, b in zip(still, still[1:], strict=False))
    assert rest[-1] is False and all(rest[:-1])
    assert ref.std() > 0.02
    assert psnr(ref, img) >= 40.0
