"""Smooth tiled inference: exact blending, agreement with untiled runs, no seams, bounded reads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from analysis.errors import ParameterError
from analysis.inference import (
    ModelSpec,
    Step,
    TorchPredictor,
    UNet,
    UNetConfig,
    blend_window,
    labels_from_probabilities,
    plan_tiles,
    predict_tiled,
    predict_untiled,
    unet_spec,
)
from analysis.volume import ArrayVolumeSource, FunctionVolumeSource
from tests.analysis.inference._helpers import identity_predictor


def _unet_predictor(dims: int, seed: int = 0, n_classes: int = 3) -> TorchPredictor:
    torch.manual_seed(seed)
    model = UNet(UNetConfig(dims=dims, width=4, depth=3, n_classes=n_classes))
    # Random but non-trivial BatchNorm statistics, as after training.
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return TorchPredictor(model, unet_spec(model.config), device="cpu")


@pytest.mark.parametrize(
    ("shape", "tile", "overlap", "halo"),
    [
        ((20, 33, 47), (8, 16, 16), (2, 4, 4), 2),
        ((9, 40, 41), (8, 12, 20), (2, 6, 3), (1, 2, 0)),
        ((5, 17, 16), (16, 16, 16), 0, 0),
    ],
)
def test_blending_weights_sum_to_one(shape: Any, tile: Any, overlap: Any, halo: Any) -> None:
    # The identity model returns its input: any error in windows, normalisation,
    # cropping or placement shows up as a difference to the input.
    rng = np.random.default_rng(0)
    vol = rng.normal(size=shape).astype(np.float32)
    out = predict_tiled(
        identity_predictor(), vol, tile=tile, overlap=overlap, halo=halo, batch_size=3
    )
    assert out.shape == (1, *shape)
    np.testing.assert_allclose(out[0], vol, atol=1e-5)


def test_identity_2d_model_runs_plane_by_plane() -> None:
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(4, 50, 37)).astype(np.float32)
    out = predict_tiled(identity_predictor(dims=2), vol, tile=(16, 16), overlap=5, halo=3)
    np.testing.assert_allclose(out[0], vol, atol=1e-5)


def test_conv_model_matches_scipy_correlate_everywhere() -> None:
    # A single 3x3x3 convolution with zero padding is wrong at every tile border;
    # with a halo of 1 the tiled result must equal the convolution of the whole
    # volume, mirrored at its border (scipy.ndimage mode "mirror"), everywhere.
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 3)).astype(np.float32)
    conv = torch.nn.Conv3d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel)[None, None])
    spec = ModelSpec(dims=3, in_channels=1, n_classes=1, name="conv")
    pred = TorchPredictor(conv, spec, device="cpu")
    vol = rng.normal(size=(21, 30, 26)).astype(np.float32)
    out = predict_tiled(pred, vol, tile=(10, 12, 12), overlap=3, halo=1)
    want = ndi.correlate(vol.astype(np.float64), kernel.astype(np.float64), mode="mirror")
    np.testing.assert_allclose(out[0], want, atol=1e-4)


@pytest.mark.parametrize("dims", [2, 3])
def test_tiled_equals_untiled_when_the_volume_fits_one_tile(dims: int) -> None:
    pred = _unet_predictor(dims)
    rng = np.random.default_rng(3)
    vol = ndi.gaussian_filter(rng.normal(size=(6, 30, 27)), 1.5).astype(np.float32) * 50 + 120
    tile = (32, 32) if dims == 2 else (8, 32, 32)
    tiled = predict_tiled(pred, vol, tile=tile)
    untiled = predict_untiled(pred, vol)
    assert tiled.shape == untiled.shape == (3, 6, 30, 27)
    assert float(np.abs(tiled - untiled).max()) < 1e-4
    # Probabilities (softmax) sum to one.
    np.testing.assert_allclose(tiled.sum(axis=0), 1.0, atol=1e-5)


def _border_contrast(prob: np.ndarray, starts: tuple[int, ...], core: int, axis: int) -> float:
    """Mean |difference| between neighbours across core borders / mean |difference| overall."""
    d = np.abs(np.diff(prob, axis=axis)).mean(axis=tuple(a for a in range(prob.ndim) if a != axis))
    edges = set()
    for s in starts:
        for e in (s, s + core):
            if 0 < e < prob.shape[axis]:
                edges.add(e - 1)  # difference between voxels e-1 and e
    border = np.mean([d[e] for e in sorted(edges)])
    return float(border / d.mean())


def test_no_seams_at_tile_borders() -> None:
    # A random U-Net on a smooth volume: tile borders must be no rougher than the
    # interior. The same measure on naive tiling (no halo, no overlap) shows the
    # seams, so the check can fail.
    pred = _unet_predictor(3, seed=4, n_classes=2)
    rng = np.random.default_rng(4)
    vol = ndi.gaussian_filter(rng.normal(size=(16, 96, 96)), 3.0).astype(np.float32)
    plan = plan_tiles(vol.shape, pred.spec, tile=(16, 32, 32), overlap=(0, 8, 8), halo=(0, 4, 4))
    smooth = predict_tiled(pred, vol, tile=(16, 32, 32), overlap=(0, 8, 8), halo=(0, 4, 4))[1]
    naive_plan = plan_tiles(vol.shape, pred.spec, tile=(16, 32, 32), overlap=0, halo=0)
    naive = predict_tiled(pred, vol, tile=(16, 32, 32), overlap=0, halo=0)[1]
    for axis in (1, 2):
        a = plan.axes[axis]
        ratio = _border_contrast(smooth, a.starts, a.core, axis)
        na = naive_plan.axes[axis]
        naive_ratio = _border_contrast(naive, na.starts, na.core, axis)
        assert ratio < 1.5, (axis, ratio)
        assert naive_ratio > 1.5, (axis, naive_ratio, ratio)


def test_reads_and_batches_are_bounded_by_the_tile() -> None:
    # A procedural volume of 4096^3 voxels (64 GiB as uint8): every read is one
    # tile with its halo and every model call holds at most ``batch_size`` tiles.
    reads: list[int] = []

    def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
        shape = tuple(s.stop - s.start for s in region)
        reads.append(int(np.prod(shape)))
        return np.ones(shape, np.uint8)

    src = FunctionVolumeSource((4096, 4096, 4096), fn, chunks=(64, 64, 64))
    calls: list[int] = []

    class Recorder(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(int(x.shape[0]))
            return x

    class Stop(Exception):
        pass

    def progress(done: int) -> None:
        if done >= 6:
            raise Stop

    class Sink:
        """Accepts the accumulation without storing 256 GiB of float32."""

        shape = (1, 4096, 4096, 4096)

        def __getitem__(self, key: Any) -> np.ndarray:
            return np.zeros([s.stop - s.start for s in key[1:]], np.float32)[None]

        def __setitem__(self, key: Any, value: Any) -> None:
            assert value.shape[1:] == tuple(s.stop - s.start for s in key[1:])

    spec = ModelSpec(dims=3, in_channels=1, n_classes=1, name="rec")
    pred = TorchPredictor(Recorder(), spec, device="cpu")
    with pytest.raises(Stop):
        predict_tiled(
            pred, src, tile=32, overlap=8, halo=4, batch_size=2, out=Sink(), progress=progress
        )
    assert calls == [2, 2, 2]
    assert len(reads) == 6 and max(reads) <= 32**3


def test_normalisation_uses_whole_volume_statistics() -> None:
    # zero_mean_unit_variance over the volume: the identity model returns the
    # volume standardised with numpy's mean and std, tile by tile.
    rng = np.random.default_rng(5)
    vol = (rng.normal(size=(12, 40, 40)) * 7 + 30).astype(np.float32)
    vol[:, :20] += 50  # tiles with very different local statistics
    spec = ModelSpec(
        dims=3,
        in_channels=1,
        n_classes=1,
        preprocessing=(Step("zero_mean_unit_variance", {"axes": ["z", "y", "x"]}),),
        name="zmuv",
    )
    pred = TorchPredictor(identity_predictor().module, spec, device="cpu")
    out = predict_tiled(pred, ArrayVolumeSource(vol, chunks=(4, 8, 8)), tile=16, overlap=4, halo=2)
    want = (vol - vol.mean(dtype=np.float64)) / (vol.std(dtype=np.float64) + 1e-6)
    np.testing.assert_allclose(out[0], want, atol=1e-4)


def test_blend_window_favours_the_centre() -> None:
    w = blend_window(32)
    assert w.argmax() in (15, 16) and w[0] < 0.01 and np.allclose(w, w[::-1])


def test_bad_tiles_raise_parameter_errors() -> None:
    pred = _unet_predictor(2)
    vol = np.zeros((2, 40, 40), np.float32)
    with pytest.raises(ParameterError, match="tile size 30"):
        predict_tiled(pred, vol, tile=(30, 32))
    with pytest.raises(ParameterError, match="overlap"):
        predict_tiled(pred, np.zeros((1, 100, 100), np.float32), tile=32, halo=0, overlap=40)
    with pytest.raises(ParameterError, match="input channel"):
        predict_tiled(pred, np.zeros((2, 1, 8, 8), np.float32))


def test_labels_from_probabilities_is_argmax_blockwise() -> None:
    rng = np.random.default_rng(6)
    p = rng.random((3, 20, 9, 8)).astype(np.float32)
    np.testing.assert_array_equal(labels_from_probabilities(p, block_planes=7), p.argmax(axis=0))
    one = p[:1]
    np.testing.assert_array_equal(labels_from_probabilities(one, threshold=0.3), one[0] > 0.3)


def test_dask_input_is_read_tile_by_tile() -> None:
    import dask.array as da

    rng = np.random.default_rng(7)
    vol = rng.normal(size=(10, 40, 36)).astype(np.float32)
    computed: list[tuple[int, ...]] = []

    def block(x: np.ndarray) -> np.ndarray:
        computed.append(x.shape)
        return x

    lazy = da.from_array(vol, chunks=(5, 20, 18)).map_blocks(block, dtype=np.float32)
    out = predict_tiled(identity_predictor(), lazy, tile=16, overlap=4, halo=2)
    np.testing.assert_allclose(out[0], vol, atol=1e-5)
    # Never the whole array at once: dask computed only the blocks each tile touched.
    assert computed and max(int(np.prod(s)) for s in computed) <= 5 * 20 * 18
