"""Display actions: how an image layer is shown (contrast, colormap, gamma, invert, mode).

Display state is not an edit (nothing to undo or journal; a saved scene keeps it),
but it is a user intent like any other: the desktop's layer panel, the headset and
a script set it through :func:`set_display`, and the toggles are registered actions
(``image.invert``, ``image.next_rendering``) so menus, keys and the docs' tables
come from the registry.
"""

from __future__ import annotations

from typing import Any

from analysis.errors import ParameterError

from ._context import ActionContext
from ._registry import ACTIONS
from ._select import Pick

__all__ = ["DISPLAY_FIELDS", "RENDERING_MODES", "image_layer", "set_display"]

#: Fields of a layer that :func:`set_display` may change.
DISPLAY_FIELDS = (
    "opacity",
    "colormap",
    "contrast_limits",
    "gamma",
    "invert",
    "slice_invert",
    "rendering",
    "iso_threshold",
    "visible",
)
#: The volume rendering modes of an image layer, in the order ``image.next_rendering`` cycles.
RENDERING_MODES = ("composite", "mip", "isosurface")


def image_layer(ctx: ActionContext, name: str | None = None) -> Any:
    """The image layer named ``name`` (None: the first image layer), or None."""
    for lay in ctx.scene.layers:
        if getattr(lay, "kind", None) == "image" and (name is None or lay.name == name):
            return lay
    return None


def set_display(ctx: ActionContext, layer: str, **changes: Any) -> None:
    """Change display fields of layer ``layer`` at once (one event per field, once consistent).

    Raises
    ------
    ParameterError
        No such layer, a field that is not display state or that the layer lacks, or a
        value the layer refuses (e.g. gamma <= 0).
    """
    names = ctx.scene.layers.names
    if layer not in names:
        raise ParameterError(f"no layer {layer!r} (have: {', '.join(names) or 'none'})")
    lay = ctx.scene.layers.get(layer)
    bad = [k for k in changes if k not in DISPLAY_FIELDS or k not in type(lay).model_fields]
    if bad:
        raise ParameterError(f"layer {layer!r} has no display setting {', '.join(bad)}")
    try:
        lay.update(changes)
    except ValueError as exc:  # pydantic's validation error
        raise ParameterError(f"layer {layer!r}: {exc}") from None


def _has_image(ctx: ActionContext, pick: Pick) -> str | None:
    return None if image_layer(ctx) is not None else "no image layer is open"


@ACTIONS.action(
    "image.invert",
    "Invert image",
    "invert the image's grey values on the slices and in 3D together",
    enabled=_has_image,
)
def _invert(ctx: ActionContext, pick: Pick) -> bool:
    lay = image_layer(ctx, pick.layer)
    set_display(ctx, lay.name, invert=not lay.invert, slice_invert=not lay.slice_invert)
    ctx.notify(f"{lay.name}: slices {'inverted' if lay.slice_invert else 'as acquired'}")
    return bool(lay.slice_invert)


@ACTIONS.action(
    "image.next_rendering",
    "Next volume rendering mode",
    "cycle the 3D rendering of the image: composite, maximum intensity, isosurface",
    enabled=_has_image,
)
def _next_rendering(ctx: ActionContext, pick: Pick) -> str:
    lay = image_layer(ctx, pick.layer)
    i = RENDERING_MODES.index(lay.rendering)
    mode = RENDERING_MODES[(i + 1) % len(RENDERING_MODES)]
    set_display(ctx, lay.name, rendering=mode)
    ctx.notify(f"{lay.name}: {mode} rendering")
    return mode
