"""An OpenGL context in a hidden GLFW window, with the native handles OpenXR needs.

The platforms' usual OpenXR OpenGL bindings name a context by its window
system's handles: ``XrGraphicsBindingOpenGLXlibKHR`` (X display, visual,
GLXFBConfig, GLX drawable, GLX context) on Linux desktops and
``XrGraphicsBindingOpenGLWin32KHR`` (device context, WGL context) on Windows.
GLFW makes such a context portably (a 16x16 window that is never shown, as
pyopenxr's ``xr/utils/gl/glfw_util`` does) and exposes these handles through
its native-access functions; the GLXFBConfig and visual are not exposed, so
they are asked from GLX for the context GLFW made (``glXQueryContext``).

The EGL path (:class:`xrmode.session.EglContext`) needs no window system and
stays the choice where the runtime offers ``XR_MNDX_egl_enable``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import Any

from ._egl import Gl, GlError

__all__ = ["GlfwContext"]

log = logging.getLogger(__name__)

GLX_FBCONFIG_ID = 0x8013
GLX_SCREEN = 0x800C
GLX_VISUAL_ID = 0x800B


class GlfwContext:
    """A hidden GLFW window's OpenGL core context (GLX on Linux/X11, WGL on Windows).

    Same interface as :class:`xrmode.session.EglContext` (``kind``, ``gl``,
    ``make_current``, ``is_current``, ``release``, ``destroy``).

    Parameters
    ----------
    major, minor : int, default: 4, 5
        Core-profile version asked first; 3.3 is tried when it is refused.

    Attributes
    ----------
    kind : {"glx", "wgl"}
    display, fbconfig, drawable, context : int
        GLX: ``Display*``, ``GLXFBConfig``, the GLX window (XID) and ``GLXContext``.
    visual_id : int
        GLX: the X visual of the framebuffer configuration.
    hdc, hglrc : int
        WGL: the window's device context and the WGL context.

    Raises
    ------
    GlError
        No X display (``DISPLAY`` unset), GLFW failed, or no core context.
    """

    def __init__(self, major: int = 4, minor: int = 5) -> None:
        if sys.platform.startswith("linux"):
            if not os.environ.get("DISPLAY"):
                raise GlError(
                    "the GLX binding needs an X display and DISPLAY is not set "
                    "(on a headless machine use --graphics egl)"
                )
            self.kind = "glx"
            _refuse_beside_current_egl()
        elif sys.platform == "win32":
            self.kind = "wgl"
        else:
            raise GlError(f"no GLX or WGL OpenGL binding on {sys.platform}")
        import glfw

        self._glfw: Any = glfw
        # GLFW reports errors through a callback; pyglfw turns them into warnings by
        # default. Raise instead: a failure here must become one clear error.
        glfw.ERROR_REPORTING = "raise"
        try:
            if self.kind == "glx" and hasattr(glfw, "PLATFORM"):
                # GLFW 3.4 may pick Wayland; the Xlib binding needs an X11 (GLX) context.
                glfw.init_hint(glfw.PLATFORM, glfw.PLATFORM_X11)
            if not glfw.init():
                raise GlError("GLFW could not initialise")
            self._window = self._make_window(major, minor)
        except glfw.GLFWError as exc:
            glfw.terminate()
            raise GlError(f"GLFW: {exc}") from exc
        self.display = self.fbconfig = self.drawable = self.context = self.visual_id = 0
        self.hdc = self.hglrc = 0
        self._glx: ctypes.CDLL | None = None
        try:
            self.make_current()
            glfw.swap_interval(0)  # never let a desktop vsync pace the XR frame loop
            self.gl = Gl(lambda name: int(glfw.get_proc_address(name) or 0))
            if self.kind == "glx":
                self._glx_handles()
            else:
                self._wgl_handles()
        except BaseException:
            self.destroy()
            raise
        log.info("%s context: %s", self.kind.upper(), self.gl.renderer())

    def _make_window(self, major: int, minor: int) -> Any:
        glfw = self._glfw
        for ver in ((major, minor), (3, 3)):
            glfw.default_window_hints()
            glfw.window_hint(glfw.VISIBLE, glfw.FALSE)
            glfw.window_hint(glfw.DOUBLEBUFFER, glfw.FALSE)
            glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, ver[0])
            glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, ver[1])
            glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
            try:
                win = glfw.create_window(16, 16, "vrscope xr", None, None)
            except glfw.GLFWError as exc:
                log.info("no OpenGL %d.%d core context: %s", *ver, exc)
                continue
            if win:
                return win
        raise GlError("GLFW made no OpenGL 3.3+ core context")

    def _glx_handles(self) -> None:
        glfw = self._glfw
        self.display = int(glfw.get_x11_display() or 0)
        self.context = int(glfw.get_glx_context(self._window) or 0)
        self.drawable = int(glfw.get_glx_window(self._window) or 0)
        if not (self.display and self.context and self.drawable):
            raise GlError("GLFW returned no GLX display, context or drawable")
        glx = _glx_library()
        vp, ip = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)
        glx.glXQueryContext.argtypes = [vp, vp, ctypes.c_int, ip]
        glx.glXChooseFBConfig.restype = ctypes.POINTER(vp)
        glx.glXChooseFBConfig.argtypes = [vp, ctypes.c_int, ip, ip]
        glx.glXGetFBConfigAttrib.argtypes = [vp, vp, ctypes.c_int, ip]
        glx.glXGetCurrentContext.restype = vp
        self._glx = glx
        fb_id, screen = ctypes.c_int(), ctypes.c_int()
        glx.glXQueryContext(self.display, self.context, GLX_FBCONFIG_ID, ctypes.byref(fb_id))
        glx.glXQueryContext(self.display, self.context, GLX_SCREEN, ctypes.byref(screen))
        # With GLX_FBCONFIG_ID in the list GLX ignores every other attribute.
        attrs = (ctypes.c_int * 3)(GLX_FBCONFIG_ID, fb_id.value, 0)
        n = ctypes.c_int()
        configs = glx.glXChooseFBConfig(self.display, screen.value, attrs, ctypes.byref(n))
        if not configs or n.value < 1:
            raise GlError(f"GLX has no framebuffer configuration {fb_id.value} for the context")
        self.fbconfig = int(configs[0] or 0)
        visual = ctypes.c_int()
        glx.glXGetFBConfigAttrib(self.display, self.fbconfig, GLX_VISUAL_ID, ctypes.byref(visual))
        self.visual_id = int(visual.value)
        # The array is Xlib memory; the GLXFBConfig it points to is owned by GLX.
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        x11.XFree.argtypes = [vp]
        x11.XFree(ctypes.cast(configs, vp))

    def _wgl_handles(self) -> None:  # pragma: no cover - Windows only, untested here
        glfw = self._glfw
        hwnd = int(glfw.get_win32_window(self._window) or 0)
        user32 = ctypes.WinDLL("user32")  # type: ignore[attr-defined,unused-ignore]
        user32.GetDC.restype = ctypes.c_void_p
        user32.GetDC.argtypes = [ctypes.c_void_p]
        # GLFW's windows are CS_OWNDC: this is the device context its pixel format is on.
        self.hdc = int(user32.GetDC(hwnd) or 0)
        self.hglrc = int(glfw.get_wgl_context(self._window) or 0)
        self._hwnd = hwnd
        if not (self.hdc and self.hglrc):
            raise GlError("GLFW returned no Win32 device context or WGL context")

    # -- the context interface ------------------------------------------------------
    def make_current(self) -> None:
        if self._window is None:
            raise GlError("the GLFW context was destroyed")
        self._glfw.make_context_current(self._window)

    def is_current(self) -> bool:
        if self._glx is not None:
            # Ask GLX, not GLFW's own record: the runtime's OpenGL client may switch
            # contexts behind GLFW's back.
            return int(self._glx.glXGetCurrentContext() or 0) == self.context
        cur = self._glfw.get_current_context()
        if not cur or self._window is None:
            return False
        a = ctypes.cast(cur, ctypes.c_void_p).value
        return bool(a == ctypes.cast(self._window, ctypes.c_void_p).value)

    def release(self) -> None:
        self._glfw.make_context_current(None)

    def destroy(self) -> None:
        """Release the context, destroy the hidden window and terminate GLFW."""
        if self._window is None:
            return
        glfw = self._glfw
        self.release()
        if self.kind == "wgl" and self.hdc:  # pragma: no cover - Windows only
            user32 = ctypes.WinDLL("user32")  # type: ignore[attr-defined,unused-ignore]
            user32.ReleaseDC(ctypes.c_void_p(self._hwnd), ctypes.c_void_p(self.hdc))
        glfw.destroy_window(self._window)
        self._window = None
        glfw.terminate()

    def __enter__(self) -> GlfwContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def _refuse_beside_current_egl() -> None:
    """One clear error where an EGL context is current on this thread.

    libglvnd refuses ``glXMakeCurrent`` on a thread with a current EGL context
    (X error BadAccess), and Xlib's default handler then ends the process with
    no Python traceback: ask EGL first instead.
    """
    try:
        egl = ctypes.CDLL("libEGL.so.1")
    except OSError:
        return  # no EGL on this machine: nothing can be current
    egl.eglGetCurrentContext.restype = ctypes.c_void_p
    if egl.eglGetCurrentContext():
        raise GlError(
            "an EGL context is current on this thread and GLX cannot be made current "
            "beside it (use --graphics egl, or release the EGL context first)"
        )


def _glx_library() -> ctypes.CDLL:
    # libglvnd's GLX dispatch library (GLFW 3.4 loads the same one); libGL.so.1 also
    # exports the GLX entry points.
    for name in ("libGLX.so.0", "libGL.so.1"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    found = ctypes.util.find_library("GL")
    if not found:
        raise GlError("libGLX / libGL not found (install libglx0 / libgl1)")
    return ctypes.CDLL(found)
