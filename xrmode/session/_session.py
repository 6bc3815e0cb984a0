"""``XrSession``: instance -> system -> EGL context -> session -> spaces -> actions -> swapchains.

Built as a context manager that tears everything down in reverse order
(pyopenxr's ``xr/utils/gl/context_object.py``); the frame loop is a generator
(:meth:`XrSession.frames`) that handles every session state:

- IDLE: wait for events (no frames);
- READY: ``xrBeginSession``, then frames;
- SYNCHRONIZED / VISIBLE: frames, input not synced (not focused);
- FOCUSED: frames with input;
- STOPPING: ``xrEndSession``;
- LOSS_PENDING / EXITING, or an instance-loss event: the loop ends.

:meth:`XrSession.request_exit` asks the runtime to end the session, which then
walks STOPPING -> IDLE -> EXITING, so the app exits the way a headset's system
menu would make it.

Graphics (:func:`choose_graphics`): ``XR_KHR_opengl_enable`` over our own
OpenGL context, bound

- with ``XR_MNDX_egl_enable`` to a surfaceless EGL context where the runtime
  offers it (Monado; no window system needed), else
- with ``XrGraphicsBindingOpenGLXlibKHR`` to a GLX context (Linux desktops:
  SteamVR, Monado on X11), or ``XrGraphicsBindingOpenGLWin32KHR`` to a WGL
  context (Windows), both made in a hidden GLFW window
  (:class:`~xrmode.session.GlfwContext`).
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import xr

from analysis.errors import VrscopeError

from ..input._types import InputFrame, Pose
from ..input._xr_actions import XrActions, pose_from_xr
from ._egl import GL_SRGB8_ALPHA8, EglContext, GlError, GraphicsContext

__all__ = [
    "GRAPHICS",
    "EyeImage",
    "XrFrame",
    "XrRuntimeError",
    "XrSession",
    "choose_graphics",
    "no_runtime_message",
    "probe_runtime",
]

log = logging.getLogger(__name__)

_WANTED_EXTENSIONS = (
    "XR_KHR_opengl_enable",
    "XR_KHR_convert_timespec_time",
    "XR_EXT_hand_tracking",
    "XR_EXT_hand_interaction",
    "XR_EXT_local_floor",
)


def no_runtime_message(detail: str = "") -> str:
    """The one line printed when no OpenXR runtime can be reached."""
    extra = f" ({detail})" if detail else ""
    return (
        f"no OpenXR runtime found{extra}: start one (SteamVR, Meta Quest Link, "
        "Windows Mixed Reality, or Monado's monado-service) or set XR_RUNTIME_JSON "
        "to a runtime manifest"
    )


class XrRuntimeError(VrscopeError):
    """No OpenXR runtime, or the runtime refused what vrscope needs."""


#: The ``graphics`` choices of :class:`XrSession` (``vrscope xr --graphics``).
GRAPHICS = ("auto", "egl", "glx", "wgl")

_EGL_EXT = "XR_MNDX_egl_enable"


def choose_graphics(requested: str, available: set[str], platform: str | None = None) -> str:
    """The OpenGL binding to use: ``"egl"``, ``"glx"`` or ``"wgl"``.

    ``"auto"`` takes EGL where the runtime offers ``XR_MNDX_egl_enable`` (it
    needs no window system), else the platform's usual binding: GLX (Xlib) on
    Linux, WGL on Windows. A forced choice the runtime or the platform cannot
    honour raises :class:`XrRuntimeError` with the reason.

    Parameters
    ----------
    requested : {"auto", "egl", "glx", "wgl"}
    available : set of str
        The runtime's instance extensions.
    platform : str, optional
        ``sys.platform`` (default: this one).
    """
    plat = sys.platform if platform is None else platform
    native = "glx" if plat.startswith("linux") else "wgl" if plat == "win32" else None
    if requested not in GRAPHICS:
        raise XrRuntimeError(f"unknown graphics binding {requested!r} ({', '.join(GRAPHICS)})")
    if "XR_KHR_opengl_enable" not in available:
        raise XrRuntimeError("the OpenXR runtime offers no OpenGL graphics (XR_KHR_opengl_enable)")
    if requested == "auto":
        if _EGL_EXT in available:
            return "egl"
        if native is None:
            raise XrRuntimeError(
                f"the OpenXR runtime offers no EGL binding ({_EGL_EXT}) and {plat} has no "
                "GLX or WGL binding"
            )
        return native
    if requested == "egl" and _EGL_EXT not in available:
        alt = f"; use --graphics {native}" if native else ""
        raise XrRuntimeError(f"the OpenXR runtime offers no EGL binding ({_EGL_EXT}){alt}")
    if requested in ("glx", "wgl") and requested != native:
        raise XrRuntimeError(f"the {requested.upper()} binding is not available on {plat}")
    return requested


def _set_handle(struct: Any, name: str, value: int) -> None:
    """Store a raw handle in a pyopenxr struct field, whatever ctypes type it has."""
    ftype = dict(type(struct)._fields_)[name]
    if issubclass(ftype, ctypes._Pointer):
        setattr(struct, name, ctypes.cast(ctypes.c_void_p(value), ftype))
    else:
        setattr(struct, name, value)


def probe_runtime() -> str | None:
    """None when an OpenXR instance can be created, else a short reason.

    Creates and destroys a bare instance, the cheapest way to ask the loader
    whether a runtime is installed *and* running. The OpenXR loader writes its
    own error lines to the process's stderr; they are silenced here because the
    caller reports the problem in one line.
    """
    with _quiet_stderr():
        return _probe()


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _probe() -> str | None:
    try:
        xr.enumerate_instance_extension_properties()
        inst = xr.create_instance(
            xr.InstanceCreateInfo(
                application_info=xr.ApplicationInfo(
                    application_name="vrscope-probe", api_version=xr.Version(1, 0, 0)
                )
            )
        )
    except (xr.XrException, OSError) as exc:
        reason = type(exc).__name__
        if isinstance(exc, xr.RuntimeFailureError):
            reason += ": the runtime did not start; is its service (e.g. monado-service) running?"
        return reason
    xr.destroy_instance(inst)
    return None


@dataclass(frozen=True)
class EyeImage:
    """One eye to draw this frame: its pose and field of view (stage space).

    Attributes
    ----------
    index : int
    pose : Pose
        Eye position and orientation (stage metres).
    fov : (left, right, up, down) radians
        Angles as OpenXR gives them (left and down negative).
    width, height : int
        Pixels to draw (the swapchain size times the render scale).
    """

    index: int
    pose: Pose
    fov: tuple[float, float, float, float]
    width: int
    height: int

    def projection(self, near: float, far: float) -> npt.NDArray[np.float64]:
        """OpenGL projection (4, 4) for this eye's asymmetric fov (clip z -1..1)."""
        left, right, up, down = (math.tan(a) for a in self.fov)
        w, h = right - left, up - down
        m = np.zeros((4, 4))
        m[0, 0] = 2 / w
        m[0, 2] = (right + left) / w
        m[1, 1] = 2 / h
        m[1, 2] = (up + down) / h
        m[2, 2] = -(far + near) / (far - near)
        m[2, 3] = -2 * far * near / (far - near)
        m[3, 2] = -1
        return m


@dataclass
class XrFrame:
    """One frame of the loop.

    Attributes
    ----------
    index : int
    display_time : int
        Predicted display time (XrTime, ns): poses are located for it.
    period_s : float
        Predicted display period.
    should_render : bool
    state : str
        Session state name (``"FOCUSED"``, ...).
    input : InputFrame
    eyes : list of EyeImage
        Empty when the views are not valid or nothing should be drawn.
    """

    index: int
    display_time: int
    period_s: float
    should_render: bool
    state: str
    input: InputFrame
    eyes: list[EyeImage] = field(default_factory=list)
    rendered: bool = False
    _views: Any = None


class XrSession:
    """An OpenXR session with OpenGL swapchains (EGL, GLX or WGL), as a context manager.

    Parameters
    ----------
    app_name : str, default: "vrscope"
    hand_tracking : bool, default: True
        Use ``XR_EXT_hand_tracking`` when the runtime offers it.
    on_state : callable(str), optional
        Called with the state name at every session state change.
    graphics : {"auto", "egl", "glx", "wgl"}, default: "auto"
        The OpenGL binding (:func:`choose_graphics`).

    Attributes
    ----------
    graphics : EglContext or GlfwContext
        The GL context shared by OpenXR and the renderer; ``graphics.kind`` says
        which binding it is.
    eye_size : (width, height)
        Recommended per-eye image size (the swapchains' size).
    extensions : set of str
        Enabled instance extensions.
    actions : XrActions
    state : str
    """

    def __init__(
        self,
        app_name: str = "vrscope",
        hand_tracking: bool = True,
        on_state: Callable[[str], None] | None = None,
        graphics: str = "auto",
    ) -> None:
        self.requested_graphics = graphics
        self.app_name = app_name
        self.hand_tracking = hand_tracking
        self.on_state = on_state
        self.state = "UNKNOWN"
        self.running = False
        self._exit = False
        #: True when the runtime lost the instance or session (it stopped or crashed).
        self.lost = False
        self._exit_requested = False
        self._exit_sent = False
        self._stack = ExitStack()
        self.render_scale = 1.0

    # -- set-up ----------------------------------------------------------------------
    def __enter__(self) -> XrSession:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.lost:
            self._stack.close()
            return
        # After a loss the runtime refuses most destroy calls (and a dead runtime's
        # client library can fail in other ways); release what we can, quietly.
        try:
            self._stack.close()
        except Exception as err:  # nothing more to do with a dead runtime
            log.info("teardown after the runtime lost the session: %s", err)

    def _open(self) -> None:
        st = self._stack
        try:
            available = {
                e.extension_name.decode() for e in xr.enumerate_instance_extension_properties()
            }
        except (xr.XrException, OSError) as exc:
            raise XrRuntimeError(no_runtime_message(type(exc).__name__)) from exc
        kind = choose_graphics(self.requested_graphics, available)
        self.extensions = {e for e in _WANTED_EXTENSIONS if e in available}
        if kind == "egl":
            self.extensions.add(_EGL_EXT)
        try:
            self.instance = xr.create_instance(
                xr.InstanceCreateInfo(
                    application_info=xr.ApplicationInfo(
                        application_name=self.app_name,
                        application_version=1,
                        engine_name="vrscope",
                        api_version=xr.Version(1, 0, 0),
                    ),
                    enabled_extension_names=sorted(self.extensions),
                )
            )
        except xr.XrException as exc:
            raise XrRuntimeError(no_runtime_message(type(exc).__name__)) from exc
        st.callback(xr.destroy_instance, self.instance)
        props = xr.get_instance_properties(self.instance)
        self.runtime_name = props.runtime_name.decode(errors="replace")
        try:
            self.system = xr.get_system(
                self.instance, xr.SystemGetInfo(form_factor=xr.FormFactor.HEAD_MOUNTED_DISPLAY)
            )
        except xr.XrException as exc:
            raise XrRuntimeError(f"no headset connected to {self.runtime_name} ({exc})") from exc
        self.view_type = xr.ViewConfigurationType.PRIMARY_STEREO
        views = xr.enumerate_view_configuration_views(self.instance, self.system, self.view_type)
        self.eye_size = (
            int(views[0].recommended_image_rect_width),
            int(views[0].recommended_image_rect_height),
        )
        try:
            if kind == "egl":
                self.graphics: GraphicsContext = EglContext()
            else:
                from ._glfw import GlfwContext

                self.graphics = GlfwContext()
        except GlError as exc:
            raise XrRuntimeError(
                f"no OpenGL context for the {kind.upper()} binding: {exc}"
            ) from exc
        st.callback(self.graphics.destroy)
        # The spec requires this call before xrCreateSession with an OpenGL binding.
        pfn = ctypes.cast(
            xr.get_instance_proc_addr(self.instance, "xrGetOpenGLGraphicsRequirementsKHR"),
            xr.PFN_xrGetOpenGLGraphicsRequirementsKHR,
        )
        req = xr.GraphicsRequirementsOpenGLKHR()
        pfn(self.instance, self.system, ctypes.byref(req))
        binding = self._graphics_binding()
        self._binding = binding
        self.session = xr.create_session(
            self.instance,
            xr.SessionCreateInfo(
                system_id=self.system,
                next=ctypes.cast(ctypes.pointer(binding), ctypes.c_void_p),
            ),
        )
        st.callback(self._destroy_session)
        log.info("graphics binding: %s", self.graphics.kind)
        spaces = set(xr.enumerate_reference_spaces(self.session))
        # A floor at y = 0: STAGE (the play area), else LOCAL_FLOOR (XR_EXT_local_floor:
        # LOCAL with its origin on the floor), else LOCAL (origin at the head at start;
        # the app then estimates the floor below the head).
        kind = next(
            (
                k
                for k in (xr.ReferenceSpaceType.STAGE, xr.ReferenceSpaceType.LOCAL_FLOOR)
                if k in spaces
            ),
            xr.ReferenceSpaceType.LOCAL,
        )
        self.space_type = kind.name
        self.space = xr.create_reference_space(
            self.session, xr.ReferenceSpaceCreateInfo(reference_space_type=kind)
        )
        st.callback(xr.destroy_space, self.space)
        self.view_space = xr.create_reference_space(
            self.session,
            xr.ReferenceSpaceCreateInfo(reference_space_type=xr.ReferenceSpaceType.VIEW),
        )
        st.callback(xr.destroy_space, self.view_space)
        self.actions = XrActions(self.instance, self.session, self.extensions, self.hand_tracking)
        st.callback(self.actions.destroy)
        self._make_swapchains(len(views))
        self.fbo = self.graphics.gl.new_framebuffer()
        st.callback(self.graphics.gl.delete_framebuffer, self.fbo)
        log.info(
            "OpenXR session on %s: %dx%d per eye, %s space, profiles %s",
            self.runtime_name,
            *self.eye_size,
            self.space_type,
            self.actions.accepted_profiles,
        )

    def _graphics_binding(self) -> Any:
        """The ``XrGraphicsBinding*`` struct naming :attr:`graphics` for xrCreateSession."""
        g: Any = self.graphics  # the binding's handles depend on the kind
        if g.kind == "egl":
            binding = xr.GraphicsBindingEGLMNDX()
            binding.get_proc_address = xr.PFN_xrEglGetProcAddressMNDX(g.get_proc_address)
            for name in ("display", "config", "context"):
                _set_handle(binding, name, getattr(g, name))
        elif g.kind == "glx":
            binding = xr.GraphicsBindingOpenGLXlibKHR()
            _set_handle(binding, "x_display", g.display)
            binding.visualid = g.visual_id
            _set_handle(binding, "glx_fbconfig", g.fbconfig)
            binding.glx_drawable = g.drawable
            _set_handle(binding, "glx_context", g.context)
        else:  # wgl; pyopenxr defines the Win32 struct only on Windows
            cls = getattr(xr, "GraphicsBindingOpenGLWin32KHR", None)
            if cls is None:  # pragma: no cover - only reachable off Windows by a bug
                raise XrRuntimeError("pyopenxr has no Win32 OpenGL binding on this platform")
            binding = cls()
            _set_handle(binding, "h_dc", g.hdc)
            _set_handle(binding, "h_glrc", g.hglrc)
        return binding

    def _make_swapchains(self, n: int) -> None:
        formats = list(xr.enumerate_swapchain_formats(self.session))
        # sRGB first: the compositor then treats our 8-bit colours as display-referred.
        fmt = GL_SRGB8_ALPHA8 if GL_SRGB8_ALPHA8 in formats else formats[0]
        w, h = self.eye_size
        self.swapchains: list[Any] = []
        self.swapchain_images: list[list[int]] = []
        for _ in range(n):
            sc = xr.create_swapchain(
                self.session,
                xr.SwapchainCreateInfo(
                    usage_flags=xr.SwapchainUsageFlags.COLOR_ATTACHMENT_BIT
                    | xr.SwapchainUsageFlags.SAMPLED_BIT,
                    format=fmt,
                    sample_count=1,
                    width=w,
                    height=h,
                    face_count=1,
                    array_size=1,
                    mip_count=1,
                ),
            )
            self._stack.callback(xr.destroy_swapchain, sc)
            images = xr.enumerate_swapchain_images(sc, xr.SwapchainImageOpenGLKHR)
            self.swapchains.append(sc)
            self.swapchain_images.append([int(img.image) for img in images])

    def _destroy_session(self) -> None:
        if self.running:
            # Torn down mid-loop (an error): end the session before destroying it.
            try:
                xr.end_session(self.session)
            except xr.XrException:
                pass
            self.running = False
        xr.destroy_session(self.session)

    # -- events and states ---------------------------------------------------------------
    def _set_state(self, name: str) -> None:
        self.state = name
        log.info("session state %s", name)
        if self.on_state is not None:
            self.on_state(name)

    def poll_events(self) -> None:
        """Handle every pending runtime event (state changes, instance loss)."""
        while True:
            try:
                buf = xr.poll_event(self.instance)
            except xr.EventUnavailable:
                return
            kind = xr.StructureType(buf.type)
            if kind == xr.StructureType.EVENT_DATA_INSTANCE_LOSS_PENDING:
                self._set_state("INSTANCE_LOSS_PENDING")
                self._exit = True
            elif kind == xr.StructureType.EVENT_DATA_SESSION_STATE_CHANGED:
                ev = ctypes.cast(
                    ctypes.byref(buf), ctypes.POINTER(xr.EventDataSessionStateChanged)
                ).contents
                state = xr.SessionState(ev.state)
                self._set_state(state.name)
                if state == xr.SessionState.READY:
                    xr.begin_session(self.session, xr.SessionBeginInfo(self.view_type))
                    self.running = True
                elif state == xr.SessionState.STOPPING:
                    xr.end_session(self.session)
                    self.running = False
                elif state in (xr.SessionState.EXITING, xr.SessionState.LOSS_PENDING):
                    self._exit = True
            elif kind == xr.StructureType.EVENT_DATA_INTERACTION_PROFILE_CHANGED:
                log.info("interaction profiles now %s", self.actions.current_profiles())

    def request_exit(self) -> None:
        """Ask the runtime to end the session; :meth:`frames` ends after EXITING.

        Only sets a flag (safe from a signal handler); the frame loop makes the call.
        """
        self._exit_requested = True

    def _handle_exit_request(self) -> None:
        if not self._exit_requested or self._exit_sent:
            return
        if self.running:
            xr.request_exit_session(self.session)
            self._exit_sent = True
        elif self.state in ("IDLE", "UNKNOWN"):
            self._exit = True

    # -- frames -----------------------------------------------------------------------------
    def frames(self) -> Iterator[XrFrame]:
        """Yield one :class:`XrFrame` per display frame until the session exits.

        Between the yield and the next iteration the caller updates tools and
        calls :meth:`render` (or not); the frame is then submitted.
        """
        index = 0
        while not self._exit:
            # Any runtime error in a frame (a runtime that stops or crashes mid-frame
            # fails whichever call comes next: waiting, locating, syncing, ending the
            # frame) ends the loop as a loss: one line from the app, no traceback.
            try:
                self.poll_events()
                self._handle_exit_request()
                if self._exit:
                    break
                if not self.running:
                    time.sleep(0.01)
                    continue
                fs = xr.wait_frame(self.session)
                xr.begin_frame(self.session)
                focused = self.state == "FOCUSED"
                t = int(fs.predicted_display_time)
                inp = self.actions.read(self.space, self.view_space, t, focused)
                frame = XrFrame(
                    index,
                    t,
                    fs.predicted_display_period * 1e-9,
                    bool(fs.should_render),
                    self.state,
                    inp,
                )
                if frame.should_render:
                    self._locate_eyes(frame)
            except xr.XrException as err:
                self._on_lost(err)
                break
            self.graphics.make_current()
            yield frame
            if self.lost:  # render() met a dead runtime
                break
            try:
                self._end_frame(frame)
            except xr.XrException as err:
                self._on_lost(err)
                break
            index += 1

    def _on_lost(self, err: Exception) -> None:
        """The runtime went away mid-session: stop the loop; tear down without raising."""
        # Logged quietly: the app ends with one line saying so (XrRuntimeError).
        log.info("the OpenXR runtime lost the session: %s", type(err).__name__)
        self.lost = True
        self.running = False
        self._exit = True
        self._set_state("LOST")

    def _locate_eyes(self, frame: XrFrame) -> None:
        vs, views = xr.locate_views(
            self.session,
            xr.ViewLocateInfo(
                view_configuration_type=self.view_type,
                display_time=frame.display_time,
                space=self.space,
            ),
        )
        flags = vs.view_state_flags
        ok = xr.VIEW_STATE_POSITION_VALID_BIT | xr.VIEW_STATE_ORIENTATION_VALID_BIT
        if (flags & ok) != ok:
            return
        w = max(16, int(self.eye_size[0] * self.render_scale))
        h = max(16, int(self.eye_size[1] * self.render_scale))
        frame._views = views
        for i, v in enumerate(views):
            f = v.fov
            frame.eyes.append(
                EyeImage(
                    i,
                    pose_from_xr(v.pose),
                    (
                        float(f.angle_left),
                        float(f.angle_right),
                        float(f.angle_up),
                        float(f.angle_down),
                    ),
                    w,
                    h,
                )
            )

    def render(self, frame: XrFrame, draw: Callable[[EyeImage], None]) -> None:
        """Acquire each eye's swapchain image, bind it as the framebuffer, call ``draw(eye)``.

        ``draw`` renders into the bound framebuffer at ``eye.width x eye.height``
        (the lower-left part of the image when the render scale is below 1).
        """
        if not frame.eyes or self.lost:
            return
        gl = self.graphics.gl
        self._layer_views = (xr.CompositionLayerProjectionView * len(frame.eyes))()
        for eye in frame.eyes:
            sc = self.swapchains[eye.index]
            try:
                idx = xr.acquire_swapchain_image(sc, xr.SwapchainImageAcquireInfo())
                xr.wait_swapchain_image(sc, xr.SwapchainImageWaitInfo(timeout=xr.INFINITE_DURATION))
            except xr.XrException as err:  # the runtime died mid-frame: end the loop
                self._on_lost(err)
                return
            tex = self.swapchain_images[eye.index][idx]
            gl.attach_texture(self.fbo, tex)
            try:
                draw(eye)
                if self.on_drawn is not None:
                    self.on_drawn(eye, tex)
            finally:
                try:
                    xr.release_swapchain_image(sc, xr.SwapchainImageReleaseInfo())
                except xr.XrException as err:
                    self._on_lost(err)
            if self.lost:
                return
            lv = self._layer_views[eye.index]
            lv.type = xr.StructureType.COMPOSITION_LAYER_PROJECTION_VIEW
            lv.pose = frame._views[eye.index].pose
            lv.fov = frame._views[eye.index].fov
            lv.sub_image.swapchain = sc
            lv.sub_image.image_rect.offset.x = 0
            lv.sub_image.image_rect.offset.y = 0
            lv.sub_image.image_rect.extent.width = eye.width
            lv.sub_image.image_rect.extent.height = eye.height
            lv.sub_image.image_array_index = 0
        frame.rendered = True

    #: Called after each eye is drawn with (eye, texture) while the image is acquired
    #: (tests read the swapchain image back here).
    on_drawn: Callable[[EyeImage, int], None] | None = None

    def read_eye(self, eye: EyeImage) -> npt.NDArray[np.uint8]:
        """(H, W, 4) pixels of the framebuffer just drawn for ``eye`` (a read-back copy)."""
        return self.graphics.gl.read_rgba(self.fbo, eye.width, eye.height)

    def _end_frame(self, frame: XrFrame) -> None:
        layers: list[Any] = []
        if frame.rendered:
            self._layer = xr.CompositionLayerProjection(
                space=self.space, view_count=len(frame.eyes), views=self._layer_views
            )
            layers = [ctypes.byref(self._layer)]
        xr.end_frame(
            self.session,
            xr.FrameEndInfo(
                display_time=frame.display_time,
                environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE,
                layers=layers,
            ),
        )
