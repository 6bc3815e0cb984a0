"""Feature columns as per-label values, derived columns, rule classes, object classifier."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from analysis.errors import ParameterError
from analysis.features._expressions import evaluate
from analysis.segment import forest_from_bytes, forest_to_bytes

__all__ = [
    "ObjectClassifier",
    "add_derived_column",
    "classify_by_rules",
    "label_lookup_table",
    "label_values",
]

log = logging.getLogger(__name__)


def _column(table: pd.DataFrame, column: str) -> pd.Series:
    if column not in table.columns:
        raise ParameterError(
            f"table has no column {column!r} (columns: {', '.join(map(str, table.columns))})"
        )
    if "label" not in table.columns:
        raise ParameterError("table has no 'label' column")
    return table[column]


def label_values(table: pd.DataFrame, column: str) -> dict[int, Any]:
    """``{label: value}`` for one feature column, e.g. to colour objects in the viewer."""
    values = _column(table, column)
    return {int(k): v for k, v in zip(table["label"], values.tolist(), strict=True)}


def label_lookup_table(
    table: pd.DataFrame, column: str, *, max_label: int | None = None, fill: float = np.nan
) -> npt.NDArray[np.float64]:
    """A lookup array ``lut[label] = value`` (``fill`` for labels not in the table).

    ``lut[label_image]`` turns a label image into a feature image in one NumPy step.
    """
    values = pd.to_numeric(_column(table, column), errors="coerce").to_numpy(np.float64)
    labels = table["label"].to_numpy(np.int64)
    if labels.size and labels.min() < 0:
        raise ParameterError("labels must be non-negative")
    top = int(labels.max()) if labels.size else 0
    size = max(top, max_label or 0) + 1
    lut = np.full(size, fill, dtype=np.float64)
    lut[labels] = values
    return lut


def add_derived_column(table: pd.DataFrame, name: str, expression: str) -> pd.DataFrame:
    """A copy of ``table`` with a new column computed from an expression over columns.

    Example: the seed's "swollen mitochondria" feature,
    ``add_derived_column(t, "intensity_per_volume", "mean_intensity / volume_um3")``.
    See :func:`analysis.features.evaluate` for the expression language.
    """
    if not name or not isinstance(name, str):
        raise ParameterError("derived column needs a name")
    out = table.copy()
    out[name] = evaluate(expression, table)
    return out


def classify_by_rules(
    table: pd.DataFrame,
    rules: Sequence[tuple[str, str]] | Mapping[str, str],
    *,
    default: str = "unclassified",
    column: str = "class",
) -> pd.DataFrame:
    """Assign classes by boolean rules; the first rule that holds for a row wins.

    Parameters
    ----------
    rules : sequence of (class name, condition) or mapping class -> condition
        Conditions are expressions such as ``"volume_um3 > 0.5 and sphericity < 0.6"``.
    default : str, default: "unclassified"
        Class of rows no rule matches.
    column : str, default: "class"

    Returns
    -------
    A copy of ``table`` with ``column`` added.
    """
    items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    if not items:
        raise ParameterError("no classification rules given")
    classes = np.full(len(table), default, dtype=object)
    open_rows = np.ones(len(table), dtype=bool)
    for cls, condition in items:
        hit = np.asarray(evaluate(condition, table), dtype=bool) & open_rows
        classes[hit] = cls
        open_rows &= ~hit
    out = table.copy()
    out[column] = classes
    return out


class ObjectClassifier:
    """Random-forest object classifier trained from a handful of user-labelled objects.

    Parameters
    ----------
    features : sequence of str
        Feature columns used as the classifier's input.
    n_estimators : int, default: 100
    random_state : int, default: 0
    """

    def __init__(
        self, features: Sequence[str], *, n_estimators: int = 100, random_state: int = 0
    ) -> None:
        if not features:
            raise ParameterError("the object classifier needs at least one feature column")
        self.features = list(features)
        self.forest = RandomForestClassifier(
            n_estimators=n_estimators, random_state=random_state, n_jobs=1
        )
        self._fitted = False

    def _matrix(self, table: pd.DataFrame) -> npt.NDArray[np.float64]:
        missing = [c for c in self.features if c not in table.columns]
        if missing:
            raise ParameterError(f"table lacks feature column(s) {', '.join(missing)}")
        x = table[self.features].to_numpy(np.float64)
        if not np.all(np.isfinite(x)):
            raise ParameterError("feature columns contain NaN or infinite values")
        return x

    def fit(self, table: pd.DataFrame, annotations: Mapping[int, str]) -> ObjectClassifier:
        """Train on the objects in ``annotations`` (``{label: class name}``)."""
        if "label" not in table.columns:
            raise ParameterError("table has no 'label' column")
        classes = set(annotations.values())
        if len(classes) < 2:
            raise ParameterError(f"label objects of at least two classes, got {len(classes)}")
        rows = table.set_index("label")
        unknown = [k for k in annotations if k not in rows.index]
        if unknown:
            raise ParameterError(f"annotated label(s) not in the table: {unknown[:5]}")
        sub = rows.loc[list(annotations)].reset_index()
        self.forest.fit(self._matrix(sub), np.asarray(list(annotations.values()), dtype=str))
        self._fitted = True
        return self

    def predict(self, table: pd.DataFrame, *, column: str = "class") -> pd.DataFrame:
        """A copy of ``table`` with the predicted class per object in ``column``."""
        if not self._fitted:
            raise ParameterError("the object classifier is not trained yet (call fit first)")
        out = table.copy()
        out[column] = self.forest.predict(self._matrix(table)).astype(object) if len(table) else []
        return out

    def to_bytes(self) -> bytes:
        """Pickle-free ``.npz`` bytes (see :mod:`analysis.segment._forest`)."""
        if not self._fitted:
            raise ParameterError("the object classifier is not trained yet (call fit first)")
        return forest_to_bytes(self.forest, {"kind": "object", "features": self.features})

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "classifier") -> ObjectClassifier:
        forest, meta = forest_from_bytes(data, source)
        if meta.get("kind") != "object":
            raise ParameterError(
                f"{source} holds a {meta.get('kind')!r} classifier, not an object one"
            )
        clf = cls(list(meta["features"]))
        clf.forest = forest
        clf._fitted = True
        return clf

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_bytes` to ``path`` via :func:`analysis.io.save_classifier`."""
        from analysis.io import save_classifier  # the file side lives in analysis.io

        save_classifier(self, path)

    @classmethod
    def load(cls, path: str | Path) -> ObjectClassifier:
        """Read a file written by :meth:`save` (:func:`analysis.io.load_classifier`)."""
        from analysis.io import load_classifier

        return load_classifier(cls, path)
