"""Headless pictures and movies: build a scene from a store, render it to PNG or video.

Used by ``vrscope render``, ``vrscope movie`` and ``vrscope demo``. Stores are
opened through :mod:`analysis.io` (the only package that opens them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from analysis.volume import VolumeSource
from viewer.scene import ClippingPlane, Image, Labels, Scene, Tracks

from ._canvas import SceneRenderer

__all__ = [
    "MAX_MOVIE_SIZE",
    "build_store_scene",
    "feature_values",
    "parse_clip",
    "render_store_to_png",
    "render_to_array",
    "timelapse_step",
    "turntable_step",
    "write_movie",
]

log = logging.getLogger(__name__)

MAX_MOVIE_SIZE = (4096, 2160)  # DCI 4K; UHD 3840 x 2160 fits
_CLIP = re.compile(r"^\s*([zyx])\s*([<>=])\s*([-+0-9.eE]+)\s*(um|µm)?\s*$")


def parse_clip(spec: str, lo: npt.ArrayLike, hi: npt.ArrayLike) -> ClippingPlane:
    """A clipping plane from ``"z=0.5"``, ``"x<0.3"`` or ``"y>12um"``.

    ``AXIS=F`` and ``AXIS>F`` keep the part beyond fraction ``F`` (0..1) of the
    scene's extent along that axis, ``AXIS<F`` the part before it; with a ``um``
    suffix the number is a world position in µm instead of a fraction.
    """
    m = _CLIP.match(spec)
    if m is None:
        raise ParameterError(
            f"bad clip {spec!r}: expected AXIS=FRACTION, AXIS<FRACTION or AXIS>POSum, e.g. z=0.5"
        )
    axis, op, num, unit = m.groups()
    k = "zyx".index(axis)
    value = float(num)
    lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if unit is None:
        if not 0.0 <= value <= 1.0:
            raise ParameterError(f"clip {spec!r}: the fraction must be in 0..1 (or add 'um')")
        pos = lo_a[k] + value * (hi_a[k] - lo_a[k])
    else:
        pos = value
    origin = (lo_a + hi_a) / 2
    origin[k] = pos
    normal = np.zeros(3)
    normal[k] = -1.0 if op == "<" else 1.0
    return ClippingPlane(
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
    )


def feature_values(table: Any, column: str, layer_name: str | None = None) -> dict[int, float]:
    """``label -> value`` from a features table (pandas DataFrame with a ``label`` column).

    ``column`` may be a ratio ``a/b`` of two columns (e.g.
    ``surface_area_um2/volume_um3``). Rows are restricted to ``layer_name`` when
    the table has a ``kind`` or ``layer`` column naming the label image.
    """
    cols = list(table.columns)
    if "label" not in cols:
        raise ParameterError(f"features table has no 'label' column (columns: {', '.join(cols)})")
    df = table
    for key in ("layer", "kind"):
        if layer_name is not None and key in cols and (df[key] == layer_name).any():
            df = df[df[key] == layer_name]
            break
    parts = column.split("/")
    for p in parts:
        if p not in cols:
            raise ParameterError(f"features table has no column {p!r} (columns: {', '.join(cols)})")
    if len(parts) == 1:
        values = df[parts[0]].to_numpy(dtype=np.float64)
    elif len(parts) == 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = df[parts[0]].to_numpy(np.float64) / df[parts[1]].to_numpy(np.float64)
    else:
        raise ParameterError(f"--color-by {column!r}: use one column or a ratio a/b")
    labels = df["label"].to_numpy(dtype=np.int64)
    return {int(k): float(x) for k, x in zip(labels, values, strict=True) if np.isfinite(x)}


def looks_dark_on_light(source: VolumeSource) -> bool:
    """Whether a volume shows dark structure on a grey or light ground, like FIB-SEM.

    Decided on the coarsest level (a few kB). Fluorescence is mostly dark background
    with sparse bright signal, so its median sits near the bottom of the 1-99 %
    percentile range; EM's median sits mid-range or above (neuropil, cytoplasm, resin).
    Inverting such a volume gives what people expect from a volume renderer: the
    structure bright on a transparent black.
    """
    coarse = np.asarray(source.read(len(source.levels) - 1), dtype=np.float64)
    lo, hi = np.percentile(coarse, [1, 99])
    return bool(hi > lo and (np.median(coarse) - lo) / (hi - lo) > 0.4)


def build_store_scene(
    store: str | Path | None,
    labels: Sequence[str] | None = None,
    color_by: str | None = None,
    features: Any = None,
    tracks: Any = None,
    time: float | None = None,
    tail: float = 20.0,
    clips: Sequence[str] = (),
    azimuth: float = 30.0,
    elevation: float = 20.0,
    zoom: float = 1.0,
    level: int | None = None,
    rendering: str = "composite",
    invert: bool | None = None,
    show_image: bool = True,
    colormap: str = "gray",
) -> Scene:
    """A scene of an OME-Zarr store, its label images and a track graph, framed and clipped.

    Parameters
    ----------
    store : path or URL, optional
        Image store (``analysis.io.open_volume``); None for tracks only.
    labels : list of str, optional
        Label images to draw as surfaces; ``[]`` means all of them, None none.
    color_by : str, optional
        Feature column (or ratio ``a/b``) colouring the first labels layer.
    features : pandas.DataFrame, optional
        Table with a ``label`` column (see :func:`feature_values`).
    tracks : TrackGraph-like, optional
    time : float, optional
        Current time (default: the last time point of the tracks, else 0).
    tail : float, default: 20
        Track tail length in time points.
    clips : list of str
        Clip specs (:func:`parse_clip`).
    azimuth, elevation : float, degrees
    zoom : float, default: 1 (> 1 comes closer)
    level : int, optional
        Pyramid level for the image and labels (default: by the renderer's voxel budget).
    invert : bool, optional
        Invert the grey values; default: automatic (:func:`looks_dark_on_light`).
    """
    scene = Scene()
    if store is not None:
        from analysis.io import list_labels, open_labels, open_volume

        src = open_volume(str(store))
        if show_image:
            scene.add(
                Image(
                    src,
                    name=src.name or "image",
                    source=str(store),
                    rendering=rendering,
                    invert=looks_dark_on_light(src) if invert is None else invert,
                    level=level,
                    colormap=colormap,
                    # With surfaces drawn the volume is context: keep it translucent
                    # enough that the objects inside it stay visible.
                    opacity=0.35 if labels is not None else 1.0,
                )
            )
        if labels is not None:
            available = list_labels(str(store))
            names = list(labels) or available
            for name in names:
                if name not in available:
                    raise ParameterError(
                        f"no label image {name!r} in {store} (have: {', '.join(available) or 'none'})"
                    )
            for i, name in enumerate(names):
                lay = Labels(
                    open_labels(str(store), name),
                    name=name,
                    source=f"{store}/labels/{name}",
                    level=level,
                )
                if color_by is not None and i == 0:
                    if features is None:
                        raise ParameterError("--color-by needs --features TABLE")
                    lay.set_feature(color_by, feature_values(features, color_by, name))
                    lay.feature = color_by
                    lay.color_mode = "feature"
                scene.add(lay)
    elif labels:
        raise ParameterError("--labels needs an image store")
    if tracks is not None:
        lay_t = Tracks.from_track_graph(tracks, name="tracks", tail_length=tail)
        scene.add(lay_t)
        if lay_t.data is not None and len(lay_t.data.t):
            scene.current_time = float(lay_t.data.t.max()) if time is None else float(time)
            # Heads and tubes scale with the lineage so they stay visible at any size.
            lo, hi = lay_t.extent_world() or (np.zeros(3), np.ones(3))
            size = float(np.linalg.norm(hi - lo))
            lay_t.head_radius_um = max(size / 300, 1e-3)
            lay_t.tube_radius_um = max(size / 800, 1e-3)
    elif time is not None:
        scene.current_time = float(time)
    if not len(scene.layers):
        raise ParameterError("nothing to render: give an image store and/or --tracks")
    lo, hi = scene.extent_world()
    for spec in clips:
        scene.clipping_planes.append(parse_clip(spec, lo, hi))
    scene.reset_camera()
    scene.camera.orbit(azimuth=azimuth, elevation=elevation)
    if zoom <= 0:
        raise ParameterError(f"--zoom must be > 0, got {zoom}")
    scene.camera.dolly(zoom)
    return scene


def render_to_array(
    scene: Scene, size: tuple[int, int] = (800, 600), voxel_budget: int = 2**24, **kw: Any
) -> npt.NDArray[np.uint8]:
    """Render ``scene`` offscreen once and return the (H, W, 3) image."""
    with SceneRenderer(scene, size=size, voxel_budget=voxel_budget, **kw) as r:
        return r.screenshot()


def render_store_to_png(
    store_path: str | Path | None,
    out_png: str | Path,
    size: tuple[int, int] = (800, 600),
    voxel_budget: int = 2**24,
    **scene_kw: Any,
) -> Path:
    """Render a store (image, labels, tracks; see :func:`build_store_scene`) to a PNG file."""
    import imageio.v3 as iio

    _check_size(size, (16384, 16384))
    scene = build_store_scene(store_path, **scene_kw)
    img = render_to_array(scene, size=size, voxel_budget=voxel_budget)
    out = Path(out_png)
    iio.imwrite(out, img)
    log.info("wrote %s (%d x %d)", out, size[0], size[1])
    return out


def _check_size(size: tuple[int, int], limit: tuple[int, int]) -> None:
    w, h = size
    if w < 16 or h < 16:
        raise ParameterError(f"image size {w}x{h} is too small (at least 16x16)")
    if max(w, h) > max(limit) or min(w, h) > min(limit):
        raise ParameterError(f"image size {w}x{h} exceeds {limit[0]}x{limit[1]}")


def write_movie(
    renderer: SceneRenderer,
    out: str | Path,
    n_frames: int,
    step: Callable[[int], None],
    fps: int = 30,
    quality: int = 8,
    progress: bool = True,
) -> Path:
    """Render ``n_frames`` frames into a video with imageio's bundled ffmpeg (H.264).

    ``step(i)`` changes the scene before frame ``i`` (turn the camera, advance the
    time). Frame sizes must be even (yuv420p) and at most 4096 x 2160; ``fps`` 1..60.
    """
    import imageio.v2 as imageio
    from tqdm import tqdm

    w, h = renderer.size
    _check_size((w, h), MAX_MOVIE_SIZE)
    if w % 2 or h % 2:
        raise ParameterError(f"movie size {w}x{h}: width and height must be even")
    if not 1 <= fps <= 60:
        raise ParameterError(f"fps must be 1..60, got {fps}")
    if n_frames < 1:
        raise ParameterError(f"a movie needs at least one frame, got {n_frames}")
    out = Path(out)
    if out.suffix.lower() not in {".mp4", ".mkv", ".mov", ".avi"}:
        raise ParameterError(f"movie file must end in .mp4, .mkv, .mov or .avi, not {out.name!r}")
    writer = imageio.get_writer(
        str(out),
        fps=fps,
        codec="libx264",
        quality=quality,
        macro_block_size=2,
        pixelformat="yuv420p",
        ffmpeg_log_level="error",
    )
    try:
        for i in tqdm(range(n_frames), desc="frames", unit="frame", disable=not progress):
            step(i)
            writer.append_data(renderer.screenshot())
    finally:
        writer.close()
    return out


def turntable_step(scene: Scene, n_frames: int, degrees: float = 360.0) -> Callable[[int], None]:
    """A ``step`` for :func:`write_movie` turning the camera ``degrees`` over the movie."""

    def step(i: int) -> None:
        if i:
            scene.camera.orbit(azimuth=degrees / n_frames)

    return step


def timelapse_step(
    scene: Scene, times: Sequence[float] | Mapping[int, float]
) -> Callable[[int], None]:
    """A ``step`` setting the scene time to ``times[i]`` before frame ``i``."""

    def step(i: int) -> None:
        scene.current_time = float(times[i])

    return step
