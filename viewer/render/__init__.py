"""Renderer: the only package that imports VTK (all imports live in ``_vtk.py``).

:class:`SceneRenderer` draws a :class:`viewer.scene.Scene` offscreen (EGL when
there is no display) or into a given render window. Each layer type has one
adapter class (``VtkImage``, ``VtkLabels``, ``VtkTracks``, ``VtkPoints``,
``VtkMeasurements``) found through :data:`layer_to_visual`; to draw a new layer
type, subclass :class:`VtkLayer` (fill ``props``, implement ``_update(ctx)``) and
register it there. World zyx µm become VTK xyz only here.

Whole-level volumes are lists of :class:`VolumeBrick` (one GPU ray-cast mapper each,
shared property and clipping planes). Streamed volumes (:class:`StreamingController`)
are drawn in one ray-casting pass per layer by :class:`GLVolumeHost` inside VTK's frame
(:class:`VtkRaycastImage`, :class:`VtkRaycastLabels`; GL core ``viewer.raycast``).
How finely volumes are ray cast is
a :class:`VolumeQuality` (``SceneRenderer(quality=...)`` / ``set_quality``:
``"still"`` by default, ``"interactive"`` while the camera moves, ``"fine"``).
XR renders eye views with
:meth:`SceneRenderer.render_views` / :meth:`SceneRenderer.apply_view`.
Headless helpers: :func:`render_store_to_png`, :func:`write_movie`.
Multiscale streaming: :class:`StreamingController` attaches a
``viewer.streaming.VolumeStreamer`` to every Image layer (label volume, and label
surfaces: :class:`VtkStreamedSurfaces`, per-brick meshes built off the frame thread) of a
renderer (:func:`render_streamed` for one-shot pictures; ``vrscope render`` and
``vrscope movie`` stream by default).
"""

from . import _vtk  # noqa: F401  (chooses EGL before any window exists)
from ._annotations import VtkMeasurements, VtkPoints
from ._base import FrameContext, VtkLayer, choose_level
from ._canvas import (
    EyeView,
    PickResult,
    SceneRenderer,
    layer_to_visual,
    perspective,
    stereo_views,
)
from ._colors import colormap_table, id_colors, values_to_colors
from ._gl_volumes import GLFrameStats, GLVolumeHost, VtkRaycastImage, VtkRaycastLabels
from ._headless import (
    MAX_MOVIE_SIZE,
    build_store_scene,
    feature_values,
    parse_clip,
    render_store_to_png,
    render_to_array,
    timelapse_step,
    turntable_step,
    write_movie,
)
from ._image import (
    QUALITY_PRESETS,
    VolumeBrick,
    VolumeQuality,
    VtkImage,
    apply_volume_quality,
    coarse_range,
    coarsen_quality,
    display_fraction,
    image_colors,
    image_data,
    resolve_quality,
)
from ._labels import VtkLabels
from ._meshes import LabelMeshCache, decimate_to_budget, export_meshes, label_mesh
from ._streamed_surfaces import BrickSurface, VtkStreamedSurfaces, brick_surface
from ._streaming import (
    StreamingController,
    render_streamed,
    use_coarse_contrast,
)
from ._tracks import VtkTracks, track_window
from ._xr_target import TEXT_DEG, VtkXrTarget, XrOverlay, XrText, text_angle_rad, text_px

__all__ = [
    "MAX_MOVIE_SIZE",
    "QUALITY_PRESETS",
    "VolumeQuality",
    "apply_volume_quality",
    "brick_surface",
    "coarsen_quality",
    "resolve_quality",
    "build_store_scene",
    "feature_values",
    "parse_clip",
    "render_store_to_png",
    "render_to_array",
    "timelapse_step",
    "turntable_step",
    "write_movie",
    "BrickSurface",
    "EyeView",
    "FrameContext",
    "LabelMeshCache",
    "PickResult",
    "SceneRenderer",
    "StreamingController",
    "VolumeBrick",
    "VtkImage",
    "VtkLabels",
    "VtkLayer",
    "VtkMeasurements",
    "VtkPoints",
    "VtkRaycastImage",
    "VtkRaycastLabels",
    "VtkStreamedSurfaces",
    "VtkTracks",
    "GLFrameStats",
    "GLVolumeHost",
    "VtkXrTarget",
    "XrOverlay",
    "XrText",
    "TEXT_DEG",
    "text_angle_rad",
    "text_px",
    "choose_level",
    "coarse_range",
    "colormap_table",
    "decimate_to_budget",
    "display_fraction",
    "export_meshes",
    "id_colors",
    "image_colors",
    "image_data",
    "label_mesh",
    "layer_to_visual",
    "perspective",
    "render_streamed",
    "stereo_views",
    "track_window",
    "use_coarse_contrast",
    "values_to_colors",
]
