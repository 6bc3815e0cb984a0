"""The pieces of ``batch_infer`` against the single process: blocks blended from the tiles
that reach into them equal ``predict_tiled`` bit for bit (probabilities, not only labels),
and the normalisation statistics reduced from per-z-block tasks equal the single pass
(and NumPy's mean and std of the whole volume)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from analysis.batch import InferJob, blend_block, block_grid, stats_moments  # noqa: E402
from analysis.inference import (  # noqa: E402
    InputVolume,
    ModelSpec,
    Normalizer,
    Step,
    TorchPredictor,
    UNet,
    UNetConfig,
    load_model,
    merge_moments,
    moment_blocks,
    plan_tiles,
    predict_tiled,
    save_checkpoint,
)
from analysis.io import open_volume, write_ngff  # noqa: E402
from tests.analysis.inference._helpers import spheres  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _unet(dims: int, seed: int) -> UNet:
    torch.manual_seed(seed)
    net = UNet(UNetConfig(dims=dims, depth=2, width=4))
    for p in net.parameters():
        p.data.normal_(0.0, 0.5)
    return net.eval()


def _image() -> np.ndarray:
    img, _ = spheres(4, n=48, count=8)
    return img[:36, :44]  # (36, 44, 48): no axis a multiple of the tiles or blocks


def _assembled(predictor, img, tile, block, batch_size, overlap=None):
    inp = InputVolume(img)
    plan = plan_tiles(inp.spatial_shape, predictor.spec, tile, overlap)
    norm = Normalizer(predictor.spec.preprocessing, inp, predictor.spec.dims)
    out = np.full((predictor.spec.n_classes, *img.shape), np.nan, np.float32)
    evaluations = 0
    for start, stop in block_grid(img.shape, block):
        probs, n = blend_block(predictor, inp, plan, norm, start, stop, batch_size)
        out[(slice(None), *(slice(a, b) for a, b in zip(start, stop, strict=True)))] = probs
        evaluations += n
    return out, evaluations, plan.n_tiles


@pytest.mark.parametrize(
    ("block", "batch_size", "overlap"),
    [((16, 16, 16), 3, None), ((12, 20, 48), 1, None), ((36, 44, 48), 4, None),
     ((8, 8, 8), 5, 8)],
)  # fmt: skip
def test_blocks_equal_predict_tiled_bit_for_bit_3d(block, batch_size, overlap):
    """100 tiles of 16³ (cores of 12): with batches of 3 the plan's last tile runs alone,
    with 1 every tile does; the blocks run them alike (a lone tile takes other kernels)."""
    predictor = TorchPredictor(_unet(3, 1), _spec3(), device="cpu")
    img = _image()
    ref = predict_tiled(predictor, img, tile=16, overlap=overlap, batch_size=batch_size)
    got, evaluations, tiles = _assembled(predictor, img, 16, block, batch_size, overlap)
    assert not np.isnan(got).any()
    assert np.array_equal(got, ref)  # every probability, every bit
    # Tiles straddling block borders run once per block they reach into.
    assert evaluations >= tiles and (evaluations > tiles) == (block != img.shape)


def _spec3() -> ModelSpec:
    from analysis.inference import unet_spec

    return unet_spec(UNetConfig(dims=3, depth=2, width=4))


def test_blocks_equal_predict_tiled_2d_with_per_plane_statistics():
    """A 2D model normalised over (y, x) only: statistics per plane, taken by each block
    from its whole planes."""
    from analysis.inference import unet_spec

    base = unet_spec(UNetConfig(dims=2, depth=2, width=4))
    spec = ModelSpec(
        **{**base.__dict__, "preprocessing": (Step("zero_mean_unit_variance", {"axes": "yx"}),)}
    )
    predictor = TorchPredictor(_unet(2, 2), spec, device="cpu")
    img = _image() * np.linspace(0.5, 2.0, 36, dtype=np.float32)[:, None, None]
    ref = predict_tiled(predictor, img, tile=(24, 24), batch_size=3)
    got, _, _ = _assembled(predictor, img, (24, 24), (5, 16, 32), 3)
    assert np.array_equal(got, ref)


def test_statistics_reduced_from_z_block_tasks(tmp_path, monkeypatch):
    import analysis.inference._tiling as tiling

    monkeypatch.setattr(tiling, "_STATS_BLOCK_VOXELS", 5 * 44 * 48)  # 8 z-blocks
    img = _image().astype(np.float32) * 7.0 + 1000.0  # a large mean: cancellation would show
    store = tmp_path / "img.zarr"
    write_ngff(img, store, scale_um=(0.1, 0.1, 0.1), chunks=(16, 16, 16))
    model = tmp_path / "unet"
    save_checkpoint(_unet(3, 3), model)
    job = InferJob(str(store), str(model), "pred", (16, 16, 16), device="cpu")
    inp = InputVolume(open_volume(str(store)))
    zs = moment_blocks(inp)
    assert len(zs) == 8
    parts = []
    for r in zs:  # what the tasks return (plain lists: they travel through the scheduler)
        n, mean, m2 = stats_moments(job, 0, r.start, r.stop)
        parts.append((n, np.asarray(mean), np.asarray(m2)))
    mean, std = merge_moments(parts)
    spec = load_model(str(model), device="cpu").spec
    ref_mean, ref_std = Normalizer((), inp, 3).stats(spec.preprocessing[0], range(36))
    assert mean.tobytes() == ref_mean.tobytes() and std.tobytes() == ref_std.tobytes()
    vals = img.astype(np.float64)
    np.testing.assert_allclose(mean, [vals.mean()], rtol=1e-13)
    np.testing.assert_allclose(std, [vals.std()], rtol=1e-12)
