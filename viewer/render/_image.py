"""``VtkImage``: GPU ray-cast volume rendering of an ``Image`` layer, brick by brick.

A volume is drawn as a list of :class:`VolumeBrick` (array + world placement),
one ``vtkVolume`` + ``vtkOpenGLGPUVolumeRayCastMapper`` per brick, all sharing
one ``vtkVolumeProperty`` and the scene's clipping planes, sorted back to front.
RENDERING.md measured this against ``vtkMultiBlockVolumeMapper``: it honours
clipping planes (the multi-block mapper ignores them) and is ~3-6x faster per
frame. By default the layer is one brick, a whole pyramid level chosen by the
voxel budget; the streaming code (issue 6) calls :meth:`VtkImage.set_bricks`
with the resident bricks of mixed resolution instead. Neighbouring bricks must
share their boundary plane of voxels (one voxel of overlap) or seams show.

How finely volumes are ray cast is a :class:`VolumeQuality` (presets in
:data:`QUALITY_PRESETS`), applied by the renderer to every GPU volume mapper
each frame (:func:`apply_volume_quality`): samples along a ray per voxel of
each brick, and rays per *projected* voxel on screen (VTK's
``ImageSampleDistance``: when a voxel covers several pixels, as in a headset or
a zoomed-in view, a ray per pixel re-samples the same interpolated voxels, so
the volume is cast at a coarser ray spacing and upscaled). docs/benchmarks.md
("Rendering") has the timings and the error of each preset against a fine
reference render.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import ParameterError
from analysis.volume import VolumeSource
from viewer.scene import Image

from . import _vtk as v
from ._base import FrameContext, VtkLayer, choose_level, read_level_zyx
from ._colors import colormap_table

__all__ = [
    "QUALITY_PRESETS",
    "VolumeBrick",
    "VolumeQuality",
    "VtkImage",
    "apply_volume_quality",
    "coarsen_quality",
    "display_fraction",
    "image_colors",
    "image_data",
    "resolve_quality",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumeBrick:
    """A block of voxels placed in the world.

    Parameters
    ----------
    level : int
        Pyramid level the voxels come from.
    region : tuple of slices
        Where in that level (voxels, z-y-x); bookkeeping for the streamer.
    array : (Z, Y, X) array
    origin_um : (3,) floats
        World zyx position of the centre of voxel ``array[0, 0, 0]``.
    spacing_um : (3,) floats
        Voxel size zyx in µm.
    """

    level: int
    region: tuple[slice, ...]
    array: npt.NDArray[Any]
    origin_um: tuple[float, float, float]
    spacing_um: tuple[float, float, float]


@dataclass(frozen=True)
class VolumeQuality:
    """How finely the GPU ray caster samples volumes.

    Parameters
    ----------
    samples_per_voxel : float, default: 1
        Samples along each ray per voxel: the sample distance is the brick's
        smallest voxel size divided by this. Opacity is corrected for the sample
        distance (``ScalarOpacityUnitDistance``), so the look does not change,
        only how finely thin structures are resolved along the ray.
    rays_per_voxel : float, default: 1
        Rays per projected voxel on screen. The ray spacing (VTK's
        ``ImageSampleDistance``, in pixels) is the projected size of a voxel at
        the far side of the brick divided by this, so no part of the brick gets
        fewer rays than this per voxel; the volume image is upscaled
        (bilinear) into the frame.
    min_ray_spacing_px, max_ray_spacing_px : float, default: 1 and 1
        Bounds of the ray spacing in pixels. ``max_ray_spacing_px=1`` casts one
        ray per pixel whatever the zoom; ``min_ray_spacing_px > 1`` casts fewer
        rays than voxels (interactive frames).

    Raises
    ------
    ParameterError
        A non-positive value, or spacing bounds below one pixel or out of order.
    """

    samples_per_voxel: float = 1.0
    rays_per_voxel: float = 1.0
    min_ray_spacing_px: float = 1.0
    max_ray_spacing_px: float = 1.0

    def __post_init__(self) -> None:
        if not (self.samples_per_voxel > 0 and self.rays_per_voxel > 0):
            raise ParameterError(
                "volume quality: samples_per_voxel and rays_per_voxel must be > 0, got "
                f"{self.samples_per_voxel} and {self.rays_per_voxel}"
            )
        if not 1.0 <= self.min_ray_spacing_px <= self.max_ray_spacing_px:
            raise ParameterError(
                "volume quality: need 1 <= min_ray_spacing_px <= max_ray_spacing_px, got "
                f"{self.min_ray_spacing_px} and {self.max_ray_spacing_px}"
            )


#: Named qualities. ``"still"`` is the default of every renderer: 1 sample per voxel
#: and a ray per pixel (a coarser ray spacing upscales the volume's silhouette and
#: clipped faces into visible steps, so it is kept for moving frames).
#: ``"interactive"``, for frames drawn while the camera moves (the desktop's drag):
#: rays 2 px apart, further apart where voxels project larger (one ray per projected
#: voxel, up to 6 px). ``"fine"`` is the former default (2 samples per voxel, a ray
#: per pixel), the reference the others are measured against.
QUALITY_PRESETS: dict[str, VolumeQuality] = {
    "fine": VolumeQuality(2.0, 1.0, 1.0, 1.0),
    "still": VolumeQuality(1.0, 1.0, 1.0, 1.0),
    "interactive": VolumeQuality(1.0, 1.0, 2.0, 6.0),
}


def resolve_quality(quality: str | VolumeQuality) -> VolumeQuality:
    """A :class:`VolumeQuality` from itself or a preset name (:data:`QUALITY_PRESETS`)."""
    if isinstance(quality, VolumeQuality):
        return quality
    try:
        return QUALITY_PRESETS[str(quality)]
    except KeyError:
        names = ", ".join(QUALITY_PRESETS)
        raise ParameterError(f"unknown volume quality {quality!r} (one of {names})") from None


def coarsen_quality(quality: VolumeQuality, factor: float) -> VolumeQuality:
    """``quality`` with about ``factor`` (>= 1) times fewer rays, for adaptive frame rates.

    Rays are cast at least ``sqrt(factor)`` times further apart, and further
    still (up to ``3 * sqrt(factor)`` px) where voxels project larger than
    that; the sample distance along rays is kept. Measured (docs/benchmarks.md,
    "Rendering"): at headset resolution a voxel covers several pixels, and
    spacing rays out costs far less image quality than spacing samples out
    along them for the same time. Surfaces, lines and text keep full
    resolution. ``coarsen_quality(QUALITY_PRESETS["still"], 4)`` is the
    ``"interactive"`` preset; ``factor <= 1`` returns ``quality`` unchanged.
    """
    f = float(factor)
    if not f > 1.0:
        return quality
    root = float(np.sqrt(f))
    return VolumeQuality(
        samples_per_voxel=quality.samples_per_voxel,
        rays_per_voxel=quality.rays_per_voxel,
        min_ray_spacing_px=quality.min_ray_spacing_px * root,
        max_ray_spacing_px=max(quality.max_ray_spacing_px, 3.0) * root,
    )


class _MapperGeometry:
    """Mappers' bounds corners and smallest voxel sizes, and the values last set on them.

    Reading them through VTK costs a few microseconds per mapper; a streamed
    layer has hundreds of bricks and XR has a ~2 ms CPU budget per frame for
    everything. So the arrays are kept while the list of mappers is the same and
    the caller says nothing changed (``refresh=False``: between the eyes of one
    frame), and per mapper by its input's modification time otherwise.
    """

    def __init__(self) -> None:
        self._cache: dict[int, tuple[int, Any, npt.NDArray[np.float64], float]] = {}
        self._key: tuple[int, ...] = ()
        self.corners = np.zeros((0, 8, 4))
        self.spacing = np.zeros(0)
        #: (N, 2): sample distance and ray spacing last given to each mapper (NaN: none).
        self.applied = np.zeros((0, 2))

    def update(self, mappers: Sequence[Any], refresh: bool = True) -> None:
        """Make :attr:`corners` (N, 8, 4 homogeneous xyz) and :attr:`spacing` (N,) current."""
        key = tuple(id(m) for m in mappers)
        if key == self._key and not refresh:
            return
        n = len(mappers)
        corners = np.empty((n, 8, 4))
        spacing = np.empty(n)
        applied = np.full((n, 2), np.nan)
        old = {k: i for i, k in enumerate(self._key)}
        seen: dict[int, tuple[int, Any, npt.NDArray[np.float64], float]] = {}
        for i, m in enumerate(mappers):
            data = m.GetInput()
            mtime = int(data.GetMTime()) if data is not None else -1
            hit = self._cache.get(id(m))
            if hit is None or hit[0] != mtime or hit[1] is not m:
                if data is None:
                    hit = (mtime, m, np.zeros((8, 4)), 1.0)
                else:
                    b = np.asarray(data.GetBounds(), dtype=np.float64).reshape(3, 2)
                    grid = np.stack(np.meshgrid(b[0], b[1], b[2], indexing="ij"), -1)
                    c = np.c_[grid.reshape(8, 3), np.ones(8)]
                    hit = (mtime, m, c, float(min(data.GetSpacing())))
            elif id(m) in old:
                applied[i] = self.applied[old[id(m)]]
            seen[id(m)] = hit
            corners[i] = hit[2]
            spacing[i] = hit[3]
        self._cache = seen
        self._key = key
        self.corners, self.spacing, self.applied = corners, spacing, applied


def _matrix_np(m: Any) -> npt.NDArray[np.float64]:
    return np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)], dtype=np.float64)


def apply_volume_quality(
    mappers: Sequence[Any],
    quality: VolumeQuality,
    camera: Any,
    size: tuple[int, int],
    geometry: _MapperGeometry | None = None,
    refresh: bool = True,
) -> npt.NDArray[np.float64]:
    """Set sample distance and ray spacing of GPU volume mappers for one view.

    Parameters
    ----------
    mappers : sequence of vtkGPUVolumeRayCastMapper
        Inputs are ``vtkImageData`` in world xyz (no prop transform).
    quality : VolumeQuality
    camera : vtkCamera
        The view about to be drawn (its explicit projection when it has one, as XR's).
    size : (width, height)
        Pixels of the image drawn.
    geometry : _MapperGeometry, optional
        Cache of the mappers' bounds and voxel sizes (keep one per renderer).
    refresh : bool, default: True
        Re-read bounds and voxel sizes of mappers whose input changed; False
        trusts the cache when the mappers are the same (another eye, same frame).

    Returns
    -------
    (N,) float
        The ray spacing (pixels) given to each mapper.
    """
    if not len(mappers):
        return np.zeros(0)
    geometry = geometry if geometry is not None else _MapperGeometry()
    geometry.update(mappers, refresh)
    corners, spacing = geometry.corners, geometry.spacing
    w, h = max(int(size[0]), 1), max(int(size[1]), 1)
    view = _matrix_np(camera.GetViewTransformMatrix())
    proj = _matrix_np(camera.GetProjectionTransformMatrix(w / h, -1.0, 1.0))
    # Pixels per world unit: NDC spans 2 over the image, so x scales by P00 * w / 2.
    scale = min(abs(proj[0, 0]) * w, abs(proj[1, 1]) * h) / 2.0
    if abs(proj[3, 2]) > 1e-12:  # perspective: divide by the eye depth
        depth = -(corners @ view.T)[..., 2]  # (N, 8), > 0 in front of the eye
        far = depth.max(axis=1)
        px = np.where(far > 0, spacing * scale / np.maximum(far, 1e-12), 0.0)
    else:
        px = spacing * scale
    ray = np.clip(
        px / quality.rays_per_voxel, quality.min_ray_spacing_px, quality.max_ray_spacing_px
    )
    # Steps of 1/4 px: a new spacing reallocates the mapper's reduced-size buffers.
    ray = np.maximum(np.floor(ray * 4.0) / 4.0, quality.min_ray_spacing_px)
    sample = spacing / quality.samples_per_voxel
    done = geometry.applied
    for i in np.flatnonzero((done[:, 0] != sample) | (done[:, 1] != ray)):
        m = mappers[int(i)]
        m.SetAutoAdjustSampleDistances(False)
        m.SetSampleDistance(float(sample[i]))
        m.SetImageSampleDistance(float(ray[i]))
        done[i] = (sample[i], ray[i])
    return ray


def image_data(
    array: npt.NDArray[Any],
    origin_um: Sequence[float] | npt.NDArray[np.float64],
    spacing_um: Sequence[float] | npt.NDArray[np.float64],
) -> Any:
    """``vtkImageData`` over a (Z, Y, X) array without reordering the voxels.

    A C-ordered (z, y, x) array already has x varying fastest, which is VTK's
    point order, so only the three vectors are flipped to (x, y, z).
    """
    arr = np.ascontiguousarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    img = v.vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    img.SetSpacing(*(float(s) for s in np.asarray(spacing_um)[::-1]))
    img.SetOrigin(*(float(s) for s in np.asarray(origin_um)[::-1]))
    scalars = v.numpy_to_vtk(arr.reshape(-1), deep=True)
    scalars.SetName("values")
    img.GetPointData().SetScalars(scalars)
    return img


class VtkImage(VtkLayer):
    """Adapter for :class:`viewer.scene.Image` (see the module docstring)."""

    def __init__(self, layer: Image) -> None:
        super().__init__(layer)
        self.layer: Image = layer
        self.property = v.vtkVolumeProperty()
        self.property.SetInterpolationTypeToLinear()
        self._bricks: list[VolumeBrick] = []
        self._external = False
        self._data_range: tuple[float, float] = (0.0, 1.0)
        #: What the opacity ramp spans, fixed at the first draw (:meth:`value_range`).
        self._opacity_range: tuple[float, float] | None = None
        self._level = 0
        self._t_index = -1
        self._planes: Any = None

    @property
    def time_dependent(self) -> bool:
        """A source with a ``t`` axis is redrawn when the scene time changes."""
        return bool(self.layer.data is not None and "t" in self.layer.data.axes)

    # -- bricks ---------------------------------------------------------------
    @property
    def bricks(self) -> tuple[VolumeBrick, ...]:
        return tuple(self._bricks)

    @property
    def level(self) -> int:
        """Pyramid level drawn (of the last whole-level brick)."""
        return self._level

    def set_bricks(self, bricks: Sequence[VolumeBrick] | None) -> None:
        """Draw these bricks instead of a whole level (``None``: back to a whole level)."""
        self._external = bricks is not None
        self._bricks = list(bricks or [])
        if bricks is not None:
            self._data_range = _range(b.array for b in self._bricks)
        self._rebuild_volumes()
        self.dirty = True
        self.data_dirty = bricks is None

    def _rebuild_volumes(self) -> None:
        self.props = []
        for b in self._bricks:
            mapper = v.vtkOpenGLGPUVolumeRayCastMapper()
            mapper.SetInputData(image_data(b.array, b.origin_um, b.spacing_um))
            # Sampling is set per frame by the renderer (apply_volume_quality).
            mapper.SetAutoAdjustSampleDistances(False)
            mapper.SetSampleDistance(float(min(b.spacing_um)))
            if self._planes is not None:
                mapper.SetClippingPlanes(self._planes)
            vol = v.vtkVolume()
            vol.SetMapper(mapper)
            vol.SetProperty(self.property)
            self.props.append(vol)

    def set_clipping(self, planes: Any) -> None:
        self._planes = planes
        for m in self.mappers():
            m.SetClippingPlanes(planes)
            m.Modified()

    # -- update ---------------------------------------------------------------
    def _update(self, ctx: FrameContext) -> None:
        src = self.layer.data
        t_index = int(round(ctx.current_time)) if self.time_dependent else 0
        if src is not None and not self._external:
            level = choose_level(src, ctx.voxel_budget, self.layer.level)
            if (
                self.data_dirty
                or level != self._level
                or t_index != self._t_index
                or not self._bricks
            ):
                if self.data_dirty:
                    self._opacity_range = None  # new data: its own range
                arr, spacing, origin = read_level_zyx(src, level, t_index=t_index)
                self._level, self._t_index = level, t_index
                self._bricks = [
                    VolumeBrick(
                        level,
                        tuple(slice(0, n) for n in arr.shape),
                        arr,
                        (float(origin[0]), float(origin[1]), float(origin[2])),
                        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
                    )
                ]
                self._data_range = _range([arr])
                self._rebuild_volumes()
                log.debug("image %s: level %d, shape %s", self.layer.name, level, arr.shape)
        self._update_property()

    def value_range(self) -> tuple[float, float]:
        """The values the opacity ramp spans, fixed when the layer is first drawn.

        The layer's contrast limits then, or without them the data's range (0.5 and
        99.8 percentiles) the adapter measured; a streamed layer never reads a whole
        level for it. Narrowing the contrast later changes colours only and never
        turns the volume into an opaque box (issue 18.8); whole-level and streamed
        pictures of a layer with the same limits stay alike.
        """
        if self._opacity_range is None:
            lim = self.layer.contrast_limits
            lo, hi = (float(lim[0]), float(lim[1])) if lim is not None else self._data_range
            self._opacity_range = (lo, hi)
        return self._opacity_range

    def _update_property(self) -> None:
        lay = self.layer
        lo, hi = lay.contrast_limits if lay.contrast_limits is not None else self._data_range
        if hi <= lo:
            hi = lo + 1.0
        vlo, vhi = self.value_range()
        if vhi <= vlo:
            vhi = vlo + 1.0
        n = 64
        # Colour points over the contrast limits (VTK clamps beyond them), opacity points
        # over the contrast limits and the value range together.
        cvalues = np.linspace(lo, hi, n)
        frac = display_fraction((cvalues - lo) / (hi - lo), lay.invert, lay.gamma)
        colors = image_colors(lay.colormap, fractions=frac)
        ctf = v.vtkColorTransferFunction()
        for x, c in zip(cvalues, colors, strict=True):
            ctf.AddRGBPoint(float(x), *(float(k) for k in c))
        values = np.union1d(cvalues, np.linspace(vlo, vhi, n))
        ramp = (values - vlo) / (vhi - vlo)
        ramp = np.clip(1.0 - ramp if lay.invert else ramp, 0.0, 1.0)
        otf = v.vtkPiecewiseFunction()
        iso = lay.rendering == "isosurface"
        mip = lay.rendering == "mip"
        for x, f in zip(values, ramp, strict=True):
            # MIP and isosurface show the colour of one sample per ray: a ramp would
            # darken it twice (VTK multiplies colour by opacity), so alpha is flat.
            # Composite: a quadratic ramp over the data's values (the bright side of
            # what is shown, after invert) keeps the mid-grey bulk of EM translucent so
            # bright structures show through instead of a grey fog. It does not follow
            # the contrast limits or gamma: those change colours, not what is opaque.
            alpha = lay.opacity if (iso or mip) else lay.opacity * float(f) ** 2
            otf.AddPoint(float(x), alpha)
        self.property.SetColor(ctf)
        self.property.SetScalarOpacity(otf)
        spacing = min((min(b.spacing_um) for b in self._bricks), default=1.0)
        # Opacity is per voxel-ish path length so the look does not change with level.
        self.property.SetScalarOpacityUnitDistance(float(spacing) * 2.0)
        if iso:
            thr = lay.iso_threshold if lay.iso_threshold is not None else (lo + hi) / 2
            self.property.GetIsoSurfaceValues().SetNumberOfContours(1)
            self.property.GetIsoSurfaceValues().SetValue(0, float(thr))
            self.property.ShadeOn()
        else:
            self.property.ShadeOff()
        for m in self.mappers():
            if iso:
                m.SetBlendModeToIsoSurface()
            elif lay.rendering == "mip":
                # An inverted MIP of EM shows the darkest voxel along each ray.
                if lay.invert:
                    m.SetBlendModeToMinimumIntensity()
                else:
                    m.SetBlendModeToMaximumIntensity()
            else:
                m.SetBlendModeToComposite()


def display_fraction(
    u: npt.ArrayLike, invert: bool = False, gamma: float = 1.0
) -> npt.NDArray[np.float64]:
    """Where on the colormap (0..1) a value at fraction ``u`` of the contrast limits lands.

    Clipped to 0..1, flipped when ``invert``, then raised to ``gamma`` (napari's and
    Fiji's convention: gamma > 1 darkens the mid-tones). 2D slices and the 3D
    volume both go through it, so they agree.
    """
    f = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    if invert:
        f = 1.0 - f
    return np.asarray(f ** float(gamma), dtype=np.float64)


def image_colors(
    colormap: str,
    gamma: float = 1.0,
    invert: bool = False,
    fractions: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """RGB (N, 3) in 0..1 of an image layer's display.

    ``fractions`` are already :func:`display_fraction` s (where on the colormap);
    None gives the 256-entry lookup table over the contrast limits (entry i for the
    fraction i / 255 of them), as 2D slices use it.
    """
    if fractions is None:
        fractions = display_fraction(np.linspace(0.0, 1.0, 256), invert, gamma)
    table = colormap_table(colormap, 256)
    idx = np.clip(np.round(np.asarray(fractions, dtype=np.float64) * 255).astype(int), 0, 255)
    return np.asarray(table[idx], dtype=np.float64)


def coarse_range(source: VolumeSource, max_voxels: int = 2**22) -> tuple[float, float]:
    """Default contrast limits of a streamed image, from its coarsest level.

    The same percentiles as a whole-level ``VtkImage`` (``_range``), taken once
    from the coarsest level (time point and channel 0), so the picture does not
    change as finer bricks arrive. A coarsest level larger than ``max_voxels``
    (a store without a pyramid) is sampled in its central block only.
    """
    level = len(source.levels) - 1
    lev = source.levels[level]
    shape = lev.shape[-3:]
    if int(np.prod(shape, dtype=np.int64)) <= max_voxels:
        arr = read_level_zyx(source, level)[0]
        return _range([arr])
    side = int(round(max_voxels ** (1 / 3)))
    region: list[slice] = [slice(0, 1) for _ in source.axes[:-3]]
    for n in shape:
        h = min(side, n)
        region.append(slice((n - h) // 2, (n - h) // 2 + h))
    return _range([np.asarray(source.read(level, tuple(region)))])


def _range(arrays: Any) -> tuple[float, float]:
    """Default contrast limits: the 0.5 and 99.8 percentiles (min/max when degenerate).

    Percentiles ignore the few saturated or dead voxels every EM volume has,
    which would otherwise wash the whole volume into one grey fog.
    """
    samples = [np.asarray(a).reshape(-1)[:: max(1, a.size // 2_000_000)] for a in arrays if a.size]
    if not samples:
        return (0.0, 1.0)
    flat = np.concatenate(samples).astype(np.float64)
    lo, hi = (float(x) for x in np.percentile(flat, (0.5, 99.8)))
    if hi <= lo:
        lo, hi = float(flat.min()), float(flat.max())
    return (lo, hi if hi > lo else lo + 1.0)
