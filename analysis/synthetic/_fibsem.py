"""A synthetic FIB-SEM volume of a HeLa-like cell with exact ground truth.

Geometry
--------
The volume is ``size`` voxels along each axis. Unless ``voxel_size_um`` is given the
field of view is fixed at 10.24 µm, so the voxel size is ``10.24 / size`` µm
(0.04 µm at the standard ``size=256``): the cell keeps its physical size and a
larger ``size`` resolves it more finely. Contents, all in one cell body:

- a cell body (deformed ellipsoid, ~8-9 µm across) bounded by a dark plasma membrane,
  in light resin;
- a nucleus (deformed ellipsoid) with a deep invagination (a tube of cytoplasm
  pushed into it) and a double nuclear envelope (inner membrane, light perinuclear
  space, outer membrane), patchy dark heterochromatin under the envelope and 1-2
  dark nucleoli;
- nuclear pores: channels through the envelope, each with a light "under-pore
  pocket" (heterochromatin exclusion zone) in the nucleoplasm beneath it;
  one instance per pore = channel + pocket, 3 voxels across (0.12 µm at the default
  0.04 µm voxels; they scale with ``size / 256`` above 256 voxels).
  They are placed as a clustered point pattern with a known density difference
  between the two halves of the nucleus (see "Nuclear pores" below);
- 50-300 elongated, slightly bent mitochondria (count ``clip(0.6 * size, 50, 300)``)
  with a dark outer membrane, a medium-dark matrix and darker cristae, placed in the
  cytoplasm without touching each other, the nucleus or the plasma membrane (voxels
  of two mitochondria are more than sqrt(3) voxels apart, so never 26-neighbours, and
  2-3 voxels of cytoplasm separate them from the membranes): instances are separable;
- ER-like texture: dark sheets along the zero set of a smooth random field.

Nuclear pores
-------------
Real HeLa nuclear envelopes carry roughly 3-5 pores per µm², clustered, with centre
spacings down to ~0.15-0.2 µm. The sample follows that:

- the nucleus is cut in two halves by its principal plane: the plane through the
  centroid of the nucleus mask (voxel centres in µm) normal to its major principal
  axis (largest eigenvalue of their covariance). This is the same definition as
  :func:`analysis.density.principal_plane`, so ``vrscope profile`` splits the nucleus
  the same way; one half, chosen by the seed, is the *dense* half;
- pores follow a Thomas cluster process on the envelope: cluster centres uniform on
  the surface of a half, a Poisson number of pores per cluster (mean 2 in the sparse
  half, 10 in the dense half) displaced by an isotropic Gaussian of sigma 0.15 µm and
  snapped to the nearest nuclear surface voxel, with hard-core thinning: a pore is
  kept only if its voxels are more than one voxel (26-neighbourhood) from every other
  pore's, so instances stay separable;
- the dense half is filled first up to 4.8 pores per µm² of envelope (or as many as
  fit: at coarse voxel sizes, e.g. ``size=96``, fewer), then the sparse half up to half the density the dense
  half reached: a target ratio of 2. Envelope area per half is the binary marching-
  cubes area of the nucleus mask (the truth table's definition), split by face centre.

The realised layout (plane, which half is dense, pores and envelope area per half,
counted by pore centroid) is :attr:`FibsemSample.pore_layout`
(:class:`PoreLayout`); ``analysis.io.write_fibsem_sample`` stores it in the store's
root attributes (``vrscope/pore_layout``). At ``size=256`` (0.04 µm voxels) that is
140-160 pores, ~3.5-3.7 per µm² overall, nearest centres 0.16-0.2 µm apart (the binary
surface is ~10 % larger than the smooth envelope, so per smooth µm² ~10 % more). At
``size=96`` (0.107 µm voxels) pores cannot be closer than ~0.4 µm: ~85 pores, ~2.9 and
~1.4 per µm² in the dense and sparse half.

Contrast is EM-like: membranes and dense organelles dark on a light cytoplasm.
The image is blurred (point-spread function) and has Gaussian noise.

Everything is drawn on object bounding boxes; the whole volume is touched only by a
few vectorised passes. ``size=256`` takes well under 30 s on two CPU cores
(``tests/benchmarks/bench_sample.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from analysis.errors import ParameterError
from analysis.synthetic._shapes import (
    ProgressCallback,
    box_around,
    polyline_distance,
    random_unit_vectors,
    smooth_noise,
)
from analysis.synthetic._truth import object_table

__all__ = [
    "FIBSEM_LABELS",
    "PORE_SPLIT_RULE",
    "FibsemSample",
    "PoreLayout",
    "fibsem_cell",
    "n_mitochondria_for_size",
]

log = logging.getLogger(__name__)

#: Label images of the sample, in the order they are written.
FIBSEM_LABELS = ("cell", "nucleus", "mitochondria", "nuclear_pores")

#: Field of view (µm) when no voxel size is given.
FIELD_OF_VIEW_UM = 10.24

MIN_SIZE = 96
MAX_SIZE = 512

# Grey values (uint8, before blur and noise): EM contrast, dark membranes on light cytoplasm.
_RESIN = 222.0
_CYTOPLASM = 176.0
_ER = 118.0
_PLASMA_MEMBRANE = 70.0
_NUCLEOPLASM = 158.0
_HETEROCHROMATIN = 104.0
_NUCLEOLUS = 92.0
_ENVELOPE_MEMBRANE = 62.0
_PERINUCLEAR_SPACE = 182.0
_PORE = 138.0
_POCKET = 168.0
_MITO_MEMBRANE = 64.0
_MITO_MATRIX = 122.0
_MITO_CRISTA = 86.0
_NOISE_SIGMA = 9.0
_N_STAGES = 7

# Nuclear pore layout (see the module docstring).
_PORE_DENSITY_DENSE_PER_UM2 = 4.8
_PORE_DENSITY_RATIO = 2.0
_PORE_CLUSTER_SIGMA_UM = 0.15
_PORE_CLUSTER_MEAN = (2.0, 10.0)  # pores per cluster: sparse half, dense half

#: How the nucleus is cut in two for the pore density difference.
PORE_SPLIT_RULE = (
    "principal plane of the nucleus mask: through the centroid of its voxel centres (µm), "
    "normal to their major principal axis; dense half: (p - centre_um) . normal > 0"
)


@dataclass(frozen=True)
class PoreLayout:
    """The realised nuclear-pore layout of a sample: its known density difference.

    Attributes
    ----------
    centre_um : (3,) floats
        Centroid of the nucleus mask (z, y, x) in µm; a point of the split plane.
    normal : (3,) floats
        Unit normal of the split plane (the nucleus's major principal axis), pointing
        into the dense half: a point ``p`` (µm) is in the dense half when
        ``(p - centre_um) . normal > 0``.
    counts : (2,) ints
        Pores in the (sparse, dense) half, assigned by pore centroid.
    envelope_area_um2 : (2,) floats
        Nuclear surface area of the (sparse, dense) half: marching cubes of the binary
        nucleus mask, faces assigned by their centre.
    target_ratio : float
        Intended dense / sparse density ratio.
    cluster_sigma_um : float
        Spread of a pore cluster (Thomas process).
    cluster_mean : (2,) floats
        Mean pores per cluster in the (sparse, dense) half, before hard-core thinning.
    """

    centre_um: tuple[float, float, float]
    normal: tuple[float, float, float]
    counts: tuple[int, int]
    envelope_area_um2: tuple[float, float]
    target_ratio: float = _PORE_DENSITY_RATIO
    cluster_sigma_um: float = _PORE_CLUSTER_SIGMA_UM
    cluster_mean: tuple[float, float] = _PORE_CLUSTER_MEAN

    @property
    def density_per_um2(self) -> tuple[float, float]:
        """Pores per µm² of envelope in the (sparse, dense) half."""
        return (
            self.counts[0] / self.envelope_area_um2[0],
            self.counts[1] / self.envelope_area_um2[1],
        )

    def in_dense_half(self, points_um: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether each point (N, 3) in µm lies in the dense half."""
        pts = np.asarray(points_um, dtype=np.float64).reshape(-1, 3)
        side: npt.NDArray[np.bool_] = (pts - np.asarray(self.centre_um)) @ np.asarray(
            self.normal
        ) > 0
        return side

    def as_dict(self) -> dict[str, object]:
        """JSON-able form (for store attributes)."""
        sparse, dense = self.density_per_um2
        return {
            "split": PORE_SPLIT_RULE,
            "centre_um": list(self.centre_um),
            "normal": list(self.normal),
            "target_ratio": self.target_ratio,
            "cluster_sigma_um": self.cluster_sigma_um,
            "cluster_mean": {"sparse": self.cluster_mean[0], "dense": self.cluster_mean[1]},
            "counts": {"sparse": self.counts[0], "dense": self.counts[1]},
            "envelope_area_um2": {
                "sparse": self.envelope_area_um2[0],
                "dense": self.envelope_area_um2[1],
            },
            "density_per_um2": {"sparse": sparse, "dense": dense},
        }


@dataclass(frozen=True)
class FibsemSample:
    """A generated FIB-SEM cell and its exact ground truth.

    Attributes
    ----------
    image : (z, y, x) uint8 array
        EM-like image, dark-on-light.
    labels : dict name -> (z, y, x) int array
        ``cell`` (uint8, 0/1), ``nucleus`` (uint8, 0/1), ``mitochondria`` (uint16,
        instances 1..N), ``nuclear_pores`` (uint16, instances 1..M).
    scale_um : (3,) floats
        Voxel size (z, y, x) in µm.
    truth : pandas.DataFrame
        One row per object, columns ``analysis.synthetic.TRUTH_COLUMNS``, computed from
        ``labels`` (see :func:`analysis.synthetic.object_table`).
    seed : int
    pore_layout : PoreLayout or None
        The nucleus halves and the pore density in each (see the module docstring).
    """

    image: npt.NDArray[np.uint8]
    labels: dict[str, npt.NDArray[np.integer]]
    scale_um: tuple[float, float, float]
    truth: pd.DataFrame = field(repr=False)
    seed: int = 0
    pore_layout: PoreLayout | None = None

    @property
    def n_mitochondria(self) -> int:
        """Number of mitochondrion instances."""
        return int(self.labels["mitochondria"].max())

    @property
    def n_pores(self) -> int:
        """Number of nuclear pore instances."""
        return int(self.labels["nuclear_pores"].max())


def n_mitochondria_for_size(size: int) -> int:
    """Target number of mitochondria for a cube of ``size`` voxels: ``clip(0.6 * size, 50, 300)``."""
    return int(np.clip(round(0.6 * size), 50, 300))


def _check_args(
    size: int, seed: int, voxel_size_um: float | Sequence[float] | None
) -> tuple[float, float, float]:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ParameterError(f"size must be an integer, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ParameterError(f"size must be between {MIN_SIZE} and {MAX_SIZE} voxels, got {size}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if voxel_size_um is None:
        v = FIELD_OF_VIEW_UM / size
        return (v, v, v)
    vs = np.atleast_1d(np.asarray(voxel_size_um, dtype=np.float64))
    if vs.size == 1:
        vs = np.repeat(vs, 3)
    if vs.shape != (3,) or not np.all(np.isfinite(vs)) or np.any(vs <= 0):
        raise ParameterError(
            f"voxel_size_um must be one or three positive numbers, got {voxel_size_um!r}"
        )
    return (float(vs[0]), float(vs[1]), float(vs[2]))


def _deformed_radius(
    shape: tuple[int, ...],
    origin: Sequence[float] | npt.NDArray[np.int64],
    center: npt.NDArray[np.float64],
    semi_axes: npt.NDArray[np.float64],
    angle: float,
    amplitude: float,
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """Normalised radius of a yx-rotated ellipsoid minus a smooth angular deformation.

    The object is ``result <= 1``: a blob whose radius varies by up to ``amplitude``
    (relative) with direction, through a few random low-order cosine modes.
    """
    z = (np.arange(shape[0], dtype=np.float32) + np.float32(origin[0] - center[0]))[:, None, None]
    y = (np.arange(shape[1], dtype=np.float32) + np.float32(origin[1] - center[1]))[None, :, None]
    x = (np.arange(shape[2], dtype=np.float32) + np.float32(origin[2] - center[2]))[None, None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    uz = z / np.float32(semi_axes[0])
    uy = (c * y + s * x) / np.float32(semi_axes[1])
    ux = (-s * y + c * x) / np.float32(semi_axes[2])
    rho = np.sqrt(uz * uz + uy * uy + ux * ux)
    inv = 1.0 / np.maximum(rho, np.float32(1e-6))
    n_modes = 4
    deform = np.zeros(rho.shape, dtype=np.float32)
    for _ in range(n_modes):
        k = rng.integers(-2, 3, size=3).astype(np.float32)
        if not k.any():
            k[1] = 1.0
        phase = np.float32(rng.uniform(0, 2 * np.pi))
        w = np.float32(amplitude / n_modes * rng.uniform(0.5, 1.0))
        arg = (uz * k[0] + uy * k[1] + ux * k[2]) * inv * np.float32(np.pi) + phase
        deform += w * np.cos(arg)
    out: npt.NDArray[np.float32] = (rho - deform).astype(np.float32)
    return out


@dataclass
class _Lengths:
    """Structure sizes in voxels for a given volume size (they scale with ``size / 256``)."""

    membrane: float
    gap: float
    heterochromatin: float
    pore_radius: float
    pocket_lateral: float
    pocket_depth: float
    mito_radius: float
    clearance: float
    margin: float
    plasma_membrane_iter: int

    @classmethod
    def for_size(cls, size: int) -> _Lengths:
        s = size / 256.0
        return cls(
            membrane=max(1.0, 1.6 * s),
            gap=max(1.0, 1.2 * s),
            heterochromatin=max(2.0, 5.0 * s),
            # At 0.04 µm voxels: a channel and pocket 3 voxels (0.12 µm) across, the pocket
            # 0.2 µm deep; centres of neighbouring pores can then be 0.16-0.2 µm apart.
            pore_radius=max(1.2, 1.2 * s),
            pocket_lateral=max(1.5, 1.5 * s),
            pocket_depth=max(2.5, 5.0 * s),
            # Mitochondria volume ~8% of the cytoplasm shared among 0.6 * size of them.
            mito_radius=max(2.0, 2.6 * (size / 96.0) ** (2.0 / 3.0)),
            # > sqrt(3): voxels of two tubes are never 26-neighbours.
            clearance=1.8,
            margin=max(1.0, 2.0 * s),
            plasma_membrane_iter=max(1, round(1.5 * s)),
        )


def fibsem_cell(
    size: int = 256,
    seed: int = 0,
    voxel_size_um: float | Sequence[float] | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> FibsemSample:
    """Generate a FIB-SEM-like HeLa cell with label images and an exact truth table.

    Parameters
    ----------
    size : int, default: 256
        Edge length of the cubic volume in voxels (96 to 512).
    seed : int, default: 0
        Random seed; the same seed gives the same sample, bit for bit.
    voxel_size_um : float or (3,) floats, optional
        Voxel size (z, y, x) in µm. Default: ``10.24 / size`` (0.04 µm at 256).
    progress : callable ``(stage, done, total)``, optional
        Called after the arguments are checked and at each generation stage
        (``done`` of ``total`` stages), e.g. to drive a progress bar.

    Returns
    -------
    FibsemSample
        ``image`` (z, y, x) uint8, ``labels`` (``cell``, ``nucleus``, ``mitochondria``,
        ``nuclear_pores``), ``scale_um`` and ``truth`` (see the module docstring).

    Raises
    ------
    ParameterError
        For a size outside 96-512, a negative seed or a non-positive voxel size.
    """
    scale_um = _check_args(size, seed, voxel_size_um)
    size = int(size)
    rng = np.random.default_rng(int(seed))
    L = _Lengths.for_size(size)
    shape = (size, size, size)
    n = float(size)

    _report(progress, "cell body", 0, _N_STAGES)
    # --- cell body ---------------------------------------------------------------
    c_cell = n / 2 + rng.uniform(-0.015, 0.015, 3) * n
    a_cell = n * np.array([0.36, 0.40, 0.39]) * rng.uniform(0.96, 1.04, 3)
    cell_r = _deformed_radius(shape, (0, 0, 0), c_cell, a_cell, rng.uniform(0, np.pi), 0.08, rng)
    cell = cell_r <= 1.0
    del cell_r

    _report(progress, "nucleus", 1, _N_STAGES)
    # --- nucleus on its bounding box -----------------------------------------------
    offset_dir = np.array([0.0, *random_unit_vectors(1, rng)[0, 1:]])
    offset_dir /= max(np.linalg.norm(offset_dir), 1e-9)
    c_nuc = c_cell + offset_dir * 0.05 * n + np.array([rng.uniform(-0.01, 0.01) * n, 0, 0])
    # Clearly longest along y' (rotated), so the principal plane that halves it for the
    # pore density difference is well defined.
    a_nuc = n * np.array([0.14, 0.185, 0.16]) * rng.uniform(0.97, 1.03, 3)
    env_out = L.gap + 0.5 + L.membrane
    pad = env_out + L.margin + L.clearance + 3
    reach = a_nuc.max() * 1.06 + pad
    nb = box_around(c_nuc - reach, c_nuc + reach, shape)
    assert nb is not None
    nbox, norigin = nb
    nshape = tuple(sl.stop - sl.start for sl in nbox)
    nuc_angle = rng.uniform(0, np.pi)
    nuc = _deformed_radius(nshape, norigin, c_nuc, a_nuc, nuc_angle, 0.04, rng) <= 1.0

    # Invagination: a capsule of cytoplasm pushed from outside deep into the nucleus.
    inv_dir = random_unit_vectors(1, rng)[0]
    inv_dir[0] *= 0.3  # mostly sideways, like the folds seen in HeLa nuclei
    inv_dir /= np.linalg.norm(inv_dir)
    surf = _ray_exit(nuc, c_nuc - norigin, inv_dir)
    depth = rng.uniform(0.45, 0.6) * np.linalg.norm(surf - (c_nuc - norigin))
    inv_radius = max(3.0, 0.045 * n) * rng.uniform(0.9, 1.1)
    inv_pts = np.stack([surf + inv_dir * (env_out + inv_radius + 2), surf - inv_dir * depth])
    inv_dist, _ = polyline_distance(inv_pts, _whole(nshape))
    nuc &= inv_dist > inv_radius
    del inv_dist
    nuc = _largest_component(nuc)

    d_in = ndi.distance_transform_edt(nuc).astype(np.float32)
    d_out = ndi.distance_transform_edt(~nuc).astype(np.float32)
    inner_mem = nuc & (d_in < 1.0 + L.membrane)
    space = ~nuc & (d_out <= L.gap + 0.5)
    outer_mem = ~nuc & (d_out > L.gap + 0.5) & (d_out <= env_out)
    envelope = inner_mem | space | outer_mem
    hc_noise = smooth_noise(nshape, 4.0 + 6.0 * size / 256, rng)
    hc_limit = 1.0 + L.membrane + L.heterochromatin * (0.7 + 0.45 * hc_noise)
    heterochromatin = nuc & ~inner_mem & (d_in < hc_limit)
    del hc_noise, hc_limit
    if not cell[nbox][nuc | envelope].all():
        raise RuntimeError("nucleus does not fit in the cell; report this seed as a bug")

    _report(progress, "cytoplasm and ER", 2, _N_STAGES)
    # --- image: resin, cytoplasm, ER --------------------------------------------------
    img = np.full(shape, _RESIN, dtype=np.float32)
    density = smooth_noise(shape, 8.0 + 20.0 * size / 256, rng)
    img[cell] = _CYTOPLASM
    img += np.where(cell, np.float32(5.0) * density, np.float32(0.0))
    er_field = smooth_noise(shape, 3.0 + 4.0 * size / 256, rng)
    # Sheets: a thin band around the zero set of a smooth field, only where "ER-rich".
    er = cell & (np.abs(er_field) < 0.16) & (density > -0.6)
    img[er] = _ER
    del er_field, er, density

    # --- nucleus interior and envelope --------------------------------------------------
    nimg = img[nbox]
    chromatin = smooth_noise(nshape, 2.0 + 2.0 * size / 256, rng)
    nimg[nuc] = _NUCLEOPLASM + 9.0 * chromatin[nuc]
    nimg[heterochromatin] = _HETEROCHROMATIN + 6.0 * chromatin[heterochromatin]
    for _ in range(int(rng.integers(1, 3))):
        _draw_nucleolus(nimg, nuc, d_in, L, n, rng)
    nimg[space] = _PERINUCLEAR_SPACE
    nimg[inner_mem | outer_mem] = _ENVELOPE_MEMBRANE
    del chromatin

    _report(progress, "nuclear pores", 3, _N_STAGES)
    # --- nuclear pores: channel through the envelope + under-pore pocket -----------------
    pores_local, pore_layout = _place_pores(
        nuc, d_in, d_out, envelope, inner_mem, L, nimg, norigin, scale_um, rng
    )
    pores = np.zeros(shape, dtype=np.uint16)
    pores[nbox] = pores_local
    nucleus = np.zeros(shape, dtype=np.uint8)
    nucleus[nbox] = nuc

    # --- plasma membrane ------------------------------------------------------------------
    inner_cell = ndi.binary_erosion(cell, iterations=L.plasma_membrane_iter)
    img[cell & ~inner_cell] = _PLASMA_MEMBRANE
    del inner_cell

    _report(progress, "mitochondria", 4, _N_STAGES)
    # --- mitochondria -----------------------------------------------------------------------
    forbidden = _mito_forbidden(cell, L)
    forbidden[nbox] |= nuc | (d_out <= env_out + L.margin)
    del d_in, d_out
    mitos = _place_mitochondria(forbidden, img, L, n_mitochondria_for_size(size), c_cell, rng)
    del forbidden

    _report(progress, "blur and noise", 5, _N_STAGES)
    # --- optics: blur and noise --------------------------------------------------------------
    img = ndi.gaussian_filter(img, 0.7, output=np.float32)
    img += rng.normal(0.0, _NOISE_SIGMA, size=shape).astype(np.float32)
    np.clip(img, 0, 255, out=img)
    image = np.rint(img).astype(np.uint8)
    del img

    labels: dict[str, npt.NDArray[np.integer]] = {
        "cell": cell.astype(np.uint8),
        "nucleus": nucleus,
        "mitochondria": mitos,
        "nuclear_pores": pores,
    }
    _report(progress, "truth table", 6, _N_STAGES)
    truth = object_table(labels, scale_um)
    _report(progress, "done", _N_STAGES, _N_STAGES)
    log.info(
        "fibsem sample size=%d seed=%d: %d mitochondria, %d nuclear pores "
        "(%.2f / %.2f per µm² in the sparse / dense half)",
        size,
        seed,
        int(mitos.max()),
        int(pores.max()),
        *pore_layout.density_per_um2,
    )
    return FibsemSample(
        image=image,
        labels=labels,
        scale_um=scale_um,
        truth=truth,
        seed=int(seed),
        pore_layout=pore_layout,
    )


def _report(progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _whole(shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    return (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))


def _ray_exit(
    mask: npt.NDArray[np.bool_], start: npt.NDArray[np.float64], direction: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Last point inside ``mask`` walking from ``start`` along ``direction`` (voxel coordinates)."""
    steps = np.arange(0.0, float(sum(mask.shape)), 0.5)
    pts = start[None, :] + steps[:, None] * direction[None, :]
    idx = np.rint(pts).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(mask.shape)), axis=1)
    hit = np.zeros(len(steps), dtype=bool)
    hit[inside] = mask[idx[inside, 0], idx[inside, 1], idx[inside, 2]]
    last = int(np.flatnonzero(hit).max()) if hit.any() else 0
    out: npt.NDArray[np.float64] = pts[last]
    return out


def _largest_component(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    lab, count = ndi.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    out: npt.NDArray[np.bool_] = lab == int(sizes.argmax())
    return out


def _draw_nucleolus(
    nimg: npt.NDArray[np.float32],
    nuc: npt.NDArray[np.bool_],
    d_in: npt.NDArray[np.float32],
    L: _Lengths,
    n: float,
    rng: np.random.Generator,
) -> None:
    """A dark, granular blob deep in the nucleus (not labelled: texture only)."""
    radius = rng.uniform(0.03, 0.045) * n
    deep = np.flatnonzero(d_in.ravel() > radius + L.membrane + L.heterochromatin + 2)
    if deep.size == 0:
        return
    center = np.array(np.unravel_index(deep[rng.integers(deep.size)], nuc.shape), dtype=float)
    b = box_around(center - radius - 1, center + radius + 1, nuc.shape)
    if b is None:
        return
    box, origin = b
    zz, yy, xx = np.ogrid[box]
    r2 = (zz - center[0]) ** 2 + (yy - center[1]) ** 2 + (xx - center[2]) ** 2
    grain = rng.normal(0.0, 10.0, size=r2.shape).astype(np.float32)
    blob = (r2 <= radius**2) & nuc[box]
    nimg[box][blob] = _NUCLEOLUS + grain[blob]


def _principal_plane(
    mask: npt.NDArray[np.bool_], origin: npt.NDArray[np.int64], scale: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Centroid (µm) and unit major principal axis of a mask's voxel centres.

    The definition of :func:`analysis.density.principal_plane`, computed here on the
    nucleus's bounding box (``origin`` = its first voxel); the axis's sign is fixed
    (largest component positive) so it does not depend on the eigen-solver.
    """
    phys = (np.argwhere(mask) + origin) * scale
    centre = phys.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((phys - centre).T))
    axis = np.asarray(vecs[:, -1], dtype=np.float64)
    if axis[int(np.argmax(np.abs(axis)))] < 0:
        axis = -axis
    return centre, axis


def _area_by_side(
    mask: npt.NDArray[np.bool_],
    origin: npt.NDArray[np.int64],
    scale: npt.NDArray[np.float64],
    centre: npt.NDArray[np.float64],
    normal: npt.NDArray[np.float64],
) -> tuple[float, float]:
    """Marching-cubes surface area (µm²) of a binary mask behind / in front of a plane.

    The surface is the truth table's (:func:`analysis.synthetic.surface_area_um2`: level
    0.5 on the mask padded by one voxel); each triangle goes to the side of its centre.
    """
    verts, faces, _, _ = marching_cubes(  # type: ignore[no-untyped-call]
        np.pad(mask, 1).astype(np.float32), 0.5, spacing=tuple(float(v) for v in scale)
    )
    verts = verts + (origin - 1) * scale
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    front = (tri.mean(axis=1) - centre) @ normal > 0
    return float(area[~front].sum()), float(area[front].sum())


@dataclass
class _PoreDrawer:
    """Draws one pore (channel + under-pore pocket) at a nuclear surface voxel if it fits."""

    nuc: npt.NDArray[np.bool_]
    envelope: npt.NDArray[np.bool_]
    inner_mem: npt.NDArray[np.bool_]
    signed: npt.NDArray[np.float32]  # smoothed signed distance, positive outside
    L: _Lengths
    nimg: npt.NDArray[np.float32]
    out: npt.NDArray[np.uint16]

    def __post_init__(self) -> None:
        L = self.L
        self.reach = (
            max(L.pocket_depth, L.gap + 0.5 + 2 * L.membrane + 1.0) + L.pocket_lateral + 2.0
        )
        # Centres closer than this cannot give separate instances (two pockets plus a gap);
        # a cheap test before drawing. The real rule is the 26-neighbourhood test below.
        self.spacing = 2 * L.pocket_lateral + 1.0
        self._centres = np.empty((0, 3))

    def try_place(self, c: npt.NDArray[np.float64]) -> bool:
        """Draw a pore centred on surface voxel ``c``; False if it would touch another."""
        shape = self.nuc.shape
        L = self.L
        if len(self._centres) and np.min(np.sum((self._centres - c) ** 2, axis=1)) < (
            self.spacing**2
        ):
            return False
        ci = c.astype(np.int64)
        if np.any(ci < 1) or np.any(ci >= np.asarray(shape) - 1):
            return False
        s = self.signed
        grad = np.array(
            [
                s[ci[0] + 1, ci[1], ci[2]] - s[ci[0] - 1, ci[1], ci[2]],
                s[ci[0], ci[1] + 1, ci[2]] - s[ci[0], ci[1] - 1, ci[2]],
                s[ci[0], ci[1], ci[2] + 1] - s[ci[0], ci[1], ci[2] - 1],
            ],
            dtype=np.float64,
        )
        norm = float(np.linalg.norm(grad))
        if norm < 1e-6:
            return False
        normal = grad / norm
        b = box_around(c - self.reach, c + self.reach, shape)
        if b is None:
            return False
        box, _ = b
        zz, yy, xx = np.ogrid[box]
        vz, vy, vx = zz - c[0], yy - c[1], xx - c[2]
        h = vz * normal[0] + vy * normal[1] + vx * normal[2]
        rho2 = vz * vz + vy * vy + vx * vx - h * h
        channel = (
            self.envelope[box]
            & (rho2 <= L.pore_radius**2)
            & (h >= -(1.5 + L.membrane))
            & (h <= L.gap + 1.5 + 2 * L.membrane)
        )
        pocket = (
            self.nuc[box]
            & (h <= 0.5)
            & (rho2 / L.pocket_lateral**2 + h * h / L.pocket_depth**2 <= 1.0)
        )
        pore = channel | pocket
        if not pore.any():
            return False
        # Instances must stay separate: nothing of another pore within one voxel (26-connected).
        grown = ndi.binary_dilation(pore, structure=np.ones((3, 3, 3), bool))
        out = self.out[box]
        if (out[grown] != 0).any():
            return False
        self._centres = np.vstack([self._centres, c[None, :]])
        out[pore] = len(self._centres)
        local = self.nimg[box]
        local[pocket & ~self.inner_mem[box]] = _POCKET
        local[channel] = _PORE
        return True


def _place_pores(
    nuc: npt.NDArray[np.bool_],
    d_in: npt.NDArray[np.float32],
    d_out: npt.NDArray[np.float32],
    envelope: npt.NDArray[np.bool_],
    inner_mem: npt.NDArray[np.bool_],
    L: _Lengths,
    nimg: npt.NDArray[np.float32],
    origin: npt.NDArray[np.int64],
    scale_um: tuple[float, float, float],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.uint16], PoreLayout]:
    """Place clustered, separated pore instances on the nuclear surface (nucleus box).

    A Thomas cluster process per nucleus half with hard-core thinning (module
    docstring); the dense half first, then the sparse half at ``1 / ratio`` of the
    density the dense half reached. Draws the pores into ``nimg``.
    """
    scale = np.asarray(scale_um, dtype=np.float64)
    centre, normal = _principal_plane(nuc, origin, scale)
    if rng.random() < 0.5:  # which end is dense is up to the seed
        normal = -normal
    area = _area_by_side(nuc, origin, scale, centre, normal)
    surf = np.argwhere(nuc & (d_in <= 1.0))  # nuclear surface voxels (box coordinates)
    surf_um = (surf + origin) * scale
    surf_dense = (surf_um - centre) @ normal > 0
    # Snapping cluster members to the surface: nearest surface voxel (k-d tree, SciPy).
    tree = cKDTree(surf_um)
    drawer = _PoreDrawer(
        nuc=nuc,
        envelope=envelope,
        inner_mem=inner_mem,
        signed=ndi.gaussian_filter(d_out - d_in, 1.5),
        L=L,
        nimg=nimg,
        out=np.zeros(nuc.shape, dtype=np.uint16),
    )
    placed = [0, 0]  # sparse, dense
    dense_target = round(_PORE_DENSITY_DENSE_PER_UM2 * area[1])
    for side in (1, 0):
        if side == 1:
            target = dense_target
        else:
            target = round(placed[1] / max(area[1], 1e-9) / _PORE_DENSITY_RATIO * area[0])
        pool = np.flatnonzero(surf_dense == bool(side))
        if pool.size == 0:
            continue
        # Enough tries to fill the half unless it is saturated at this voxel size.
        budget = 25 * target + 100
        tries = 0
        while placed[side] < target and tries < budget:
            parent = surf_um[pool[rng.integers(pool.size)]]
            members = rng.poisson(_PORE_CLUSTER_MEAN[side])
            tries += 1
            if members == 0:
                continue
            offsets = rng.normal(0.0, _PORE_CLUSTER_SIGMA_UM, size=(members, 3))
            _, nearest = tree.query(parent + offsets)
            for j in np.atleast_1d(nearest):
                tries += 1
                if placed[side] >= target or surf_dense[j] != bool(side):
                    continue
                if drawer.try_place(surf[j].astype(np.float64)):
                    placed[side] += 1
        if placed[side] < target:
            log.debug("placed %d of %d nuclear pores in half %d", placed[side], target, side)
    out = drawer.out
    n_pores = int(out.max())
    counts = (0, 0)
    if n_pores:
        # Truth by pore centroid, the way the profile assigns pores to halves.
        com = np.asarray(ndi.center_of_mass(out > 0, out, np.arange(1, n_pores + 1)))
        dense = ((com + origin) * scale - centre) @ normal > 0
        counts = (int(np.count_nonzero(~dense)), int(np.count_nonzero(dense)))
    layout = PoreLayout(
        centre_um=(float(centre[0]), float(centre[1]), float(centre[2])),
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
        counts=counts,
        envelope_area_um2=area,
    )
    return out, layout


def _mito_forbidden(cell: npt.NDArray[np.bool_], L: _Lengths) -> npt.NDArray[np.bool_]:
    """Voxels a mitochondrion may not reach: outside the cell or too close to its membrane.

    The distance to the plasma membrane comes from a Euclidean distance transform at half
    resolution for volumes above 128^3 (a full-resolution EDT at 256^3 costs ~4 s here);
    the threshold then adds two voxels to cover the coarser grid.
    """
    limit = L.plasma_membrane_iter + L.margin
    if cell.size <= 128**3:
        ok = ndi.distance_transform_edt(cell) > limit
    else:
        half = cell[::2, ::2, ::2]
        dist = ndi.distance_transform_edt(half).astype(np.float32) * np.float32(2.0)
        ok_half = dist > limit + 2.0
        idx = [np.arange(s) // 2 for s in cell.shape]
        ok = ok_half[idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]]
    out: npt.NDArray[np.bool_] = ~ok | ~cell
    return out


def _try_tube(
    center: npt.NDArray[np.float64],
    axis: npt.NDArray[np.float64],
    radius: float,
    length: float,
    forbidden: npt.NDArray[np.bool_],
    L: _Lengths,
    rng: np.random.Generator,
) -> (
    tuple[
        npt.NDArray[np.float64],
        tuple[slice, slice, slice],
        npt.NDArray[np.float32],
        npt.NDArray[np.float32],
    ]
    | None
):
    """A random bent tube around ``center`` whose clearance zone misses ``forbidden``, or None."""
    shape = forbidden.shape
    perp = np.cross(axis, random_unit_vectors(1, rng)[0])
    perp /= max(float(np.linalg.norm(perp)), 1e-9)
    bend = rng.uniform(-0.25, 0.25) * length
    p0, p2 = center - axis * length / 2, center + axis * length / 2
    p1 = center + perp * bend
    t = np.linspace(0.0, 1.0, 17)[:, None]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    probe = np.rint(curve).astype(np.int64)
    if np.any(probe < 0) or np.any(probe >= np.asarray(shape)):
        return None
    # Cheap test on the axis first; the full distance field only for plausible candidates.
    if forbidden[probe[:, 0], probe[:, 1], probe[:, 2]].any():
        return None
    pts = curve[::4]  # 4 straight segments follow the gentle bend closely enough
    reach = radius + L.clearance + 1.0
    b = box_around(pts.min(axis=0) - reach, pts.max(axis=0) + reach, shape)
    if b is None:
        return None
    box, _ = b
    dist, arc = polyline_distance(pts, box)
    if (forbidden[box] & (dist <= radius + L.clearance)).any():
        return None
    return pts, box, dist, arc


def _place_mitochondria(
    forbidden: npt.NDArray[np.bool_],
    img: npt.NDArray[np.float32],
    L: _Lengths,
    target: int,
    cell_center: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> npt.NDArray[np.uint16]:
    """Rejection-sample bent tubes in the allowed space and draw them into ``img``."""
    shape = forbidden.shape
    labels = np.zeros(shape, dtype=np.uint16)
    allowed = np.flatnonzero(~forbidden.ravel())
    if allowed.size == 0:
        raise RuntimeError("no cytoplasm left for mitochondria")
    max_attempts = 40 * target
    label = 0
    attempts = 0
    while label < target and attempts < max_attempts:
        attempts += 1
        center = np.array(np.unravel_index(allowed[rng.integers(allowed.size)], shape), float)
        if forbidden[tuple(center.astype(np.int64))]:
            continue
        radius = max(2.0, L.mito_radius * rng.uniform(0.8, 1.25))
        aspect = rng.uniform(2.5, 8.0)
        # First a random orientation; then tangential ones (perpendicular to the line to the
        # cell centre), shorter each time: in the layer of cytoplasm between nucleus and
        # plasma membrane a long tube fits only lying along the layer.
        radial = center - cell_center
        radial /= max(float(np.linalg.norm(radial)), 1e-9)
        found = None
        for k, shrink in enumerate(np.linspace(1.0, 2.5 / aspect, 6)):
            axis = random_unit_vectors(1, rng)[0]
            if k > 0:
                axis -= radial * float(axis @ radial)
                axis /= max(float(np.linalg.norm(axis)), 1e-9)
            found = _try_tube(center, axis, radius, radius * aspect * shrink, forbidden, L, rng)
            if found is not None:
                break
        if found is None:
            continue
        pts, box, dist, arc = found
        body = dist <= radius
        if np.count_nonzero(body) == 0:
            continue
        label += 1
        labels[box][body] = label
        forbidden[box] |= body
        # Appearance: dark outer membrane, matrix, cristae as stripes across the long axis.
        local = img[box]
        membrane = max(1.0, L.membrane * 0.8)
        period = max(3.0, 1.1 * radius)
        phase = rng.uniform(0, 2 * np.pi)
        crista = np.cos(arc * np.float32(2 * np.pi / period) + np.float32(phase)) > 0.55
        inside = dist <= radius - membrane
        local[body] = _MITO_MEMBRANE
        local[inside] = _MITO_MATRIX
        local[inside & crista & (dist <= radius - membrane - 0.5)] = _MITO_CRISTA
    if label < target:
        log.warning("placed %d of %d mitochondria after %d attempts", label, target, attempts)
    return labels
