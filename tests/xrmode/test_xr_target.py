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


def test_avatar_spheres_and_cones_render_where_and_how_big_they_are():
    """Sized spheres and oriented cones (other participants' heads and hands) in stage
    metres: centroid and area of the sphere, base and apex of the cone, checked against
    the eye's projection matrix."""
    from viewer.render import EyeView, VtkXrTarget, XrOverlay
    from viewer.scene import Scene
    from xrmode._frame_loop import eye_view_arrays
    from xrmode._transform import StageTransform
    from xrmode.input import Pose
    from xrmode.session import EglContext
    from xrmode.session._session import EyeImage

    w, h = 200, 150
    tr = StageTransform(0.01, (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    sphere_c, sphere_r = np.array([-0.15, 0.05, 0.0]), 0.05
    base, apex, cone_r = np.array([0.05, -0.08, 0.0]), np.array([0.25, -0.08, 0.0]), 0.04
    eye = EyeImage(0, Pose((0.0, 0.0, 0.8)), (-0.5, 0.5, 0.4, -0.4), w, h)
    proj = eye.projection(0.05, 50.0)

    def to_px(p):
        c = proj @ np.r_[np.asarray(p) - eye.pose.position, 1.0]
        ndc = c[:2] / c[3]
        return (ndc[0] + 1) / 2 * w, (1 - ndc[1]) / 2 * h  # column, row (row 0 at the top)

    with EglContext() as ctx:
        gl = ctx.gl
        tex = gl.new_texture(w, h)
        fbo = gl.new_framebuffer()
        gl.attach_texture(fbo, tex)
        target = VtkXrTarget(Scene([]), ctx.make_current, ctx.is_current, (w, h), furniture=False)
        try:
            target.set_stage_to_world(tr.stage_to_world_matrix())
            target.set_overlay(
                XrOverlay(
                    spheres=sphere_c[None],
                    sphere_radii=np.array([sphere_r]),
                    sphere_colors=np.array([[0.0, 1.0, 0.0]]),
                    cones=np.array([[base, apex]]),
                    cone_radii=np.array([cone_r]),
                    cone_colors=np.array([[0.0, 0.0, 1.0]]),
                )
            )
            target.sync()
            target.render_eye(EyeView(*eye_view_arrays(eye, tr)))
            img = gl.read_rgba(fbo, w, h)[..., :3].astype(int)
        finally:
            target.close()
            gl.delete_framebuffer(fbo)
            gl.delete_texture(tex)
    green = (img[..., 1] > 2 * img[..., 0] + 30) & (img[..., 1] > 2 * img[..., 2] + 30)
    blue = (img[..., 2] > 2 * img[..., 0] + 30) & (img[..., 2] > 2 * img[..., 1] + 30)
    rows, cols = np.nonzero(green)
    col, row = to_px(sphere_c)
    assert cols.mean() == pytest.approx(col, abs=1.5)
    assert rows.mean() == pytest.approx(row, abs=1.5)
    # Apparent radius of a sphere at distance d: f * r / sqrt(d^2 - r^2) pixels.
    f_px = w / (np.tan(0.5) - np.tan(-0.5))
    d = np.linalg.norm(sphere_c - eye.pose.position)
    r_px = f_px * sphere_r / np.sqrt(d**2 - sphere_r**2)
    assert green.sum() == pytest.approx(np.pi * r_px**2, rel=0.1)
    rows, cols = np.nonzero(blue)
    (c0, r0), (c1, _) = to_px(base), to_px(apex)
    assert cols.min() == pytest.approx(c0, abs=2.0)
    assert rows.mean() == pytest.approx(r0, abs=2.0)
    # The silhouette narrows linearly from 2 * base radius to the apex; the last
    # pixels before the apex are thinner than a pixel, so the apex is where the
    # fitted width reaches zero.
    cs = np.arange(int(c0) + 3, int(c1) - 10)
    slope, icpt = np.polyfit(cs, blue[:, cs].sum(axis=0), 1)
    assert -icpt / slope == pytest.approx(c1, abs=2.0)
    base_px = 2 * f_px * cone_r / np.linalg.norm(base - eye.pose.position)
    assert slope * c0 + icpt == pytest.approx(base_px, rel=0.1)
