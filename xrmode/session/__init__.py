"""The OpenXR session: instance, EGL graphics binding, swapchains and the frame loop.

:class:`XrSession` (context manager; needs pyopenxr and a runtime) builds
instance -> system -> EGL context -> session -> spaces -> actions -> swapchains
and tears them down in reverse; :meth:`XrSession.frames` is the frame loop
(a generator handling every session state). :class:`EglContext` and :class:`Gl`
are the small ctypes EGL/GL layer the swapchain glue needs; the VTK half lives
in ``viewer.render.VtkXrTarget``.

This package imports pyopenxr only in ``_session``; import it from there lazily
when the runtime may be absent.
"""

from ._egl import EglContext, Gl, GlError

__all__ = ["EglContext", "Gl", "GlError"]
