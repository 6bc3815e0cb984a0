"""A surfaceless EGL context and the few GL calls the swapchain glue needs (ctypes).

Why ctypes and not PyOpenGL: pyopenxr's Linux module forces PyOpenGL onto its
GLX platform at import time, which breaks PyOpenGL's EGL entry points in a
process without X. Creating one context and binding framebuffers takes a dozen
functions, all fetched with ``eglGetProcAddress`` (EGL 1.5 returns core GL
functions too), so the same code works with the host's and the Monado sysroot's
libEGL.

The recipe (measured on llvmpipe, ``../shared/RENDERING.md``):
``eglGetPlatformDisplayEXT(EGL_PLATFORM_SURFACELESS_MESA)``, desktop OpenGL
API, a 4.5 core context, made current with no surface; VTK then renders into
framebuffer objects in this context.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["EglContext", "Gl", "GlError", "GraphicsContext"]

log = logging.getLogger(__name__)

EGL_NONE = 0x3038
EGL_RED_SIZE = 0x3024
EGL_GREEN_SIZE = 0x3023
EGL_BLUE_SIZE = 0x3022
EGL_ALPHA_SIZE = 0x3021
EGL_DEPTH_SIZE = 0x3025
EGL_RENDERABLE_TYPE = 0x3040
EGL_SURFACE_TYPE = 0x3033
EGL_OPENGL_BIT = 0x0008
EGL_PBUFFER_BIT = 0x0001
EGL_OPENGL_API = 0x30A2
EGL_CONTEXT_MAJOR_VERSION = 0x3098
EGL_CONTEXT_MINOR_VERSION = 0x30FB
EGL_CONTEXT_OPENGL_PROFILE_MASK = 0x30FD
EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT = 0x0001
EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
EGL_DEFAULT_DISPLAY = 0

GL_FRAMEBUFFER = 0x8D40
GL_READ_FRAMEBUFFER = 0x8CA8
GL_DRAW_FRAMEBUFFER = 0x8CA9
GL_COLOR_ATTACHMENT0 = 0x8CE0
GL_TEXTURE_2D = 0x0DE1
GL_FRAMEBUFFER_COMPLETE = 0x8CD5
GL_RGBA = 0x1908
GL_UNSIGNED_BYTE = 0x1401
GL_PACK_ALIGNMENT = 0x0D05
GL_FRAMEBUFFER_SRGB = 0x8DB9
GL_RENDERER = 0x1F01
GL_VERSION = 0x1F02
GL_SRGB8_ALPHA8 = 0x8C43
GL_RGBA8 = 0x8058
GL_PIXEL_PACK_BUFFER = 0x88EB


class GlError(RuntimeError):
    """EGL or GL failed (no display, no context, incomplete framebuffer)."""


def _lib(name: str, soname: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(soname)
    except OSError:
        found = ctypes.util.find_library(name)
        if not found:
            raise GlError(f"lib{name} not found (install libegl1 / Mesa)") from None
        return ctypes.CDLL(found)


class GraphicsContext(Protocol):
    """What the session and the renderer need of an OpenGL context (EGL, GLX, WGL)."""

    kind: str
    gl: Gl

    def make_current(self) -> None: ...

    def is_current(self) -> bool: ...

    def release(self) -> None: ...

    def destroy(self) -> None: ...


class EglContext:
    """A surfaceless EGL display + OpenGL 4.5 core context.

    The graphics contexts (this one, :class:`xrmode.session.GlfwContext`) share
    one interface: ``kind``, ``gl``, ``make_current()``, ``is_current()``,
    ``release()``, ``destroy()``.

    Attributes
    ----------
    display, config, context : int
        The raw EGL handles (for ``XrGraphicsBindingEGLMNDX``).
    get_proc_address : int
        Address of ``eglGetProcAddress`` (the binding's loader function).
    """

    def __init__(self, major: int = 4, minor: int = 5) -> None:
        egl = _lib("EGL", "libEGL.so.1")
        self._egl = egl
        vp = ctypes.c_void_p
        egl.eglGetProcAddress.restype = vp
        egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
        egl.eglGetDisplay.restype = vp
        egl.eglGetDisplay.argtypes = [vp]
        egl.eglInitialize.argtypes = [
            vp,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_int),
        ]
        egl.eglChooseConfig.argtypes = [
            vp,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(vp),
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
        ]
        egl.eglBindAPI.argtypes = [ctypes.c_uint]
        egl.eglCreateContext.restype = vp
        egl.eglCreateContext.argtypes = [vp, vp, vp, ctypes.POINTER(ctypes.c_int)]
        egl.eglMakeCurrent.argtypes = [vp, vp, vp, vp]
        egl.eglGetCurrentContext.restype = vp
        egl.eglDestroyContext.argtypes = [vp, vp]
        egl.eglTerminate.argtypes = [vp]
        egl.eglGetError.restype = ctypes.c_int

        get_platform = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
        display = None
        if get_platform:
            fn = ctypes.CFUNCTYPE(vp, ctypes.c_uint, vp, ctypes.POINTER(ctypes.c_int))(get_platform)
            display = fn(EGL_PLATFORM_SURFACELESS_MESA, None, None)
        if not display:
            display = egl.eglGetDisplay(EGL_DEFAULT_DISPLAY)
        if not display:
            raise GlError("no EGL display (surfaceless Mesa or default)")
        maj, mnr = ctypes.c_int(), ctypes.c_int()
        if not egl.eglInitialize(display, ctypes.byref(maj), ctypes.byref(mnr)):
            raise GlError(f"eglInitialize failed (0x{egl.eglGetError():x})")
        attrs = [EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_ALPHA_SIZE, 8,
                 EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE]  # fmt: skip
        arr = (ctypes.c_int * len(attrs))(*attrs)
        config = vp()
        n = ctypes.c_int()
        if (
            not egl.eglChooseConfig(display, arr, ctypes.byref(config), 1, ctypes.byref(n))
            or not n.value
        ):
            raise GlError("no EGL config with RGBA8 and desktop OpenGL")
        if not egl.eglBindAPI(EGL_OPENGL_API):
            raise GlError("eglBindAPI(EGL_OPENGL_API) failed")
        cattrs = [EGL_CONTEXT_MAJOR_VERSION, major, EGL_CONTEXT_MINOR_VERSION, minor,
                  EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL_NONE]  # fmt: skip
        carr = (ctypes.c_int * len(cattrs))(*cattrs)
        context = egl.eglCreateContext(display, config, None, carr)
        if not context:
            raise GlError(f"eglCreateContext {major}.{minor} core failed (0x{egl.eglGetError():x})")
        self.kind = "egl"
        self.display = int(display)
        self.config = int(config.value or 0)
        self.context = int(context)
        self.get_proc_address = int(ctypes.cast(egl.eglGetProcAddress, vp).value or 0)
        self.egl_version = (maj.value, mnr.value)
        self.make_current()
        self.gl = Gl(lambda name: int(egl.eglGetProcAddress(name.encode()) or 0))
        log.info("EGL %d.%d context: %s", maj.value, mnr.value, self.gl.renderer())

    def make_current(self) -> None:
        if not self._egl.eglMakeCurrent(self.display, None, None, self.context):
            raise GlError(f"eglMakeCurrent failed (0x{self._egl.eglGetError():x})")

    def is_current(self) -> bool:
        return int(self._egl.eglGetCurrentContext() or 0) == self.context

    def release(self) -> None:
        self._egl.eglMakeCurrent(self.display, None, None, None)

    def destroy(self) -> None:
        """Release and destroy the context and terminate the display."""
        if not self.context:
            return
        self.release()
        self._egl.eglDestroyContext(self.display, self.context)
        self._egl.eglTerminate(self.display)
        self.context = 0

    def __enter__(self) -> EglContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


class Gl:
    """The GL functions the swapchain glue uses.

    Parameters
    ----------
    get_proc : callable(str) -> int
        The context's function loader (``eglGetProcAddress``, GLFW's
        ``glfwGetProcAddress`` for GLX and WGL); returns 0 for unknown names.
    """

    _SIGS: dict[str, tuple[Any, list[Any]]] = {
        "glGetString": (ctypes.c_char_p, [ctypes.c_uint]),
        "glGetError": (ctypes.c_uint, []),
        "glGenFramebuffers": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glDeleteFramebuffers": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glBindFramebuffer": (None, [ctypes.c_uint, ctypes.c_uint]),
        "glFramebufferTexture2D": (
            None,
            [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_int],
        ),
        "glCheckFramebufferStatus": (ctypes.c_uint, [ctypes.c_uint]),
        "glViewport": (None, [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]),
        "glReadPixels": (
            None,
            [ctypes.c_int] * 4 + [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p],
        ),
        "glPixelStorei": (None, [ctypes.c_uint, ctypes.c_int]),
        "glBindBuffer": (None, [ctypes.c_uint, ctypes.c_uint]),
        "glReadBuffer": (None, [ctypes.c_uint]),
        "glFinish": (None, []),
        "glFlush": (None, []),
        "glDisable": (None, [ctypes.c_uint]),
        "glGenTextures": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glDeleteTextures": (None, [ctypes.c_int, ctypes.POINTER(ctypes.c_uint)]),
        "glBindTexture": (None, [ctypes.c_uint, ctypes.c_uint]),
        "glTexStorage2D": (
            None,
            [ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_int, ctypes.c_int],
        ),
    }

    def __init__(self, get_proc: Callable[[str], int]) -> None:
        self._fns: dict[str, Any] = {}
        for name, (res, args) in self._SIGS.items():
            addr = get_proc(name)
            if not addr:
                raise GlError(f"GL function {name} not available")
            self._fns[name] = ctypes.CFUNCTYPE(res, *args)(addr)

    def renderer(self) -> str:
        s = self._fns["glGetString"](GL_RENDERER)
        return s.decode() if s else "?"

    def check(self, what: str) -> None:
        err = self._fns["glGetError"]()
        if err:
            raise GlError(f"GL error 0x{err:x} after {what}")

    def clear_errors(self) -> None:
        """Drop errors left by other code in this context (VTK checks its own)."""
        for _ in range(32):
            if not self._fns["glGetError"]():
                break

    def new_framebuffer(self) -> int:
        fbo = ctypes.c_uint()
        self._fns["glGenFramebuffers"](1, ctypes.byref(fbo))
        return int(fbo.value)

    def delete_framebuffer(self, fbo: int) -> None:
        self._fns["glDeleteFramebuffers"](1, ctypes.byref(ctypes.c_uint(fbo)))

    def attach_texture(self, fbo: int, texture: int) -> None:
        """Bind ``fbo`` and make ``texture`` (a 2D texture) its colour attachment 0."""
        self._fns["glBindFramebuffer"](GL_FRAMEBUFFER, fbo)
        self._fns["glFramebufferTexture2D"](
            GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, texture, 0
        )
        status = self._fns["glCheckFramebufferStatus"](GL_FRAMEBUFFER)
        if status != GL_FRAMEBUFFER_COMPLETE:
            raise GlError(f"framebuffer over texture {texture} incomplete (0x{status:x})")

    def new_texture(self, width: int, height: int, internal_format: int = GL_RGBA8) -> int:
        """An immutable 2D texture (stands in for a swapchain image without a runtime)."""
        tex = ctypes.c_uint()
        self._fns["glGenTextures"](1, ctypes.byref(tex))
        self._fns["glBindTexture"](GL_TEXTURE_2D, tex.value)
        self._fns["glTexStorage2D"](GL_TEXTURE_2D, 1, internal_format, width, height)
        self._fns["glBindTexture"](GL_TEXTURE_2D, 0)
        self.check("glTexStorage2D")
        return int(tex.value)

    def delete_texture(self, texture: int) -> None:
        self._fns["glDeleteTextures"](1, ctypes.byref(ctypes.c_uint(texture)))

    def read_rgba(self, fbo: int, width: int, height: int) -> npt.NDArray[np.uint8]:
        """(H, W, 4) uint8 pixels of ``fbo``'s colour attachment, row 0 at the top."""
        out = np.empty((height, width, 4), dtype=np.uint8)
        self.clear_errors()
        # VTK may leave a pixel-pack buffer bound; the pointer would then be an offset.
        self._fns["glBindBuffer"](GL_PIXEL_PACK_BUFFER, 0)
        self._fns["glBindFramebuffer"](GL_READ_FRAMEBUFFER, fbo)
        self._fns["glReadBuffer"](GL_COLOR_ATTACHMENT0)
        self._fns["glPixelStorei"](GL_PACK_ALIGNMENT, 1)
        self._fns["glReadPixels"](
            0, 0, width, height, GL_RGBA, GL_UNSIGNED_BYTE, out.ctypes.data_as(ctypes.c_void_p)
        )
        self.check("glReadPixels")
        return np.ascontiguousarray(out[::-1])

    def finish(self) -> None:
        self._fns["glFinish"]()

    def disable(self, cap: int) -> None:
        self._fns["glDisable"](cap)
