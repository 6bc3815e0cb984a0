"""The frame budget per eye (``FrameBudget``): scripted eye times and views, no GL."""

from __future__ import annotations

import pytest

from analysis.errors import ParameterError
from viewer.raycast import FrameBudget
from viewer.raycast._budget import MAX_STEP_FACTOR, MIN_RENDER_SCALE

LEFT, RIGHT = ("eye", -0.032), ("eye", 0.032)  # two eyes' views: 64 mm apart


def _stereo(b: FrameBudget, frames: int, ms: float, views: tuple = (LEFT, RIGHT)) -> list:
    """Draw ``frames`` stereo frames from fixed views, every eye taking ``ms``; the
    (step, scale) each eye was drawn with."""
    got = []
    for _ in range(frames):
        for eye, view in enumerate(views):
            got.append(b.begin_eye(eye, view))
            b.report(eye, ms)
    return got


def test_the_two_eyes_of_a_still_head_are_not_a_move() -> None:
    b = FrameBudget(5.0)
    got = _stereo(b, 20, ms=50.0)  # ten times over budget, but the head is still
    assert set(got) == {(1.0, 1.0)}
    assert b.frames == 19 and not b.moving
    # The same two views drawn as one eye (a host that cannot tell eyes apart) would be
    # a move every frame, and degrade.
    one = FrameBudget(5.0)
    for _ in range(20):
        for view in (LEFT, RIGHT):
            one.begin_eye(0, view)
            one.report(0, 50.0)
    assert one.moving and one.step_factor > 1.0 and one.render_scale < 1.0


def test_moving_over_budget_lowers_steps_and_rays_together_then_still_refines() -> None:
    b = FrameBudget(5.0)
    _stereo(b, 1, ms=20.0)
    steps, scales = [], []
    for i in range(12):  # the head turns: both eyes' views change every frame
        for eye in (0, 1):
            step, scale = b.begin_eye(eye, ("turn", i, eye))
            b.report(eye, 20.0 if eye == 0 else 7.0)  # the worst eye counts
        steps.append(step)
        scales.append(scale)
    # The first cut: 4x over budget is a cost cut of 1/4, half of it (in log) by the
    # step (x2), half by the rays (scale x 1/sqrt(2)).
    assert steps[1] == pytest.approx(2.0) and scales[1] == pytest.approx(2**-0.5)
    assert all(a <= b for a, b in zip(steps, steps[1:], strict=False))
    assert all(a >= b for a, b in zip(scales, scales[1:], strict=False))
    assert steps[-1] == MAX_STEP_FACTOR and scales[-1] == MIN_RENDER_SCALE
    # Still: both climb back by the refinement step a frame, to exactly full quality.
    still = _stereo(b, 8, ms=20.0, views=(("turn", 99, 0), ("turn", 99, 1)))
    per_frame = still[::2]
    assert still[1::2] == per_frame  # both eyes of a frame at the same quality
    assert per_frame[-1] == (1.0, 1.0) and not b.refining
    assert all(
        a[0] >= b[0] and a[1] <= b[1] for a, b in zip(per_frame, per_frame[1:], strict=False)
    )


def test_moving_well_under_budget_recovers_and_near_budget_holds() -> None:
    b = FrameBudget(10.0)
    b.begin_eye(0, -1)
    b.begin_eye(0, -2)  # a move, with no time measured yet: nothing changes
    b.step_factor, b.render_scale = 3.0, 0.5
    for i in range(3):
        b.begin_eye(0, i)
        b.report(0, 8.0)  # under budget but above relax * budget: hold
    assert (b.step_factor, b.render_scale) == (3.0, 0.5)
    for i in range(3, 40):
        b.begin_eye(0, i)
        b.report(0, 1.0)
    assert b.step_factor < 3.0 and b.render_scale > 0.5 and b.moving


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ParameterError, match="budget"):
        FrameBudget(0.0)
    with pytest.raises(ParameterError, match="max_step_factor"):
        FrameBudget(5.0, max_step_factor=0.5)
