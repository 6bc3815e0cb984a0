"""``vrscope demo`` without a display: generates the sample once, renders it, says where."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from analysis.io import open_volume
from vrscope.cli import main


@pytest.mark.render
def test_demo_generates_sample_and_renders_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    sample, out = tmp_path / "sample.zarr", tmp_path / "demo.png"
    args = ["demo", "--sample", str(sample), "--size", "96", "--out", str(out)]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert str(out.resolve()) in said
    vol = open_volume(sample)
    assert {"cell", "nucleus", "mitochondria", "nuclear_pores"} <= set(vol.label_names)
    img = iio.imread(out)
    assert img.ndim == 3 and img.shape[:2] == (768, 1024)
    # Not blank: the cell covers a good part of the frame with real contrast.
    gray = img[..., :3].mean(axis=2)
    assert (gray > 20).mean() > 0.05 and gray.std() > 10
    # A second run reuses the store (no regeneration): its chunks stay untouched.
    before = sorted(p.stat().st_mtime_ns for p in sample.rglob("*") if p.is_file())
    assert main(args) == 0
    after = sorted(p.stat().st_mtime_ns for p in sample.rglob("*") if p.is_file())
    assert before == after
    assert np.array_equal(iio.imread(out)[..., :3] > 20, img[..., :3] > 20)
