"""Done-when benchmark of issue 9: train on sparse planes, segment another cell.

Workflow, all through the CLI as a user would run it:

1. ``vrscope sample fibsem train.zarr --size 192 --seed 0`` and ``test.zarr --seed 1``;
2. ``vrscope train train.zarr --labels mitochondria --instances --every 10`` (2D U-Net,
   annotations on every 10th z plane only, everything else unlabelled) on the CPU;
3. ``vrscope infer test.zarr --model MODEL --out mito_pred``;
4. Dice of the predicted mitochondria class against ``test.zarr/labels/mitochondria``.

Targets: training under 15 minutes on this machine's CPU, Dice >= 0.85. With
``--baseline`` the scikit-learn random-forest pixel classifier
(:class:`analysis.segment.PixelClassifier`, ilastik-style) is trained on the same
sparse planes and scored the same way, as the classical reference.

Run: ``.venv/bin/python tests/benchmarks/bench_train.py [--size 192] [--threads 2] [--baseline]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--max-minutes", type=float, default=13.0)
    ap.add_argument("--baseline", action="store_true", help="also score the random forest")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from analysis.io import open_labels, open_volume
    from vrscope.cli import main as vrscope

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    train_store, test_store, model = work / "train.zarr", work / "test.zarr", work / "model"
    for store, seed in ((train_store, 0), (test_store, 1)):
        if not store.exists():
            rc = vrscope(
                ["sample", "fibsem", str(store), "--size", str(args.size), "--seed", str(seed)]
            )
            assert rc == 0
    t0 = time.perf_counter()
    rc = vrscope(
        ["train", str(train_store), "--labels", "mitochondria", "--instances",
         "--every", str(args.every), "--out", str(model), "--epochs", str(args.epochs),
         "--steps", str(args.steps), "--max-minutes", str(args.max_minutes),
         "--class-names", "background", "mitochondria"]
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    assert rc == 0
    t0 = time.perf_counter()
    rc = vrscope(
        ["infer", str(test_store), "--model", str(model), "--out", "mito_pred", "--overwrite",
         "--quiet"]
    )  # fmt: skip
    infer_s = time.perf_counter() - t0
    assert rc == 0
    truth = np.asarray(open_labels(test_store, "mitochondria").read(0)) > 0
    pred = np.asarray(open_labels(test_store, "mito_pred").read(0)) == 1
    d_unet = dice(pred, truth)
    history = json.loads((model / "training.json").read_text())

    rows = [
        ("volume", f"{args.size}^3, labels on every {args.every}th plane"),
        ("epochs run (best)", f"{len(history['history'])} ({history['best_epoch']})"),
        ("training time", f"{train_s / 60:.1f} min (target < 15)"),
        ("inference time (test cell)", f"{infer_s:.1f} s"),
        ("U-Net Dice, mitochondria, seed 1", f"{d_unet:.3f} (target >= 0.85)"),
    ]
    if args.baseline:
        from analysis.segment import PixelClassifier

        image = np.asarray(open_volume(train_store).read(0)).astype(np.float32)
        mito = np.asarray(open_labels(train_store, "mitochondria").read(0)) > 0
        scribbles = np.where(mito, 2, 1).astype(np.uint8)
        scribbles[np.arange(args.size) % args.every != 0] = 0
        t0 = time.perf_counter()
        clf = PixelClassifier(sigma_max=4.0).fit(image, scribbles)
        test_img = np.asarray(open_volume(test_store).read(0)).astype(np.float32)
        rf = clf.predict(test_img) == 2
        rf_s = time.perf_counter() - t0
        d_rf = dice(rf, truth)
        rows.append(("random forest Dice (reference)", f"{d_rf:.3f} in {rf_s:.0f} s"))
        rows.append(("U-Net / random forest Dice", f"{d_unet / max(d_rf, 1e-9):.2f}x"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    ok = d_unet >= 0.85 and train_s < 15 * 60
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
