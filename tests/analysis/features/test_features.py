"""Feature helpers against pandas (expressions, mapping) and scikit-learn (classifier)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from analysis.errors import FormatError, ParameterError
from analysis.features import (
    ObjectClassifier,
    add_derived_column,
    classify_by_rules,
    evaluate,
    label_lookup_table,
    label_values,
)


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame(
        {
            "label": np.arange(3, 3 + 2 * n, 2),
            "volume_um3": rng.uniform(0.1, 2.0, n),
            "mean_intensity": rng.uniform(50, 200, n),
            "sphericity": rng.uniform(0.3, 1.0, n),
        }
    )


@pytest.mark.parametrize(
    "expr",
    [
        "mean_intensity / volume_um3",
        "2 * volume_um3 ** 2 - sphericity + 1",
        "-(mean_intensity % 7) / (volume_um3 + 0.5)",
        "volume_um3 > 1 and sphericity < 0.6",
        "not (volume_um3 > 1) or mean_intensity >= 150",
        "0.2 < volume_um3 <= 1.5",
    ],
)
def test_expressions_equal_pandas_eval(table, expr):
    np.testing.assert_allclose(
        evaluate(expr, table).astype(float),
        table.eval(expr, engine="python").to_numpy().astype(float),
        rtol=1e-12,
    )


def test_functions_and_backticks(table):
    t = table.rename(columns={"mean_intensity": "mean intensity"})
    np.testing.assert_allclose(
        evaluate("log(`mean intensity`) + sqrt(volume_um3) + max(sphericity, 0.5)", t),
        np.log(table["mean_intensity"])
        + np.sqrt(table["volume_um3"])
        + np.maximum(table["sphericity"], 0.5),
    )


def test_swollen_mitochondria_derived_column(table):
    out = add_derived_column(table, "intensity_per_volume", "mean_intensity / volume_um3")
    np.testing.assert_array_equal(
        out["intensity_per_volume"], table["mean_intensity"] / table["volume_um3"]
    )
    assert "intensity_per_volume" not in table.columns  # input untouched


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ("__import__('os').system('echo hacked')", "not allowed"),
        ("volume_um3.__class__", "not allowed"),
        ("[x for x in volume_um3]", "not allowed"),
        ("nonexistent * 2", "unknown column"),
        ("volume_um3 +", "cannot parse"),
        ("", "empty"),
        ("`unbalanced", "backtick"),
    ],
)
def test_unsafe_or_bad_expressions_are_rejected(table, expr, match):
    with pytest.raises(ParameterError, match=match):
        evaluate(expr, table)


def test_rules_first_match_wins_like_numpy_select(table):
    rules = [("swollen", "volume_um3 > 1.2 and sphericity > 0.7"), ("large", "volume_um3 > 1.2")]
    out = classify_by_rules(table, rules)
    v, s = table["volume_um3"], table["sphericity"]
    expected = np.select([(v > 1.2) & (s > 0.7), v > 1.2], ["swollen", "large"], "unclassified")
    np.testing.assert_array_equal(out["class"].to_numpy().astype(str), expected)
    with pytest.raises(ParameterError, match="no classification rules"):
        classify_by_rules(table, [])


def test_label_value_mapping_and_lookup_table(table):
    mapping = label_values(table, "volume_um3")
    assert mapping == dict(zip(table["label"], table["volume_um3"], strict=True))
    lut = label_lookup_table(table, "volume_um3", max_label=200)
    assert lut.shape == (201,) and np.isnan(lut[0]) and np.isnan(lut[4])
    label_image = np.array([[[0, 3], [5, 81]]])
    mapped = pd.Series(label_image.ravel()).map(mapping).to_numpy().reshape(label_image.shape)
    np.testing.assert_array_equal(lut[label_image], mapped)
    with pytest.raises(ParameterError, match="no column 'nope'"):
        label_values(table, "nope")


def _shapes_table(seed):
    """Two object classes that differ in sphericity and volume, plus noise columns."""
    rng = np.random.default_rng(seed)
    n = 60
    cls = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "label": np.arange(1, n + 1),
            "sphericity": np.where(cls == 1, rng.normal(0.9, 0.04, n), rng.normal(0.55, 0.05, n)),
            "volume_um3": np.where(cls == 1, rng.normal(0.4, 0.1, n), rng.normal(1.1, 0.2, n)),
            "noise": rng.normal(size=n),
        }
    ), np.where(cls == 1, "round", "tubular")


def test_object_classifier_from_a_handful_of_labels_matches_sklearn(tmp_path):
    table, truth = _shapes_table(1)
    feats = ["sphericity", "volume_um3", "noise"]
    annotated = {int(lab): str(c) for lab, c in zip(table["label"][:8], truth[:8], strict=True)}
    assert len(set(annotated.values())) == 2
    clf = ObjectClassifier(feats, n_estimators=30).fit(table, annotated)
    pred = clf.predict(table)["class"].to_numpy().astype(str)
    assert np.mean(pred == truth) > 0.95
    ref = RandomForestClassifier(n_estimators=30, random_state=0, n_jobs=1)
    ref.fit(table[feats].to_numpy()[:8], truth[:8])
    np.testing.assert_array_equal(pred, ref.predict(table[feats].to_numpy()))
    path = tmp_path / "objects.npz"
    clf.save(path)
    loaded = ObjectClassifier.load(path)
    assert loaded.features == feats
    np.testing.assert_array_equal(loaded.predict(table)["class"], clf.predict(table)["class"])
    with pytest.raises(FormatError):
        ObjectClassifier.from_bytes(b"not a file")


def test_object_classifier_bad_inputs():
    table, _ = _shapes_table(2)
    with pytest.raises(ParameterError, match="two classes"):
        ObjectClassifier(["sphericity"]).fit(table, {1: "a", 2: "a"})
    with pytest.raises(ParameterError, match="not in the table"):
        ObjectClassifier(["sphericity"]).fit(table, {1: "a", 999: "b"})
    with pytest.raises(ParameterError, match="lacks feature"):
        ObjectClassifier(["missing"]).fit(table, {1: "a", 2: "b"})
    with pytest.raises(ParameterError, match="not trained"):
        ObjectClassifier(["sphericity"]).predict(table)
