"""Saving a fitted scikit-learn random forest as plain arrays (no pickle).

Pickle and joblib files run code when loaded, so a classifier file shared by a
colleague or downloaded with a dataset could execute anything. We store each tree's
node table field by field as plain NumPy arrays (``np.savez``, loaded with
``allow_pickle=False``) plus JSON metadata, and rebuild the estimators through
scikit-learn's own ``Tree.__setstate__``, so predictions after loading are the
library's, bit for bit. A file from a scikit-learn whose node layout differs is
rejected with :class:`FormatError` instead of being misread.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from analysis.errors import FormatError

__all__ = ["forest_from_bytes", "forest_to_bytes"]

_FORMAT = "vrscope-forest"
_VERSION = 1


def forest_to_bytes(forest: RandomForestClassifier, meta: dict[str, Any]) -> bytes:
    """Serialise a fitted single-output forest and JSON-able ``meta`` to ``.npz`` bytes."""
    if not hasattr(forest, "estimators_"):
        raise FormatError("the random forest is not fitted")
    if forest.n_outputs_ != 1:
        raise FormatError("only single-output forests can be saved")
    arrays: dict[str, npt.NDArray[Any]] = {}
    trees = []
    for i, est in enumerate(forest.estimators_):
        state = est.tree_.__getstate__()
        nodes = state["nodes"]
        for field in nodes.dtype.names:
            arrays[f"t{i}_{field}"] = np.ascontiguousarray(nodes[field])
        arrays[f"t{i}_values"] = np.asarray(state["values"])
        trees.append({"max_depth": int(state["max_depth"]), "node_count": int(state["node_count"])})
    header = {
        "format": _FORMAT,
        "version": _VERSION,
        "sklearn": sklearn.__version__,
        "classes": np.asarray(forest.classes_).tolist(),
        "n_features": int(forest.n_features_in_),
        "node_fields": list(forest.estimators_[0].tree_.__getstate__()["nodes"].dtype.names),
        "trees": trees,
        "meta": meta,
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def forest_from_bytes(
    data: bytes, source: str = "classifier"
) -> tuple[RandomForestClassifier, dict[str, Any]]:
    """Rebuild a forest saved by :func:`forest_to_bytes`; returns ``(forest, meta)``."""
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
        header = json.loads(bytes(npz["header"]).decode("utf-8"))
    except Exception as exc:
        raise FormatError(f"{source} is not a vrscope classifier file ({exc})") from exc
    if header.get("format") != _FORMAT or header.get("version") != _VERSION:
        raise FormatError(
            f"{source} is not a vrscope classifier file (format {header.get('format')!r})"
        )
    classes = np.asarray(header["classes"])
    n_features = int(header["n_features"])
    n_classes = np.array([len(classes)], dtype=np.intp)
    template = Tree(n_features, n_classes, 1).__getstate__()["nodes"].dtype
    if list(template.names) != list(header["node_fields"]):
        raise FormatError(
            f"{source} was saved with scikit-learn {header['sklearn']} whose tree layout "
            f"differs from the installed {sklearn.__version__}; retrain the classifier"
        )
    estimators = []
    try:
        for i, info in enumerate(header["trees"]):
            nodes = np.zeros(int(info["node_count"]), dtype=template)
            for field in template.names:
                nodes[field] = npz[f"t{i}_{field}"]
            tree = Tree(n_features, n_classes, 1)
            tree.__setstate__(
                {
                    "max_depth": int(info["max_depth"]),
                    "node_count": int(info["node_count"]),
                    "nodes": nodes,
                    "values": np.ascontiguousarray(npz[f"t{i}_values"], dtype=np.float64),
                }
            )
            est = DecisionTreeClassifier()
            est.tree_ = tree
            est.n_features_in_ = n_features
            est.n_outputs_ = 1
            est.classes_ = classes
            est.n_classes_ = len(classes)
            est.max_features_ = n_features
            estimators.append(est)
    except (KeyError, ValueError) as exc:
        raise FormatError(f"{source} is damaged: {exc}") from exc
    forest = RandomForestClassifier(n_estimators=len(estimators))
    forest.estimators_ = estimators
    forest.estimator_ = DecisionTreeClassifier()
    forest.classes_ = classes
    forest.n_classes_ = len(classes)
    forest.n_outputs_ = 1
    forest.n_features_in_ = n_features
    return forest, dict(header.get("meta", {}))
