"""The seed workflow at small scale: mitochondria from every 10th plane of a synthetic cell.

The full-size run (192^3, < 15 min, Dice >= 0.85) is tests/benchmarks/bench_train.py;
this one trains on a 96^3 cell for about a minute and segments a cell of another seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from analysis.inference import (
    TorchPredictor,
    TrainConfig,
    annotations_from_instances,
    labels_from_probabilities,
    predict_tiled,
    train,
    unet_spec,
)
from analysis.synthetic import fibsem_cell


@pytest.mark.slow
def test_mitochondria_from_every_tenth_plane_generalise_to_another_cell() -> None:
    size = 96
    train_cell, test_cell = fibsem_cell(size, seed=0), fibsem_cell(size, seed=1)
    every_tenth = (np.arange(size) % 10 == 0)[:, None, None]
    ann = annotations_from_instances(train_cell.labels["mitochondria"], annotated=every_tenth)
    cfg = TrainConfig(
        dims=2, width=8, depth=3, patch=(96, 96), batch_size=4, epochs=30, steps_per_epoch=20,
        patience=10, max_seconds=90, class_names=("background", "mitochondria"),
    )  # fmt: skip
    result = train(train_cell.image, ann, cfg)
    pred = TorchPredictor(result.model, unet_spec(result.model.config), device="cpu")
    labels = labels_from_probabilities(predict_tiled(pred, test_cell.image, batch_size=8))
    truth = test_cell.labels["mitochondria"] > 0
    assert f1_score(truth.ravel(), (labels == 1).ravel()) >= 0.8
