"""Train a U-Net from sparse, partial annotations.

Annotations are a label image the size of the volume: ``0`` means *not
annotated* (ignored by the loss), value ``v >= 1`` is class ``v - 1``; so a user
who paints background and mitochondria on every 10th plane trains on exactly
those voxels. :func:`annotations_from_instances` turns instance labels into such
an image, optionally with a boundary class between touching instances.

Training draws patches centred on annotated voxels (half uniformly, half per
class, so rare classes are seen), augments them (flips, 90° rotations in the
y-x plane, intensity jitter, optional elastic deformation), and minimises
class-weighted cross-entropy with ``ignore_index``. A share of the annotated
planes is held out for validation; the best model by validation loss is kept
and training stops early when it no longer improves.

With ``dims=2`` and ``rotations`` the volume and annotations are also rotated
about the X and the Y axis by each angle and resampled, and 2D planes are drawn
from every orientation, which teaches a 2D model the object's look in all
directions (3D-aware training from planes). The rotation happens in physical
space with the voxel size, resampling thick planes to the in-plane voxel size,
so anisotropic volumes (z spacing several times x, y) keep their shapes.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from analysis.errors import ParameterError
from analysis.inference._checkpoint import save_checkpoint, unet_spec
from analysis.inference._tiling import InputVolume, Normalizer
from analysis.inference._unet import UNet, UNetConfig
from analysis.volume import VolumeSource

__all__ = [
    "rotation_in_physical_space",
    "TrainConfig",
    "TrainResult",
    "annotations_from_instances",
    "augment_patch",
    "class_weights_from_annotations",
    "dice_scores",
    "train",
]

log = logging.getLogger(__name__)

IGNORE = -1


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`train`.

    Parameters
    ----------
    dims : {2, 3}, default: 2
        Train a 2D U-Net on planes or a 3D U-Net on blocks.
    depth, width, norm : see :class:`UNetConfig`; defaults 3, 16, "batch"
    patch : tuple of int or None
        Patch size (y, x) or (z, y, x); default (128, 128) or (32, 64, 64),
        clipped to the volume and rounded to the U-Net's size multiple.
    batch_size : int, default: 8 (2D) / 2 (3D) when 0
    epochs : int, default: 40
    steps_per_epoch : int, default: 40
    learning_rate : float, default: 2e-3
    class_weights : "auto", None or sequence of float, default: None
        Loss weight per class. "auto": median-frequency balancing over the
        annotated training voxels. Patches are already centred on every class
        equally often, so extra weights mostly trade precision for recall
        (over-segmentation, lower Dice); use them for classes that are rare even
        within patches.
    flips, rot90, intensity : bool, default: True
    elastic : bool, default: False
    rotations : tuple of float, default: ()
        Degrees (for example 30, 60, 90): 2D models also learn planes of the
        volume rotated about X and about Y by these angles. The rotation is done
        in physical space (see :func:`train`'s ``spacing``), resampled to the
        in-plane voxel size, so anisotropic volumes keep their true shapes.
    val_fraction : float, default: 0.2
        Share of annotated planes held out (at least one when there are two).
    patience : int, default: 8
        Epochs without a better validation loss before stopping.
    seed : int, default: 0
    device : str, default: "auto"
    threads : int, default: 0 (torch's choice)
    class_names : tuple of str, default: ()
    max_seconds : float, default: 0 (no limit)
        Stop after the epoch during which training has run this long.
    """

    dims: int = 2
    depth: int = 3
    width: int = 16
    norm: str = "batch"
    patch: tuple[int, ...] | None = None
    batch_size: int = 0
    epochs: int = 40
    steps_per_epoch: int = 40
    learning_rate: float = 2e-3
    class_weights: str | tuple[float, ...] | None = None
    flips: bool = True
    rot90: bool = True
    intensity: bool = True
    elastic: bool = False
    rotations: tuple[float, ...] = ()
    val_fraction: float = 0.2
    patience: int = 8
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    class_names: tuple[str, ...] = field(default=())
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ParameterError(f"dims must be 2 or 3, got {self.dims}")
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ParameterError("epochs and steps_per_epoch must be >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ParameterError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.rotations and self.dims != 2:
            raise ParameterError("rotations (3D-aware planes) apply to 2D training only")
        if self.patch is not None and len(self.patch) != self.dims:
            raise ParameterError(f"patch needs {self.dims} sizes, got {self.patch}")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    ``history`` holds one dict per epoch: ``epoch``, ``loss``, ``val_loss``,
    ``val_dice`` (mean over foreground classes), ``dice`` (per class), ``seconds``.
    """

    model: UNet
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    class_weights: tuple[float, ...]
    seconds: float


# ----------------------------------------------------------------------------- annotations


def annotations_from_instances(
    instances: npt.ArrayLike,
    *,
    boundary: bool = False,
    annotated: npt.ArrayLike | None = None,
) -> npt.NDArray[np.uint8]:
    """An annotation image (0 unlabelled, 1 background, 2 object, 3 boundary) from instances.

    Parameters
    ----------
    instances : (Z, Y, X) or (Y, X) int array
        0 is background, other values are object ids.
    boundary : bool, default: False
        Add class 3: a one-voxel border between touching instances (on the side
        of the higher id, 6-/4-connected), so that objects separate after
        segmentation.
    annotated : bool array broadcastable to ``instances``, optional
        Where the instances are known; elsewhere 0 (unlabelled). Default: everywhere.
        For example ``np.arange(Z)[:, None, None] % 10 == 0`` for every 10th plane.

    Returns
    -------
    annotations : uint8 array like ``instances``
    """
    inst = np.asarray(instances)
    if not np.issubdtype(inst.dtype, np.integer) and inst.dtype != bool:
        raise ParameterError(f"instance labels must be integers, got {inst.dtype}")
    inst = inst.astype(np.int64)
    out = np.where(inst > 0, 2, 1).astype(np.uint8)
    if boundary:
        footprint = ndi.generate_binary_structure(inst.ndim, 1)
        big = np.iinfo(np.int64).max
        lowest_neighbour = ndi.grey_erosion(np.where(inst > 0, inst, big), footprint=footprint)
        out[(inst > 0) & (lowest_neighbour < inst)] = 3
    if annotated is not None:
        mask = np.asarray(annotated, dtype=bool)
        try:
            mask = np.broadcast_to(mask, inst.shape)
        except ValueError as exc:
            raise ParameterError(
                f"annotated mask shape {mask.shape} does not fit instances {inst.shape}"
            ) from exc
        out[~mask] = 0
    return out


def class_weights_from_annotations(
    targets: npt.NDArray[np.integer[Any]], n_classes: int
) -> tuple[float, ...]:
    """Median-frequency balancing (Eigen and Fergus 2015): ``median(f) / f_c``.

    Classes absent from ``targets`` get weight 1. Weights are clipped to [0.05, 20].
    """
    counts = np.bincount(targets[targets >= 0].ravel(), minlength=n_classes).astype(np.float64)
    present = counts > 0
    if not present.any():
        return (1.0,) * n_classes
    freq = counts / counts.sum()
    med = float(np.median(freq[present]))
    w = np.ones(n_classes)
    w[present] = med / freq[present]
    return tuple(float(v) for v in np.clip(w, 0.05, 20.0))


def dice_scores(pred: npt.NDArray[Any], target: npt.NDArray[Any], n_classes: int) -> list[float]:
    """Dice per class over annotated voxels (``target >= 0``); NaN for a class absent in both."""
    valid = target >= 0
    p, t = pred[valid], target[valid]
    out = []
    for c in range(n_classes):
        a, b = p == c, t == c
        denom = int(a.sum() + b.sum())
        out.append(2.0 * float((a & b).sum()) / denom if denom else float("nan"))
    return out


# ----------------------------------------------------------------------------- augmentation


def _elastic(
    image: npt.NDArray[np.float32],
    target: npt.NDArray[np.int64],
    rng: np.random.Generator,
    alpha: float,
    sigma: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Random smooth displacement (Simard et al. 2003) of image (C, *S) and target (*S).

    Hand-written: scikit-image and SciPy have no elastic transform, and
    torchvision's is 2D only and not a dependency; this is the textbook
    Gaussian-smoothed random field with ``map_coordinates``.
    """
    shape = target.shape
    grid = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    coords = []
    for g in grid:
        field = ndi.gaussian_filter(rng.uniform(-1, 1, shape), sigma, mode="constant")
        # Scale so the largest displacement is ``alpha`` voxels whatever ``sigma`` is.
        coords.append(g + field * (alpha / max(float(np.abs(field).max()), 1e-12)))
    img = np.stack(
        [ndi.map_coordinates(ch, coords, order=1, mode="reflect") for ch in image]
    ).astype(np.float32)
    tgt = ndi.map_coordinates(target, coords, order=0, mode="constant", cval=IGNORE)
    return img, tgt.astype(np.int64)


def augment_patch(
    image: npt.NDArray[np.float32],
    target: npt.NDArray[np.int64],
    rng: np.random.Generator,
    *,
    flips: bool = True,
    rot90: bool = True,
    intensity: bool = True,
    elastic: bool = False,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Augment one patch: image (C, *S) float32 and target (*S) int64, same geometry.

    Flips of every spatial axis, rotations by multiples of 90° in the last two
    axes (y, x; only when they are equal), intensity gain/offset jitter and
    Gaussian noise on the (normalised) image, optional elastic deformation.
    """
    nd = target.ndim
    if elastic:
        size = min(target.shape[-2:])
        image, target = _elastic(image, target, rng, alpha=size / 16, sigma=size / 12)
    if flips:
        for ax in range(nd):
            if rng.random() < 0.5:
                image = np.flip(image, axis=ax + 1)
                target = np.flip(target, axis=ax)
    if rot90 and target.shape[-1] == target.shape[-2]:
        k = int(rng.integers(4))
        image = np.rot90(image, k, axes=(nd - 1, nd))
        target = np.rot90(target, k, axes=(nd - 2, nd - 1))
    if intensity:
        # Mild: on the normalised image a large offset moves every class boundary.
        gain = rng.uniform(0.9, 1.1)
        offset = rng.uniform(-0.1, 0.1)
        noise = rng.uniform(0.0, 0.05)
        image = image * np.float32(gain) + np.float32(offset)
        image = image + rng.normal(0.0, noise, image.shape).astype(np.float32)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(target)


# ----------------------------------------------------------------------------- data


@dataclass
class _Volume:
    image: npt.NDArray[np.float32]  # (C, Z, Y, X), normalised
    train: npt.NDArray[np.int16]  # (Z, Y, X) classes, IGNORE where not a training voxel
    val: npt.NDArray[np.int16]  # likewise for validation (all IGNORE for rotated copies)


def _split(
    targets: npt.NDArray[np.int16], fraction: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Hold out annotated planes (z), or the last columns when only one plane is annotated."""
    train = targets.copy()
    val = np.full_like(targets, IGNORE)
    if fraction <= 0:
        return train, val
    planes = np.flatnonzero((targets >= 0).reshape(targets.shape[0], -1).any(axis=1))
    if len(planes) >= 2:
        n_val = max(1, int(round(fraction * len(planes))))
        n_val = min(n_val, len(planes) - 1)
        chosen = rng.choice(planes, size=n_val, replace=False)
        val[chosen] = targets[chosen]
        train[chosen] = IGNORE
    else:
        cut = int(round(targets.shape[-1] * (1 - fraction)))
        val[..., cut:] = targets[..., cut:]
        train[..., cut:] = IGNORE
    return train, val


def rotation_in_physical_space(
    shape: Sequence[int],
    spacing: Sequence[float],
    angle: float,
    axes: tuple[int, int],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], tuple[int, ...]]:
    """The affine map of a rotation by ``angle`` degrees in the plane of ``axes``, in µm.

    The rotation is done in physical space: the output grid has the voxel size
    ``spacing[max(axes)]`` along both rotated axes (the in-plane axis a 2D plane keeps,
    so planes of the rotated volume have the pixel size of the original y-x planes)
    and ``spacing`` elsewhere; the output is large enough to hold the whole rotated
    volume and its centre maps to the input's centre. With isotropic spacing this is
    exactly :func:`scipy.ndimage.rotate` with ``reshape=True`` (same sign, shape and
    centre).

    Parameters
    ----------
    shape : (3,) ints
        Input (z, y, x) shape.
    spacing : (3,) floats
        Input voxel size (z, y, x), any unit.
    angle : float
        Degrees.
    axes : (2,) ints
        The rotation plane, e.g. (0, 1) about X, (0, 2) about Y.

    Returns
    -------
    matrix : (3, 3) float array
    offset : (3,) float array
        For :func:`scipy.ndimage.affine_transform`: input voxel = matrix @ output voxel + offset.
    out_shape : (3,) ints
    """
    a0, a1 = sorted(int(a) for a in axes)
    if a0 == a1 or not 0 <= a0 < a1 < len(shape):
        raise ParameterError(f"rotation axes must be two distinct axes of {shape}, got {axes}")
    s_in = np.asarray(spacing, dtype=np.float64)
    if s_in.shape != (len(shape),) or np.any(s_in <= 0):
        raise ParameterError(f"spacing must be {len(shape)} positive numbers, got {spacing}")
    n_in = np.asarray(shape, dtype=np.float64)[[a0, a1]]
    s_plane = s_in[[a0, a1]]
    iso = float(s_in[a1])
    t = math.radians(angle)
    # scipy.ndimage.rotate's matrix (output -> input plane coordinates), in µm.
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    extent = n_in * s_plane
    corners = np.array([[0.0, 0.0, extent[0], extent[0]], [0.0, extent[1], 0.0, extent[1]]])
    n_out = (np.ptp(rot @ corners, axis=1) / iso + 0.5).astype(int)
    # input voxel = diag(1 / s_in) @ rot @ (iso * output voxel) + offset, centre on centre.
    plane = (rot * iso) / s_plane[:, None]
    plane_offset = (n_in - 1) / 2 - plane @ ((n_out - 1) / 2)
    matrix = np.eye(len(shape))
    matrix[np.ix_([a0, a1], [a0, a1])] = plane
    offset = np.zeros(len(shape))
    offset[[a0, a1]] = plane_offset
    out_shape = list(int(n) for n in shape)
    out_shape[a0], out_shape[a1] = int(n_out[0]), int(n_out[1])
    return matrix, offset, tuple(out_shape)


def _rotated(
    vol: _Volume,
    angle: float,
    axes: tuple[int, int],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> _Volume:
    """The volume and its annotations rotated in the plane of ``axes`` in physical space.

    One resampling (:func:`rotation_in_physical_space` with
    :func:`scipy.ndimage.affine_transform`) takes anisotropic voxels to the in-plane
    voxel size and rotates, so a ball stays a ball however thick the planes are;
    linear for the image, nearest for the annotations (outside: unlabelled).
    """
    matrix, offset, out_shape = rotation_in_physical_space(vol.train.shape, spacing, angle, axes)
    img = np.stack(
        [
            ndi.affine_transform(
                ch, matrix, offset, output_shape=out_shape, order=1, mode="reflect"
            )
            for ch in vol.image
        ]
    ).astype(np.float32)
    train = ndi.affine_transform(
        vol.train, matrix, offset, output_shape=out_shape, order=0, mode="constant", cval=IGNORE
    )
    train = np.asarray(train, dtype=np.int16)
    # Validation stays on the original orientation; rotated copies only train.
    return _Volume(img, train, np.full_like(train, IGNORE))


class _Sampler:
    """Draws patches centred on annotated voxels of a set of volumes."""

    def __init__(
        self, volumes: Sequence[_Volume], which: str, patch: tuple[int, ...], n_classes: int
    ) -> None:
        self.volumes = volumes
        self.which = which
        self.patch = patch
        self.by_class: list[list[tuple[int, npt.NDArray[np.int64]]]] = [
            [] for _ in range(n_classes)
        ]
        self.all: list[tuple[int, npt.NDArray[np.int64]]] = []
        for i, v in enumerate(volumes):
            t = getattr(v, which)
            flat = t.ravel()
            idx = np.flatnonzero(flat >= 0)
            if idx.size:
                self.all.append((i, idx))
            for c in range(n_classes):
                ic = idx[flat[idx] == c]
                if ic.size:
                    self.by_class[c].append((i, ic))

    @property
    def empty(self) -> bool:
        return not self.all

    def _centre(self, rng: np.random.Generator) -> tuple[int, tuple[int, ...]]:
        classes = [c for c, lst in enumerate(self.by_class) if lst]
        if rng.random() < 0.5 and classes:
            pool = self.by_class[int(rng.choice(classes))]
        else:
            pool = self.all
        sizes = np.array([len(ix) for _, ix in pool], dtype=np.float64)
        i, ix = pool[int(rng.choice(len(pool), p=sizes / sizes.sum()))]
        flat = int(ix[int(rng.integers(len(ix)))])
        shape = getattr(self.volumes[i], self.which).shape
        return i, tuple(int(v) for v in np.unravel_index(flat, shape))

    def draw(
        self, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """One patch: image (C, *patch) and target (*patch) (2D patches come from one plane)."""
        i, centre = self._centre(rng)
        vol = self.volumes[i]
        target = getattr(vol, self.which)
        d = len(self.patch)
        size = (1, *self.patch) if d == 2 else self.patch
        starts = []
        for c, s in zip(centre, size, strict=True):
            jitter = int(rng.integers(-(s // 4), s // 4 + 1)) if s > 1 else 0
            starts.append(c - s // 2 + jitter)
        return _crop(vol.image, target, starts, size, d)


def _crop(
    image: npt.NDArray[np.float32],
    target: npt.NDArray[np.int16],
    starts: Sequence[int],
    size: Sequence[int],
    dims: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    sl, pads = [], []
    for a, s, n in zip(starts, size, target.shape, strict=True):
        lo, hi = max(a, 0), min(a + s, n)
        sl.append(slice(lo, hi))
        pads.append((lo - a, a + s - hi))
    img = image[(slice(None), *sl)]
    tgt = target[tuple(sl)]
    if any(p != (0, 0) for p in pads):
        img = np.pad(img, [(0, 0), *pads], mode="reflect")
        tgt = np.pad(tgt, pads, mode="constant", constant_values=IGNORE)
    if dims == 2:
        img, tgt = img[:, 0], tgt[0]
    return np.ascontiguousarray(img, dtype=np.float32), np.ascontiguousarray(tgt, dtype=np.int64)


def _patch_size(cfg: TrainConfig, shape: tuple[int, int, int], multiple: int) -> tuple[int, ...]:
    default = (128, 128) if cfg.dims == 2 else (32, 64, 64)
    patch = cfg.patch or default
    spatial = shape[3 - cfg.dims :]
    out = []
    for p, n in zip(patch, spatial, strict=True):
        size = min(p, max(n, multiple))
        out.append(max(multiple, (size // multiple) * multiple))
    return tuple(out)


# ----------------------------------------------------------------------------- training


def _read_image(image: npt.ArrayLike | VolumeSource) -> InputVolume:
    return InputVolume(image)


def _read_annotations(annotations: npt.ArrayLike | VolumeSource) -> npt.NDArray[Any]:
    if isinstance(annotations, VolumeSource):
        arr = np.asarray(annotations.read(0))
        if arr.ndim > 3 and math.prod(arr.shape[:-3]) == 1:  # drop singleton t / c axes
            arr = arr.reshape(arr.shape[-3:])
        return arr
    return np.asarray(annotations)


def train(
    image: npt.ArrayLike | VolumeSource,
    annotations: npt.ArrayLike | VolumeSource,
    config: TrainConfig | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
    spacing: Sequence[float] | None = None,
) -> TrainResult:
    """Train a U-Net on sparse annotations.

    Parameters
    ----------
    image : (Z, Y, X) or (C, Z, Y, X) array, or VolumeSource
        Read into memory whole (training volumes are crops that fit in RAM).
    annotations : (Z, Y, X) int array or VolumeSource
        0 = not annotated (ignored), ``v >= 1`` = class ``v - 1``.
    config : TrainConfig, optional
    checkpoint : path, optional
        Where the best model so far is saved (see :func:`save_checkpoint`) after
        every epoch that improves the validation loss.
    progress : bool, default: False
        Show a tqdm bar with the loss, validation loss and Dice.
    callback : callable, optional
        Called with each epoch's history entry.
    spacing : (3,) floats, optional
        Voxel size (z, y, x) used by ``config.rotations``; default: the
        VolumeSource's ``levels[0].scale_um``, else isotropic (1, 1, 1).

    Returns
    -------
    TrainResult
        The best model (by validation loss; the last one without validation) in eval mode.
    """
    import torch

    cfg = config or TrainConfig()
    t_start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    inp = _read_image(image)
    if spacing is None:
        spacing = image.levels[0].scale_um if isinstance(image, VolumeSource) else (1.0, 1.0, 1.0)
    if len(spacing) != 3 or any(float(v) <= 0 for v in spacing):
        raise ParameterError(f"spacing must be three positive numbers (z, y, x), got {spacing}")
    targets, n_classes = _targets(annotations, inp.spatial_shape, cfg)

    ucfg = UNetConfig(
        dims=cfg.dims,
        in_channels=inp.shape[0],
        n_classes=n_classes,
        depth=cfg.depth,
        width=cfg.width,
        norm=cfg.norm,
        class_names=tuple(cfg.class_names),
    )
    spec = unet_spec(ucfg)
    # The same normalisation, with the same whole-volume statistics, as at inference.
    norm = Normalizer(spec.preprocessing, inp, ucfg.dims)
    full = norm(inp.read((slice(None), slice(None), slice(None))), 0)
    train_t, val_t = _split(targets, cfg.val_fraction, rng)
    volumes = [_Volume(full, train_t, val_t)]
    for angle in cfg.rotations:
        for axes in ((0, 1), (0, 2)):  # about X (z-y plane), about Y (z-x plane)
            volumes.append(_rotated(volumes[0], angle, axes, spacing))
    patch = _patch_size(cfg, inp.spatial_shape, ucfg.tile_multiple)
    if cfg.dims == 3 and inp.spatial_shape[0] < ucfg.tile_multiple:
        raise ParameterError(
            f"a 3D U-Net of depth {cfg.depth} needs >= {ucfg.tile_multiple} planes"
        )
    train_s = _Sampler(volumes, "train", patch, n_classes)
    val_s = _Sampler(volumes[:1], "val", patch, n_classes)
    if train_s.empty:
        raise ParameterError("no annotated voxels to train on (all annotations are 0)")

    weights = _weights(cfg, train_t, n_classes)

    from analysis.inference._runtime import select_device

    device = select_device(cfg.device)
    model = UNet(ucfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * cfg.steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32, device=device), ignore_index=IGNORE
    )
    batch_size = cfg.batch_size or (8 if cfg.dims == 2 else 2)

    # A fixed validation set: patches drawn once, never augmented.
    val_rng = np.random.default_rng(cfg.seed + 1)
    val_batches = (
        [] if val_s.empty else [val_s.draw(val_rng) for _ in range(max(4, 2 * batch_size))]
    )

    def to_tensor(items: Sequence[tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]]) -> Any:
        x = torch.from_numpy(np.stack([a for a, _ in items])).to(device)
        y = torch.from_numpy(np.stack([b for _, b in items])).to(device)
        return x, y

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs * cfg.steps_per_epoch, desc="training", unit="step")
    history: list[dict[str, Any]] = []
    postfix: dict[str, str] = {}
    best_loss, best_epoch, best_state = math.inf, -1, None
    stopped_early = False
    try:
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            losses = []
            for _ in range(cfg.steps_per_epoch):
                items = [
                    augment_patch(
                        *train_s.draw(rng),
                        rng,
                        flips=cfg.flips,
                        rot90=cfg.rot90,
                        intensity=cfg.intensity,
                        elastic=cfg.elastic,
                    )
                    for _ in range(batch_size)
                ]
                x, y = to_tensor(items)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                if torch.isnan(loss):  # a batch with no annotated voxel after augmentation
                    continue
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)
                    postfix["loss"] = f"{losses[-1]:.3f}"
                    bar.set_postfix(postfix, refresh=False)
            entry: dict[str, Any] = {
                "epoch": epoch,
                "loss": float(np.mean(losses)) if losses else float("nan"),
            }
            if val_batches:
                entry.update(
                    _validate(model, val_batches, batch_size, to_tensor, loss_fn, n_classes)
                )
                monitor = entry["val_loss"]
            else:
                monitor = entry["loss"]
            entry["seconds"] = time.perf_counter() - t0
            history.append(entry)
            if bar is not None:
                postfix["val_loss"] = f"{entry.get('val_loss', float('nan')):.3f}"
                postfix["dice"] = f"{entry.get('val_dice', float('nan')):.3f}"
                bar.set_postfix(postfix)
            log.info("epoch %d: %s", epoch, {k: v for k, v in entry.items() if k != "dice"})
            if callback is not None:
                callback(entry)
            if monitor < best_loss - 1e-4 or best_state is None:
                best_loss, best_epoch = monitor, epoch
                best_state = copy.deepcopy(model.state_dict())
                if checkpoint is not None:
                    model.eval()
                    save_checkpoint(model, checkpoint, extra=_extra(cfg, weights, entry))
            elif epoch - best_epoch >= cfg.patience:
                stopped_early = True
                log.info("early stop at epoch %d (best %d)", epoch, best_epoch)
                break
            if cfg.max_seconds and time.perf_counter() - t_start > cfg.max_seconds:
                log.info("time limit reached after epoch %d", epoch)
                break
    finally:
        if bar is not None:
            bar.close()
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval().cpu()
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        class_weights=weights,
        seconds=time.perf_counter() - t_start,
    )


def _targets(
    annotations: npt.ArrayLike | VolumeSource, shape: tuple[int, ...], cfg: TrainConfig
) -> tuple[npt.NDArray[np.int16], int]:
    """Training targets (class ``v - 1``, -1 = not annotated) and the number of classes."""
    ann = _read_annotations(annotations)
    if ann.ndim == 2:
        ann = ann[None]
    if ann.shape != shape:
        raise ParameterError(f"annotations have shape {ann.shape}, the image {shape}")
    if not np.issubdtype(ann.dtype, np.integer):
        raise ParameterError(f"annotations must be integers (0 = unlabelled), got {ann.dtype}")
    if ann.min() < 0:
        raise ParameterError("annotations must not be negative (0 = unlabelled, v = class v - 1)")
    n_classes = int(ann.max())
    if cfg.class_names:
        n_classes = max(n_classes, len(cfg.class_names))
    if n_classes < 2:
        raise ParameterError(
            f"annotations hold {n_classes} class(es); paint at least two (e.g. background and object)"
        )
    if n_classes > 1000:
        raise ParameterError(f"annotations hold {n_classes} classes; are these instance labels?")
    return (ann.astype(np.int64) - 1).astype(np.int16), n_classes


def _weights(cfg: TrainConfig, train_t: npt.NDArray[Any], n_classes: int) -> tuple[float, ...]:
    """The loss's class weights (``cfg.class_weights``: numbers, "auto" or None)."""
    if cfg.class_weights == "auto":
        return tuple(class_weights_from_annotations(train_t, n_classes))
    if cfg.class_weights is None:
        return (1.0,) * n_classes
    if isinstance(cfg.class_weights, str) or len(cfg.class_weights) != n_classes:
        raise ParameterError(f"class_weights needs {n_classes} numbers or 'auto'")
    return tuple(float(w) for w in cfg.class_weights)


def _validate(
    model: Any,
    val_batches: Sequence[Any],
    batch_size: int,
    to_tensor: Callable[[Sequence[Any]], Any],
    loss_fn: Any,
    n_classes: int,
) -> dict[str, Any]:
    """``val_loss``, per-class ``dice`` and foreground ``val_dice`` on the fixed patches."""
    import torch

    model.eval()
    vloss, preds, tgts = [], [], []
    with torch.inference_mode():
        for k in range(0, len(val_batches), batch_size):
            x, y = to_tensor(val_batches[k : k + batch_size])
            logits = model(x)
            val_loss = loss_fn(logits, y)
            if not torch.isnan(val_loss):
                vloss.append(float(val_loss))
            preds.append(logits.argmax(1).cpu().numpy())
            tgts.append(y.cpu().numpy())
    dice = dice_scores(np.concatenate(preds), np.concatenate(tgts), n_classes)
    fg_dice = [dice[c] for c in range(1, n_classes) if not math.isnan(dice[c])]
    return {
        "val_loss": float(np.mean(vloss)) if vloss else float("nan"),
        "dice": dice,
        "val_dice": float(np.mean(fg_dice)) if fg_dice else float("nan"),
    }


def _extra(cfg: TrainConfig, weights: Sequence[float], entry: dict[str, Any]) -> dict[str, Any]:
    settings = asdict(cfg)
    return {
        "train_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
        "class_weights": list(weights),
        "best": {k: v for k, v in entry.items() if k != "seconds"},
    }
