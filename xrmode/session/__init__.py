"""The OpenXR session: instance, OpenGL graphics binding, swapchains and the frame loop.

:class:`XrSession` (context manager; needs pyopenxr and a runtime) builds
instance -> system -> GL context -> session -> spaces -> actions -> swapchains
and tears them down in reverse; :meth:`XrSession.frames` is the frame loop
(a generator handling every session state). The GL context is an
:class:`EglContext` (surfaceless EGL, ``XR_MNDX_egl_enable``) or a
:class:`GlfwContext` (GLX on Linux desktops, WGL on Windows); :class:`Gl` is
the small ctypes GL layer the swapchain glue needs; the VTK half lives in
``viewer.render.VtkXrTarget``. A new binding is a context class with the same
interface (``kind``, ``gl``, ``make_current``, ``is_current``, ``release``,
``destroy``), a case in ``choose_graphics`` and one in
``XrSession._graphics_binding``.

This package imports pyopenxr only in ``_session``, which its names below are
loaded from on first use (``XrSession``, ``XrRuntimeError``, ``probe_runtime``,
``no_runtime_message``), so importing the package needs no runtime.
"""

from typing import TYPE_CHECKING, Any

from ._egl import EglContext, Gl, GlError, GraphicsContext
from ._glfw import GlfwContext

__all__ = [
    "EglContext",
    "Gl",
    "GlError",
    "GlfwContext",
    "GraphicsContext",
    "XrRuntimeError",
    "XrSession",
    "no_runtime_message",
    "probe_runtime",
]

if TYPE_CHECKING:
    from ._session import XrRuntimeError, XrSession, no_runtime_message, probe_runtime

_LAZY = ("XrRuntimeError", "XrSession", "no_runtime_message", "probe_runtime")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _session

        return getattr(_session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
