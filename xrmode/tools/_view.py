"""View tools: clipping plane, laser pointer, and the hand menu that switches tools.

None of them edits data: the clipping plane is scene state, the laser only
draws, the menu only switches which tool is enabled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..input._types import HandInput, InputFrame
from ._base import Tool, ToolContext

__all__ = ["ClipTool", "CropTool", "HandMenu", "LaserPointer"]


class ClipTool(Tool):
    """Hold the trigger to grab the clipping plane: it follows the hand's tip and
    pointing direction (the normal points to the part that stays visible).
    The primary button switches the plane on and off."""

    name = "clip"

    def __init__(self, hand: str = "right") -> None:
        super().__init__(hand)

    def _plane(self, ctx: ToolContext) -> object | None:
        scene = ctx.scene
        if scene is None:
            return None
        if not len(scene.clipping_planes):
            lo, hi = scene.extent_world()
            scene.add_clipping_plane(
                origin=tuple(float(v) for v in (lo + hi) / 2), normal=(1.0, 0.0, 0.0)
            )
        plane: object = scene.clipping_planes[0]
        return plane

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        plane = self._plane(ctx)
        if plane is None or h.aim is None:
            return
        if h.primary.just_pressed:
            plane.enabled = not plane.enabled  # type: ignore[attr-defined]
        tip = ctx.tip_world(h)
        if h.select.pressed and tip is not None:
            n = ctx.transform.stage_dir_to_world(h.aim.forward)
            plane.update(  # type: ignore[attr-defined]
                {
                    "origin": tuple(float(v) for v in tip),
                    "normal": tuple(float(v) for v in n),
                    "enabled": True,
                }
            )
        o = ctx.transform.world_to_stage(plane.origin)  # type: ignore[attr-defined]
        ctx.hud.point(o, (0.9, 0.3, 0.9))
        state = "on" if plane.enabled else "off"  # type: ignore[attr-defined]
        ctx.hud.text(o + np.array([0.0, 0.04, 0.0]), f"clip {state}", (0.9, 0.3, 0.9))


class CropTool(Tool):
    """A crop box held between the two hands: while both triggers are held, the box
    spans the hands' tips (axis-aligned in the world, so the data's own axes cut);
    releasing keeps it. The primary button switches the crop on and off.

    The box is six clipping planes of the scene (view state, like :class:`ClipTool`'s
    plane: shared with the desktop's view, saved with the scene), normals inwards.
    """

    name = "crop"

    def __init__(self, hand: str = "right") -> None:
        super().__init__(hand)
        self.planes: list[Any] = []
        self.box: tuple[np.ndarray, np.ndarray] | None = None

    def _set_box(self, ctx: ToolContext, lo: np.ndarray, hi: np.ndarray) -> None:
        scene = ctx.scene
        if scene is None:
            return
        if not self.planes:
            self.planes = [
                scene.add_clipping_plane(origin=(0.0, 0.0, 0.0), normal=(1.0, 0.0, 0.0))
                for _ in range(6)
            ]
        for axis in range(3):
            n = np.zeros(3)
            n[axis] = 1.0
            for k, (corner, sign) in enumerate(((lo, 1.0), (hi, -1.0))):
                self.planes[2 * axis + k].update(
                    {
                        "origin": tuple(float(v) for v in corner),
                        "normal": tuple(float(v) for v in sign * n),
                        "enabled": True,
                    }
                )
        self.box = (lo, hi)

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        other = frame.hand("left" if self.hand == "right" else "right")
        if h.primary.just_pressed and self.planes:
            on = not self.planes[0].enabled
            for p in self.planes:
                p.enabled = on
        a, b = ctx.tip_world(h), ctx.tip_world(other)
        if a is not None and b is not None and h.select.pressed and other.select.pressed:
            self._set_box(ctx, np.minimum(a, b), np.maximum(a, b))
        if self.box is None:
            return
        lo, hi = self.box
        corners = np.array(
            [[z, y, x] for z in (lo[0], hi[0]) for y in (lo[1], hi[1]) for x in (lo[2], hi[2])]
        )
        st = ctx.transform.world_to_stage(corners)
        color = (0.3, 0.9, 0.9) if self.planes and self.planes[0].enabled else (0.5, 0.5, 0.5)
        for i in range(8):
            for bit in (1, 2, 4):  # edges join corners differing in one axis
                if not i & bit:
                    ctx.hud.line(st[i], st[i | bit], color)


class LaserPointer(Tool):
    """A red ray from the hand, ending where it enters the volume's box, for showing."""

    name = "laser"

    def update(self, frame: InputFrame, ctx: ToolContext) -> None:
        h = self.the_hand(frame)
        if h.aim is None:
            return
        ray = h.aim.ray()
        length = 3.0
        if ctx.scene is not None:
            lo, hi = ctx.scene.extent_world()
            hit = _ray_box(
                ctx.transform.stage_to_world(ray.origin),
                ctx.transform.stage_dir_to_world(ray.direction),
                lo,
                hi,
            )
            if hit is not None:
                length = hit * ctx.transform.scale
        end = np.asarray(ray.origin) + length * np.asarray(ray.direction)
        ctx.hud.line(ray.origin, end, (1.0, 0.1, 0.1))
        if length < 3.0:
            ctx.hud.point(end, (1.0, 0.1, 0.1))


def _ray_box(o: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float | None:
    """Distance along the ray to where it enters the box (slab method), or None."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - o) / d
        t2 = (hi - o) / d
    tmin = np.nanmax(np.minimum(t1, t2))
    tmax = np.nanmin(np.maximum(t1, t2))
    if tmax < max(tmin, 0.0):
        return None
    return float(max(tmin, 0.0))


class HandMenu:
    """A menu on the left hand: the menu button opens it; the thumbstick (up/down) or
    pointing with the other hand's ray highlights an item; the trigger picks it.

    Parameters
    ----------
    items : list of str
        Tool names (and the keys of other entries, e.g. "follow").
    label : callable(item) -> str, optional
        The text shown for an item (default: the item itself), asked every frame so
        on/off entries show their state.

    Attributes
    ----------
    open : bool
    highlighted : int
    chosen : str or None
        Set on the frame an item is picked (then the menu closes).
    """

    def __init__(
        self,
        items: Sequence[str],
        hand: str = "left",
        label: Callable[[str], str] | None = None,
    ) -> None:
        self.items = list(items)
        self.hand = hand
        self.label = label or str
        self.open = False
        self.highlighted = 0
        self.chosen: str | None = None
        self._stick_armed = True

    def _item_positions(self, h: HandInput, ctx: ToolContext) -> np.ndarray:
        """Item anchors above the hand, spaced by the text's visual angle (never
        overlapping whatever the eyes' resolution and the hand's distance)."""
        assert h.aim is not None
        hand = np.asarray(h.aim.position)
        step = max(ctx.hud.line_spacing_m(hand), 0.02)
        n = len(self.items)
        top = hand + np.array([0.0, 0.04 + step * n, 0.0])
        return np.array([top - np.array([0.0, step * i, 0.0]) for i in range(n)])

    def update(self, frame: InputFrame, ctx: ToolContext, current: str) -> None:
        self.chosen = None
        h = frame.hand("left" if self.hand == "left" else "right")
        other = frame.hand("right" if self.hand == "left" else "left")
        # A controller's menu button toggles the menu; a tracked hand's "menu" is held
        # while its palm faces up (a wrist menu: open while you look at your palm).
        opening = h.menu.just_pressed and not self.open
        if h.source == "hand":
            if h.menu.just_released:
                self.open = False
        elif h.menu.just_pressed and self.open:
            self.open = False
        if opening:
            self.open = True
            if current in self.items:
                self.highlighted = self.items.index(current)
        if not self.open or h.aim is None:
            return
        y = h.thumbstick[1]
        if self._stick_armed and abs(y) > 0.7:
            self.highlighted = (self.highlighted + (-1 if y > 0 else 1)) % len(self.items)
            self._stick_armed = False
        elif abs(y) < 0.3:
            self._stick_armed = True
        pos = self._item_positions(h, ctx)
        if other.aim is not None:
            ray = other.aim.ray()
            rel = pos - np.asarray(ray.origin)
            along = rel @ np.asarray(ray.direction)
            perp = np.linalg.norm(rel - np.outer(along, ray.direction), axis=1)
            perp[along < 0] = np.inf
            i = int(np.argmin(perp))
            if perp[i] < 0.015:
                self.highlighted = i
        for i, (p, item) in enumerate(zip(pos, self.items, strict=True)):
            sel = i == self.highlighted
            name = self.label(item)
            ctx.hud.text(
                p, f"> {name}" if sel else f"  {name}", (1.0, 0.9, 0.2) if sel else (1.0, 1.0, 1.0)
            )
        if h.select.just_pressed or other.select.just_pressed:
            self.chosen = self.items[self.highlighted]
            self.open = False
