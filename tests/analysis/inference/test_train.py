"""Training from sparse annotations: targets, weights, augmentation, and learning spheres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries
from sklearn.metrics import f1_score

from analysis.errors import ParameterError
from analysis.inference import (
    TorchPredictor,
    TrainConfig,
    annotations_from_instances,
    augment_patch,
    class_weights_from_annotations,
    dice_scores,
    labels_from_probabilities,
    load_checkpoint,
    predict_tiled,
    train,
    unet_spec,
)
from analysis.inference._train import IGNORE, _rotated, _Volume
from tests.analysis.inference._helpers import spheres


def _touching_boxes() -> np.ndarray:
    lab = np.zeros((12, 20, 30), np.int32)
    lab[2:10, 3:17, 2:12] = 4
    lab[2:10, 3:17, 12:22] = 2  # touches 4 along x
    lab[2:10, 3:10, 22:28] = 7  # touches 2
    return lab


def test_boundary_class_separates_touching_instances() -> None:
    lab = _touching_boxes()
    ann = annotations_from_instances(lab, boundary=True)
    assert set(np.unique(ann)) == {1, 2, 3}
    np.testing.assert_array_equal(ann == 1, lab == 0)
    boundary = ann == 3
    # A subset of scikit-image's inner boundaries, only between two objects...
    assert not (boundary & ~find_boundaries(lab, mode="inner")).any()
    next_to_background = ndi.binary_dilation(lab == 0, ndi.generate_binary_structure(3, 1))
    assert not (boundary & next_to_background & ~find_boundaries(lab > 0, mode="inner")).any()
    # ...one voxel thick, and enough to split the objects (6-connectivity).
    assert boundary.sum() == 8 * 14 + 8 * 7
    _, n = ndi.label(ann == 2)
    assert n == 3


def test_annotated_mask_marks_unlabelled_voxels() -> None:
    lab = _touching_boxes()
    mask = np.zeros(lab.shape, bool)
    mask[::4] = True
    ann = annotations_from_instances(lab, annotated=mask)
    assert (ann[~mask] == 0).all() and (ann[mask] > 0).all()


def test_median_frequency_weights() -> None:
    t = np.array([IGNORE, 0, 0, 0, 0, 0, 0, 1, 1, 2, IGNORE], dtype=np.int64)
    freq = np.array([6, 2, 1]) / 9
    want = np.median(freq) / freq
    np.testing.assert_allclose(class_weights_from_annotations(t, 3), want)
    assert class_weights_from_annotations(t, 4)[3] == 1.0


def test_dice_equals_f1_on_annotated_voxels() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(-1, 3, 500)
    pred = rng.integers(0, 3, 500)
    valid = target >= 0
    want = f1_score(target[valid], pred[valid], average=None, labels=[0, 1, 2])
    np.testing.assert_allclose(dice_scores(pred, target, 3), want)


@pytest.mark.parametrize("elastic", [False, True])
def test_augmentation_keeps_image_and_target_aligned(elastic: bool) -> None:
    # The image is the target itself: whatever the geometry does, the two must agree.
    rng = np.random.default_rng(1)
    _, lab = spheres(2, n=32, count=4)
    target = np.where(lab[16] > 0, 1, 0).astype(np.int64)
    target[:3] = IGNORE
    image = target.astype(np.float32)[None]
    for _ in range(8):
        img, tgt = augment_patch(image, target, rng, intensity=False, elastic=elastic)
        assert img.shape == image.shape and tgt.shape == target.shape
        ok = tgt >= 0
        if elastic:  # linear vs nearest interpolation differ only at edges
            assert np.mean(np.abs(img[0][ok] - tgt[ok]) < 0.5) > 0.97
        else:
            np.testing.assert_array_equal(img[0][ok], tgt[ok])
            assert (tgt == IGNORE).sum() == (target == IGNORE).sum()


def test_rotation_about_x_and_y_keeps_annotations() -> None:
    rng = np.random.default_rng(3)
    img = rng.normal(size=(1, 10, 14, 12)).astype(np.float32)
    t = np.full((10, 14, 12), IGNORE, np.int16)
    t[::3] = rng.integers(0, 2, (4, 14, 12))
    vol = _Volume(img, t, np.full_like(t, IGNORE))
    about_x = _rotated(vol, 90, (0, 1))
    about_y = _rotated(vol, 90, (0, 2))
    assert about_x.train.shape == (14, 10, 12) and about_y.train.shape == (12, 14, 10)
    # A quarter turn is exact: annotated planes become columns of planes.
    assert (about_x.train >= 0).sum() == (t >= 0).sum() == (about_y.train >= 0).sum()
    np.testing.assert_array_equal(np.sort(about_x.train[about_x.train >= 0]), np.sort(t[t >= 0]))


def _anisotropic_ball() -> tuple[_Volume, tuple[float, float, float], float]:
    """A ball of radius 10 µm (labels) and a Gaussian blob (image) on z spacing 3 µm."""
    spacing = (3.0, 1.0, 1.0)
    z, y, x = np.meshgrid(
        *(np.arange(n) * s for n, s in zip((16, 44, 40), spacing, strict=True)), indexing="ij"
    )
    d2 = (z - 23.0) ** 2 + (y - 21.0) ** 2 + (x - 19.0) ** 2
    radius = 10.0
    image = np.exp(-d2 / (2 * 8.0**2)).astype(np.float32)[None]
    labels = (d2 < radius**2).astype(np.int16)  # 1 inside, 0 outside, all annotated
    return _Volume(image, labels, np.full_like(labels, IGNORE)), spacing, radius


@pytest.mark.parametrize(("angle", "axes"), [(30.0, (0, 1)), (60.0, (0, 2)), (90.0, (0, 1))])
def test_rotation_of_anisotropic_volume_is_physical(angle: float, axes: tuple[int, int]) -> None:
    vol, spacing, radius = _anisotropic_ball()
    rot = _rotated(vol, angle, axes, spacing)
    # Independent route: resample to isotropic 1 µm with scipy.ndimage.zoom, then
    # scipy.ndimage.rotate (two resamplings where ours does one affine_transform).
    iso_img = ndi.zoom(vol.image[0], (3, 1, 1), order=1, grid_mode=True, mode="nearest")
    iso_lab = ndi.zoom(vol.train, (3, 1, 1), order=0, grid_mode=True, mode="nearest")
    ref_img = ndi.rotate(iso_img, angle, axes=axes, reshape=True, order=1, mode="nearest")
    ref_lab = ndi.rotate(iso_lab, angle, axes=axes, reshape=True, order=0, cval=IGNORE)
    assert rot.image.shape[1:] == ref_img.shape == rot.train.shape
    # Inside the input's footprint (outside, the padding modes differ by design).
    inside = ndi.binary_erosion(ref_lab != IGNORE, iterations=2)
    assert inside.sum() > 0.3 * inside.size
    assert float(np.abs(rot.image[0] - ref_img)[inside].max()) < 0.02
    assert f1_score((ref_lab == 1).ravel(), (rot.train == 1).ravel()) > 0.97
    # Rotated annotations stay on the rotated image: the ball is centred on the blob
    # (both analytic about the same point; the label's 3 µm staircase is symmetric).
    # Only within the input's footprint: "reflect" padding repeats the blob far outside.
    blob = rot.image[0] * (rot.image[0] > np.exp(-(radius**2) / (2 * 8.0**2)))
    blob[rot.train == IGNORE] = 0
    np.testing.assert_allclose(
        ndi.center_of_mass(blob), ndi.center_of_mass(rot.train == 1), atol=0.5
    )
    # Analytic: on the 1 µm output grid the label is a ball of radius 10 µm again
    # (voxel-space rotation would leave a tilted ellipsoid, 3:1).
    pts = np.argwhere(rot.train == 1).astype(np.float64)
    assert abs(len(pts) - 4 / 3 * np.pi * radius**3) < 0.03 * 4 / 3 * np.pi * radius**3
    eig = np.linalg.eigvalsh(np.cov(pts.T))
    assert eig.max() / eig.min() < 1.1
    np.testing.assert_allclose(eig, radius**2 / 5, rtol=0.1)  # ball: r²/5 per axis


def test_train_rotates_with_the_volume_spacing(monkeypatch: pytest.MonkeyPatch) -> None:
    import analysis.inference._train as train_module
    from analysis.volume import ArrayVolumeSource

    seen: list[tuple[float, ...]] = []
    real = train_module._rotated

    def spy(
        vol: _Volume, angle: float, axes: tuple[int, int], spacing: tuple[float, ...]
    ) -> _Volume:
        seen.append(tuple(spacing))
        return real(vol, angle, axes, spacing)

    monkeypatch.setattr(train_module, "_rotated", spy)
    img, lab = spheres(7, n=16, count=2)
    ann = annotations_from_instances(lab, annotated=np.arange(16)[:, None, None] % 4 == 0)
    cfg = TrainConfig(
        dims=2, width=4, depth=2, epochs=1, steps_per_epoch=1, patch=(16, 16), batch_size=1,
        rotations=(45.0,),
    )  # fmt: skip
    train(ArrayVolumeSource(img, scale_um=(3.0, 1.0, 1.0)), ann, cfg)
    assert seen == [(3.0, 1.0, 1.0)] * 2  # about X and about Y
    with pytest.raises(ParameterError, match="spacing"):
        train(img, ann, cfg, spacing=(0.0, 1.0, 1.0))


def test_training_from_every_eighth_plane_segments_other_spheres(tmp_path: Path) -> None:
    img, lab = spheres(1, n=48, count=9)
    annotated = np.zeros(lab.shape, bool)
    annotated[::8] = True  # six planes of 48
    ann = annotations_from_instances(lab, annotated=annotated)
    cfg = TrainConfig(
        dims=2, width=8, depth=2, epochs=12, steps_per_epoch=16, patch=(48, 48), batch_size=4
    )
    history: list[dict[str, object]] = []
    result = train(img, ann, cfg, checkpoint=tmp_path / "ckpt", callback=history.append)
    assert len(result.history) == len(history) >= 1
    assert all("val_loss" in h and "dice" in h for h in result.history)
    # Unseen sample: Dice of the sphere class against the analytic truth.
    img2, lab2 = spheres(2, n=48, count=9)
    pred = TorchPredictor(result.model, unet_spec(result.model.config), device="cpu")
    labels = labels_from_probabilities(predict_tiled(pred, img2, tile=32))
    dice = f1_score((lab2 > 0).ravel(), (labels == 1).ravel())
    assert dice > 0.93
    # The best checkpoint on disk is the returned model.
    saved, extra = load_checkpoint(tmp_path / "ckpt")
    assert extra["best"]["epoch"] == result.best_epoch
    for a, b in zip(saved.state_dict().values(), result.model.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_early_stopping_without_learning() -> None:
    # No learning rate and no batch statistics: the validation loss never improves.
    img, lab = spheres(3, n=32, count=4)
    ann = annotations_from_instances(lab, annotated=np.arange(32)[:, None, None] % 4 == 0)
    cfg = TrainConfig(
        dims=2, width=4, depth=2, epochs=20, steps_per_epoch=2, patch=(32, 32),
        batch_size=2, learning_rate=0.0, patience=2, norm="none",
    )  # fmt: skip
    result = train(img, ann, cfg)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 0


def test_3d_training_with_rotations_rejected_and_3d_runs() -> None:
    img, lab = spheres(4, n=32, count=4)
    ann = annotations_from_instances(lab, annotated=np.arange(32)[:, None, None] % 4 == 0)
    with pytest.raises(ParameterError, match="rotations"):
        TrainConfig(dims=3, rotations=(90.0,))
    cfg = TrainConfig(
        dims=3, width=4, depth=2, epochs=2, steps_per_epoch=2, patch=(16, 32, 32), batch_size=2
    )
    result = train(img, ann, cfg)
    assert result.model.config.dims == 3 and len(result.history) == 2


def test_2d_training_with_rotated_planes_runs() -> None:
    img, lab = spheres(5, n=32, count=4)
    ann = annotations_from_instances(lab, annotated=np.arange(32)[:, None, None] % 4 == 0)
    cfg = TrainConfig(
        dims=2, width=4, depth=2, epochs=2, steps_per_epoch=3, patch=(32, 32), batch_size=2,
        rotations=(30.0, 90.0),
    )  # fmt: skip
    assert len(train(img, ann, cfg).history) == 2


def test_bad_annotations_raise() -> None:
    img = np.zeros((4, 16, 16), np.float32)
    with pytest.raises(ParameterError, match="at least two"):
        train(img, np.ones((4, 16, 16), np.uint8))
    with pytest.raises(ParameterError, match="shape"):
        train(img, np.ones((4, 16, 15), np.uint8))
    with pytest.raises(ParameterError, match="integers"):
        train(img, np.ones((4, 16, 16), np.float32))


def test_objects_from_probabilities_matches_scipy_label() -> None:
    from analysis.inference import objects_from_probabilities

    _, lab = spheres(6, n=40, count=6)
    prob = ndi.gaussian_filter((lab > 0).astype(np.float32), 1.0)
    speck = np.zeros_like(prob)
    speck[1, 1, 1] = 1.0  # a one-voxel false positive
    objs = objects_from_probabilities(prob + speck, min_volume_um3=8.0)
    want, n = ndi.label(prob > 0.5)
    assert objs.max() == n
    # Same partition as scipy's components (numbering may differ), speck removed.
    pairs = set(zip(objs[want > 0].ravel(), want[want > 0].ravel(), strict=True))
    assert len(pairs) == n and objs[1, 1, 1] == 0
