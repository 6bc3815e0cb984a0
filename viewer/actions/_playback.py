"""Time-lapse playback: play / pause and step through time points at a fixed rate.

A front end that can play (the headset; the desktop may too) gives its action
context a ``playback`` attribute holding a :class:`Playback` and calls
:meth:`Playback.advance` once per frame with its clock; the actions here only
toggle it, so the same button does the same on every front end. Time is kept
within the data (:func:`viewer.actions.set_time`): playback stops at the last
time point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._actions import current_time, set_time
from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick, is_timelapse, time_range

__all__ = ["Playback"]


@dataclass
class Playback:
    """Play / pause state of one front end.

    Parameters
    ----------
    fps : float, default: 4
        Time points per second while playing.
    """

    fps: float = 4.0
    playing: bool = False
    _last: float | None = field(default=None, repr=False)

    def toggle(self, ctx: ActionContext) -> bool:
        """Play (from the first time point when at the last) or pause; returns ``playing``."""
        self.playing = not self.playing
        self._last = None
        if self.playing:
            lo, hi = time_range(ctx.scene, ctx.tracks)
            if current_time(ctx) >= hi:
                set_time(ctx, lo)
        return self.playing

    def advance(self, ctx: ActionContext, now_s: float) -> bool:
        """One time point forward when ``1 / fps`` seconds of the clock ``now_s`` have
        passed since the last step; True when the time point changed. Never skips a
        time point (slow frames slow playback down) and stops at the last one."""
        if not self.playing:
            return False
        if self._last is None:
            self._last = now_s
            return False
        if (now_s - self._last) * self.fps < 1.0:
            return False
        # Behind by more than a step (slow frames): restart the clock rather than skip.
        self._last = now_s if now_s - self._last > 2 / self.fps else self._last + 1 / self.fps
        before = current_time(ctx)
        set_time(ctx, before + 1)
        if current_time(ctx) >= time_range(ctx.scene, ctx.tracks)[1]:
            self.playing = False
        return current_time(ctx) != before


def _needs_timelapse(ctx: ActionContext, pick: Pick) -> str | None:
    return None if is_timelapse(ctx.scene, ctx.tracks) else "not a time-lapse"


@ACTIONS.action(
    "time.play",
    "Play / pause",
    "play the time-lapse (a few time points a second, from the start when at the end) "
    "or pause it; playback stops at the last time point",
    headset="wrist menu: play / pause",
    enabled=_needs_timelapse,
)
def _play(ctx: ActionContext, pick: Pick) -> bool | None:
    pb = getattr(ctx, "playback", None)
    if not isinstance(pb, Playback):
        ctx.notify("play: this view has no playback")
        return None
    playing = pb.toggle(ctx)
    ctx.notify("playing" if playing else f"paused at t={current_time(ctx)}")
    return playing


@ACTIONS.action(
    "time.first",
    "First time point",
    "go to the first time point (the time-lapse opens there)",
    headset="wrist menu: first time point",
    enabled=_needs_timelapse,
)
def _first(ctx: ActionContext, pick: Pick) -> None:
    set_time(ctx, time_range(ctx.scene, ctx.tracks)[0])
