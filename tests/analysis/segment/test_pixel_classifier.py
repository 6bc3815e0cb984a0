"""Random-forest pixel classifier: learns from sparse scribbles, safe save/load, block-wise."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import feature
from sklearn.ensemble import RandomForestClassifier

from analysis.errors import FormatError, ParameterError
from analysis.segment import PixelClassifier
from analysis.volume import FunctionVolumeSource


@pytest.fixture(scope="module")
def textured():
    """Cell-like smooth texture vs resin-like grainy texture with the SAME mean intensity."""
    rng = np.random.default_rng(0)
    shape = (24, 40, 40)
    truth = ndi.gaussian_filter(rng.normal(size=shape), 4) > 0
    smooth = ndi.gaussian_filter(rng.normal(size=shape), 2) * 3
    grainy = rng.normal(size=shape)
    image = np.where(truth, 0.5 + 0.1 * smooth, 0.5 + 0.3 * grainy).astype(np.float32)
    scribbles = np.zeros(shape, np.int64)
    for cls, where in ((1, truth), (2, ~truth)):
        idx = np.flatnonzero(where)
        scribbles.flat[rng.choice(idx, 150, replace=False)] = cls
    return image, truth, scribbles


def _small():
    return PixelClassifier(sigma_min=0.5, sigma_max=4.0, n_estimators=20, max_depth=8)


def test_learns_texture_from_sparse_scribbles(textured):
    image, truth, scribbles = textured
    clf = _small().fit(image, scribbles)
    assert np.count_nonzero(scribbles) / scribbles.size < 0.01
    pred = clf.predict(image)
    assert set(np.unique(pred)) == {1, 2}
    assert np.mean((pred == 1) == truth) > 0.9
    proba = clf.predict_proba(image)
    assert proba.shape == (*image.shape, 2)
    np.testing.assert_allclose(proba.sum(-1), 1.0, rtol=1e-6)


def test_equals_a_plain_sklearn_forest_on_skimage_features(textured):
    image, _, scribbles = textured
    clf = _small().fit(image, scribbles)
    feats = feature.multiscale_basic_features(image, sigma_min=0.5, sigma_max=4.0)
    ref = RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0, n_jobs=1)
    ref.fit(feats[scribbles > 0], scribbles[scribbles > 0])
    np.testing.assert_array_equal(
        clf.predict(image), ref.predict(feats.reshape(-1, feats.shape[-1])).reshape(image.shape)
    )


def test_save_load_round_trip_is_exact(textured, tmp_path):
    image, _, scribbles = textured
    clf = _small().fit(image, scribbles)
    path = tmp_path / "cell_vs_resin.npz"
    clf.save(path)
    loaded = PixelClassifier.load(path)
    assert loaded.settings == clf.settings
    np.testing.assert_array_equal(loaded.predict_proba(image), clf.predict_proba(image))
    # The file is plain arrays: NumPy opens it with pickling disabled.
    with np.load(path, allow_pickle=False) as npz:
        assert "header" in npz.files


def test_pickles_and_garbage_are_rejected_not_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle executed')",))

    bad = tmp_path / "evil.npz"
    buf = io.BytesIO()
    np.savez(buf, header=np.array([Boom()], dtype=object))
    bad.write_bytes(buf.getvalue())
    with pytest.raises(FormatError, match="not a vrscope classifier"):
        PixelClassifier.load(bad)
    raw = tmp_path / "model.pkl"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(FormatError, match="not a vrscope classifier"):
        PixelClassifier.load(raw)


def test_blockwise_prediction_equals_whole_volume(textured):
    image, _, scribbles = textured
    clf = _small().fit(image, scribbles)
    src = FunctionVolumeSource(
        image.shape, lambda lvl, reg: image[reg], dtype=np.float32, chunks=(12, 20, 20), n_levels=1
    )
    out = clf.predict_blockwise(src)
    np.testing.assert_array_equal(out, clf.predict(image))


def test_classifier_bad_inputs(textured):
    image, _, scribbles = textured
    with pytest.raises(ParameterError, match="two classes"):
        _small().fit(image, (scribbles == 1).astype(int))
    with pytest.raises(ParameterError, match="not trained"):
        _small().predict(image)
    with pytest.raises(ParameterError, match="sigma"):
        PixelClassifier(sigma_min=0)
