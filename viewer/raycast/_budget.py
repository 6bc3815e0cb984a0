"""``FrameBudget``: adaptive volume quality within a time budget per eye (no GL).

One controller for the desktop and the headset. A frame is one or more eyes, each
drawn from its own view; the controller decides once per frame, before its first eye,
from every eye's latest measured time and from whether any eye moved against *its own*
previous view (the two eyes of one XR frame differ by the eye separation: that is no
camera move). Quality has two knobs that both cut the per-pixel work of a ray caster:

- ``step_factor`` (>= 1) multiplies the sample distance along every ray: fewer steps
  per ray; the ray caster's opacity correction keeps the brightness;
- ``render_scale`` (<= 1) the rays per pixel along each axis: fewer rays.

While the view moves and an eye overruns the budget, both are lowered together (the
cost is about ``render_scale**2 / step_factor``; the cut asked for is split evenly in
log between them, what the step cannot give any more going to the scale); while it
moves well under the budget they recover slowly; once it is still they climb back to
full quality by :data:`REFINE_STEP` a frame (progressive refinement: the still, refined
picture is the full-quality one). This follows BigVolumeViewer's time-budgeted
progressive rendering and neuroglancer's adaptive resolution, with VTK's
``vtkRenderWindowInteractor`` still/desired update rates as the idea of "still".
"""

from __future__ import annotations

from collections.abc import Hashable

from analysis.errors import ParameterError

__all__ = ["MAX_STEP_FACTOR", "MIN_RENDER_SCALE", "REFINE_STEP", "FrameBudget"]

#: Largest multiple of the full-quality sample distance the budget goes to.
MAX_STEP_FACTOR = 4.0
#: Lowest render scale the budget goes to (1/16 of the rays).
MIN_RENDER_SCALE = 0.25
#: Factor per still frame on both knobs while refining.
REFINE_STEP = 1.5
# Largest cost cut in one frame (the measured time is one frame late: a cut is seen
# only after the next frame) and the cost gain per frame when well under budget.
_MAX_CUT = 0.25
_RECOVER = 1.1


class FrameBudget:
    """Lower the step count and the render scale while frames overrun, refine when still.

    Parameters
    ----------
    target_ms : float
        Time one eye's volume drawing may take (> 0).
    max_step_factor : float, default: :data:`MAX_STEP_FACTOR`
    min_render_scale : float, default: :data:`MIN_RENDER_SCALE`
    relax : float, default: 0.6
        While moving, quality recovers when every eye took less than ``relax * target_ms``.

    Attributes
    ----------
    step_factor : float
        >= 1: the sample distance is this times the full-quality one.
    render_scale : float
        <= 1: rays per pixel along each axis.
    moving : bool
        The last decided frame had an eye whose view changed.
    frames : int
        Frames decided.

    Examples
    --------
    A host drawing two eyes per frame::

        for eye, view in enumerate(views):
            step, scale = budget.begin_eye(eye, view_key(view))
            draw(view, step, scale)
            budget.report(eye, measured_ms)  # may be a frame late (GPU timer queries)
    """

    def __init__(
        self,
        target_ms: float,
        *,
        max_step_factor: float = MAX_STEP_FACTOR,
        min_render_scale: float = MIN_RENDER_SCALE,
        relax: float = 0.6,
    ) -> None:
        if not target_ms > 0:
            raise ParameterError(f"frame budget must be > 0 ms, got {target_ms}")
        if not max_step_factor >= 1 or not 0 < min_render_scale <= 1 or not 0 < relax < 1:
            raise ParameterError(
                "need max_step_factor >= 1, 0 < min_render_scale <= 1 and 0 < relax < 1"
            )
        self.target_ms = float(target_ms)
        self.max_step_factor = float(max_step_factor)
        self.min_render_scale = float(min_render_scale)
        self.relax = float(relax)
        self.step_factor = 1.0
        self.render_scale = 1.0
        self.moving = False
        self.frames = 0
        self._views: dict[int, Hashable] = {}  # each eye's last view
        self._ms: dict[int, float] = {}  # each eye's latest measured time
        self._eye = -1  # the last eye begun in the open frame (-1: none open)
        self._moved = False  # an eye of the open frame moved

    @property
    def refining(self) -> bool:
        """Quality is below full (a host keeps drawing while the view is still)."""
        return self.step_factor > 1.0 or self.render_scale < 1.0

    def begin_eye(self, eye: int, view: Hashable) -> tuple[float, float]:
        """An eye is about to be drawn from ``view`` (any hashable key of its matrices).

        An eye index not above the previous one starts a new frame (a desktop's every
        draw is eye 0: one eye per frame); the previous frame is decided first.

        Returns
        -------
        (step_factor, render_scale)
            What to draw this eye with (the same for every eye of a frame).
        """
        if eye <= self._eye:
            self._decide()
        self._eye = int(eye)
        # An eye's first view is no move (nothing to compare with).
        if eye in self._views and self._views[eye] != view:
            self._moved = True
        self._views[eye] = view
        return self.step_factor, self.render_scale

    def report(self, eye: int, ms: float) -> None:
        """The measured time of ``eye``'s volume drawing (the latest counts)."""
        self._ms[int(eye)] = float(ms)

    def _decide(self) -> None:
        moved, self._moved = self._moved, False
        self.moving = moved
        self.frames += 1
        worst = max(self._ms.values()) if self._ms else None
        if not moved:
            self._set(self.step_factor / REFINE_STEP, self.render_scale * REFINE_STEP)
        elif worst is not None and worst > self.target_ms:
            self._lower(max(self.target_ms / worst, _MAX_CUT))
        elif worst is not None and worst < self.relax * self.target_ms:
            self._raise(_RECOVER)

    def _lower(self, cut: float) -> None:
        """Cut the cost (about ``render_scale**2 / step_factor``) by ``cut`` < 1: half of
        it (in log) by the step, the rest by the scale."""
        step = min(self.step_factor / cut**0.5, self.max_step_factor)
        got = self.step_factor / step
        self._set(step, self.render_scale * (cut / got) ** 0.5)

    def _raise(self, gain: float) -> None:
        self._set(self.step_factor / gain**0.5, self.render_scale * gain**0.25)

    def _set(self, step: float, scale: float) -> None:
        self.step_factor = min(max(step, 1.0), self.max_step_factor)
        self.render_scale = min(max(scale, self.min_render_scale), 1.0)

    def reset(self) -> None:
        """Back to full quality, no views or times known."""
        self.step_factor = self.render_scale = 1.0
        self._views.clear()
        self._ms.clear()
        self._eye = -1
        self._moved = False
