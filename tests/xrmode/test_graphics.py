"""Choosing the OpenGL binding, and the GLX context the Xlib binding names.

The GLX handles are checked against GLX itself through PyOpenGL (an
independent binding of the same library): the current context, drawable and
display, and the visual of the framebuffer configuration.
"""

from __future__ import annotations

import pytest

from xrmode.session._session import XrRuntimeError, choose_graphics

GL = "XR_KHR_opengl_enable"
EGL = "XR_MNDX_egl_enable"


@pytest.mark.parametrize(
    ("requested", "available", "platform", "want"),
    [
        ("auto", {GL, EGL}, "linux", "egl"),  # Monado: EGL needs no window system
        ("auto", {GL}, "linux", "glx"),  # SteamVR on Linux
        ("auto", {GL}, "win32", "wgl"),
        ("auto", {GL, EGL}, "win32", "egl"),
        ("glx", {GL, EGL}, "linux", "glx"),  # forced
        ("egl", {GL, EGL}, "linux", "egl"),
        ("wgl", {GL}, "win32", "wgl"),
    ],
)
def test_choose_graphics(requested, available, platform, want):
    assert choose_graphics(requested, available, platform) == want


@pytest.mark.parametrize(
    ("requested", "available", "platform", "needle"),
    [
        ("egl", {GL}, "linux", "--graphics glx"),
        ("egl", {GL}, "win32", "--graphics wgl"),
        ("glx", {GL}, "win32", "GLX binding is not available on win32"),
        ("wgl", {GL, EGL}, "linux", "WGL binding is not available on linux"),
        ("auto", {GL}, "darwin", "no EGL binding"),
        ("auto", {EGL}, "linux", "no OpenGL graphics"),
        ("vulkan", {GL}, "linux", "unknown graphics binding"),
    ],
)
def test_choose_graphics_refuses_with_the_reason(requested, available, platform, needle):
    with pytest.raises(XrRuntimeError, match=needle):
        choose_graphics(requested, available, platform)


def test_glx_context_without_display_is_one_clear_error(monkeypatch):
    from xrmode.session import GlError, GlfwContext

    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(GlError, match="DISPLAY is not set.*--graphics egl"):
        GlfwContext()


@pytest.mark.render
def test_glx_context_handles_are_what_glx_reports():
    import ctypes

    import xr  # noqa: F401  (pyopenxr puts PyOpenGL on its GLX platform, as in the app)
    from OpenGL import GLX

    from xrmode.session import GlfwContext

    with GlfwContext() as ctx:
        assert ctx.kind == "glx"
        assert ctx.is_current()

        def addr(p: object) -> int:
            return int(ctypes.cast(p, ctypes.c_void_p).value or 0)

        assert addr(GLX.glXGetCurrentContext()) == ctx.context
        assert int(GLX.glXGetCurrentDrawable()) == ctx.drawable
        assert addr(GLX.glXGetCurrentDisplay()) == ctx.display
        dpy = GLX.glXGetCurrentDisplay()
        fb = ctypes.cast(ctypes.c_void_p(ctx.fbconfig), GLX.GLXFBConfig)
        vi = GLX.glXGetVisualFromFBConfig(dpy, fb)
        assert vi and vi.contents.visualid == ctx.visual_id
        assert ctx.gl.renderer() not in ("", "?")  # GL calls reach a live context
        ctx.release()
        assert not ctx.is_current()
        ctx.make_current()
        assert ctx.is_current()


@pytest.mark.render
def test_glx_context_beside_a_current_egl_context_is_one_clear_error():
    # libglvnd refuses glXMakeCurrent on a thread with a current EGL context, and
    # Xlib's default error handler then ends the process: GlfwContext must refuse
    # first, with the reason; once the EGL context is released GLX works.
    from viewer.raycast import release_standalone_context, standalone_context
    from xrmode.session import GlError, GlfwContext

    egl_ctx = standalone_context()
    try:
        with pytest.raises(GlError, match="EGL context is current.*--graphics egl"):
            GlfwContext()
    finally:
        release_standalone_context(egl_ctx)
    with GlfwContext() as ctx:
        assert ctx.is_current()
