"""Layer display actions: visibility, opacity, contrast, colormap, and the background.

The headset's wrist panel (``xrmode``) runs these; the desktop has its own layer
controls and may bind them too. Each acts on the picked layer (``Pick.layer``),
else the first image layer, and changes only the scene model (its change events
redraw every view).
"""

from __future__ import annotations

from typing import Any

from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick

__all__ = ["COLORMAPS", "OPACITY_STEP", "target_layer"]

#: Opacity change per press.
OPACITY_STEP = 0.1
#: Contrast window change per press (the window narrows or widens about its centre).
CONTRAST_FACTOR = 0.8
#: Colormaps offered in turn for images (matplotlib names).
COLORMAPS = ("gray", "magma", "viridis", "inferno", "cividis")


def target_layer(ctx: ActionContext, pick: Pick) -> Any:
    """The picked layer (by name), else the first image layer; None if there is none."""
    layers = list(ctx.scene.layers)
    if pick.layer:
        for lay in layers:
            if lay.name == pick.layer:
                return lay
    return next((lay for lay in layers if getattr(lay, "kind", None) == "image"), None)


def _needs_layer(ctx: ActionContext, pick: Pick) -> str | None:
    return None if target_layer(ctx, pick) is not None else "no layer to change"


@ACTIONS.action(
    "layer.toggle_visible",
    "Show / hide layer",
    "show or hide the layer (the wrist panel's layer; else the first image)",
    headset="wrist panel: visible",
    enabled=_needs_layer,
)
def _toggle_visible(ctx: ActionContext, pick: Pick) -> bool:
    lay = target_layer(ctx, pick)
    lay.visible = not lay.visible
    ctx.notify(f"{lay.name}: {'shown' if lay.visible else 'hidden'}")
    return bool(lay.visible)


def _opacity(ctx: ActionContext, pick: Pick, step: float) -> float:
    lay = target_layer(ctx, pick)
    lay.opacity = round(min(max(float(lay.opacity) + step, 0.0), 1.0), 3)
    ctx.notify(f"{lay.name}: opacity {lay.opacity:.2f}")
    return float(lay.opacity)


@ACTIONS.action(
    "layer.more_opaque",
    "More opaque",
    f"raise the layer's opacity by {OPACITY_STEP:g} (labels too: their surfaces' opacity)",
    headset="wrist panel: opacity +",
    enabled=_needs_layer,
)
def _more_opaque(ctx: ActionContext, pick: Pick) -> float:
    return _opacity(ctx, pick, OPACITY_STEP)


@ACTIONS.action(
    "layer.less_opaque",
    "Less opaque",
    f"lower the layer's opacity by {OPACITY_STEP:g}",
    headset="wrist panel: opacity -",
    enabled=_needs_layer,
)
def _less_opaque(ctx: ActionContext, pick: Pick) -> float:
    return _opacity(ctx, pick, -OPACITY_STEP)


def _needs_contrast(ctx: ActionContext, pick: Pick) -> str | None:
    lay = target_layer(ctx, pick)
    if lay is None or not hasattr(lay, "contrast_limits"):
        return "not an image layer"
    return None if lay.contrast_limits is not None else "the contrast is automatic"


def _contrast(ctx: ActionContext, pick: Pick, factor: float) -> tuple[float, float]:
    lay = target_layer(ctx, pick)
    lo, hi = (float(v) for v in lay.contrast_limits)
    mid, half = (lo + hi) / 2, max((hi - lo) / 2, 1e-9) * factor
    lay.contrast_limits = (mid - half, mid + half)
    ctx.notify(f"{lay.name}: contrast {mid - half:.4g}..{mid + half:.4g}")
    return lay.contrast_limits  # type: ignore[no-any-return]


@ACTIONS.action(
    "layer.more_contrast",
    "More contrast",
    f"narrow the image's contrast window about its centre (x{CONTRAST_FACTOR:g})",
    headset="wrist panel: contrast +",
    enabled=_needs_contrast,
)
def _more_contrast(ctx: ActionContext, pick: Pick) -> tuple[float, float]:
    return _contrast(ctx, pick, CONTRAST_FACTOR)


@ACTIONS.action(
    "layer.less_contrast",
    "Less contrast",
    f"widen the image's contrast window about its centre (x{1 / CONTRAST_FACTOR:g})",
    headset="wrist panel: contrast -",
    enabled=_needs_contrast,
)
def _less_contrast(ctx: ActionContext, pick: Pick) -> tuple[float, float]:
    return _contrast(ctx, pick, 1 / CONTRAST_FACTOR)


@ACTIONS.action(
    "layer.next_colormap",
    "Next colormap",
    "give the image the next colormap (" + ", ".join(COLORMAPS) + ")",
    headset="wrist panel: colormap",
    enabled=lambda ctx, pick: (
        None if getattr(target_layer(ctx, pick), "kind", None) == "image" else "not an image layer"
    ),
)
def _next_colormap(ctx: ActionContext, pick: Pick) -> str:
    lay = target_layer(ctx, pick)
    i = COLORMAPS.index(lay.colormap) + 1 if lay.colormap in COLORMAPS else 0
    lay.colormap = COLORMAPS[i % len(COLORMAPS)]
    ctx.notify(f"{lay.name}: {lay.colormap}")
    return str(lay.colormap)


@ACTIONS.action(
    "view.next_background",
    "Next background",
    "the next background (the headset: dark room, light room, black, white)",
    headset="wrist panel: background",
    enabled=lambda ctx, pick: (
        None
        if getattr(ctx, "next_background", None) is not None
        else "this view has no background choices"
    ),
)
def _next_background(ctx: ActionContext, pick: Pick) -> str:
    name = str(ctx.next_background())  # type: ignore[attr-defined]
    ctx.notify(f"background: {name}")
    return name
