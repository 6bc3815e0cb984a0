"""Automatic inversion: EM (dark on light) is inverted, fluorescence (bright on dark) is not."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from analysis.synthetic import timelapse
from analysis.volume import ArrayVolumeSource
from viewer.render._headless import looks_dark_on_light


def test_real_fibsem_medulla_is_dark_on_light(testdata: Path) -> None:
    files = sorted((testdata / "fibsem-medulla" / "grayscale_maps").glob("*.png"))[::10]
    em = np.stack([iio.imread(f) for f in files])
    assert looks_dark_on_light(ArrayVolumeSource(em))


def test_fluorescent_nuclei_are_not_inverted() -> None:
    sample = timelapse(frames=2, size=96, seed=0)
    frame = np.asarray(sample.image[0])
    assert not looks_dark_on_light(ArrayVolumeSource(frame))
    # The same data as a negative (dark nuclei on a light background) is inverted.
    assert looks_dark_on_light(ArrayVolumeSource(frame.max() - frame))


def test_uniform_volume_is_not_inverted() -> None:
    assert not looks_dark_on_light(ArrayVolumeSource(np.full((8, 8, 8), 7, np.uint8)))
