"""``VtkXrTarget`` renders into a framebuffer we own (the swapchain path, without a runtime).

Checked like vispy's ``compare_render``: the sample appears where the eye's
projection matrix puts it, shifted between eyes, and the overlay's laser line
shows in its colour. Both kinds of context the session can own are used: a
surfaceless EGL context and a GLX context in a hidden GLFW window (the Xlib
binding's; needs an X display, which ``scripts/test.sh`` provides with Xvfb).
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import BALL_CENTRE_UM

pytestmark = pytest.mark.render


def make_context(kind: str):
    from xrmode.session import EglContext, GlfwContext

    return EglContext() if kind == "egl" else GlfwContext()


@pytest.mark.parametrize("kind", ["egl", "glx"])
def test_eyes_render_the_ball_where_the_projection_puts_it(ball_store, kind):
    from analysis.io import open_volume
    from viewer.render import EyeView, VtkXrTarget, XrOverlay
    from viewer.scene import Image, Scene
    from xrmode._frame_loop import eye_view_arrays
    from xrmode._transform import StageTransform
    from xrmode.input import Pose
    from xrmode.session._session import EyeImage

    w, h = 160, 120
    with make_context(kind) as ctx:
        assert ctx.kind == kind
        gl = ctx.gl
        tex = gl.new_texture(w, h)
        fbo = gl.new_framebuffer()
        gl.attach_texture(fbo, tex)
        scene = Scene([Image(open_volume(str(ball_store)), name="ball")])
        tr = StageTransform(0.02, (1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
        centre = tr.world_to_stage(np.asarray(BALL_CENTRE_UM))
        target = VtkXrTarget(scene, ctx.make_current, ctx.is_current, (w, h), furniture=False)
        try:
            target.set_stage_to_world(tr.stage_to_world_matrix())
            ray_y = centre[1] + 0.12
            target.set_overlay(
                XrOverlay(
                    lines=np.array(
                        [[[centre[0] - 0.3, ray_y, centre[2]], [centre[0] + 0.3, ray_y, centre[2]]]]
                    ),
                    line_colors=np.array([[1.0, 0.0, 0.0]]),
                )
            )
            target.sync()
            fov = (-0.6, 0.6, 0.45, -0.45)
            cols = []
            for dx in (-0.032, 0.032):
                eye = EyeImage(0, Pose((centre[0] + dx, centre[1], centre[2] + 0.5)), fov, w, h)
                target.render_eye(EyeView(*eye_view_arrays(eye, tr)))
                img = gl.read_rgba(fbo, w, h)[..., :3].astype(int)
                ball = img.min(axis=-1) > 120
                assert ball.mean() > 0.02
                rows, cc = np.nonzero(ball)
                # Where the projection matrix puts the centre (NDC -> pixels, row 0 at the top).
                p = eye.projection(0.05, 50.0) @ np.r_[np.asarray(centre) - eye.pose.position, 1.0]
                ndc = p[:2] / p[3]
                want_col = (ndc[0] + 1) / 2 * w
                assert cc.mean() == pytest.approx(want_col, abs=2.0)
                assert rows.mean() == pytest.approx(h / 2, abs=2.0)
                red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)
                assert red.sum() > 20, "the overlay line is missing"
                cols.append(cc.mean())
            assert cols[0] - cols[1] > 5  # left eye sees it further right
        finally:
            target.close()
            gl.delete_framebuffer(fbo)
            gl.delete_texture(tex)
