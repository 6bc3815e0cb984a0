"""Turning feature tables into things users act on.

- :func:`label_values` / :func:`label_lookup_table`: a feature column as per-label
  values (``{label: value}`` or ``lut[label]``) that the viewer colours objects by.
- :func:`add_derived_column`: new columns from safe expressions over existing ones
  (``"mean_intensity / volume_um3"``); :func:`evaluate` is the expression language.
- :func:`classify_by_rules`: threshold rules -> a ``class`` column.
- :class:`ObjectClassifier`: a random forest trained from a few labelled objects
  (desktop and XR tools label by pointing) -> a ``class`` column; pickle-free save/load.
"""

from analysis.features._expressions import FUNCTIONS, evaluate
from analysis.features._features import (
    ObjectClassifier,
    add_derived_column,
    classify_by_rules,
    label_lookup_table,
    label_values,
)

__all__ = [
    "FUNCTIONS",
    "ObjectClassifier",
    "add_derived_column",
    "classify_by_rules",
    "evaluate",
    "label_lookup_table",
    "label_values",
]
