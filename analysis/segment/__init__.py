"""Segmentation and clean-up: thresholds, watershed, morphology, region growing, a
random-forest pixel classifier, and block-wise versions for volumes larger than memory.

Array functions take ``(z, y, x)`` arrays and a voxel ``spacing`` in µm (radii and
volumes are physical). Block-wise functions take a :class:`analysis.volume.VolumeSource`
and write into any writable array (NumPy, ``numpy.memmap``, zarr). To add a filter that
should run on huge volumes, write it for arrays and run it through
:func:`apply_blockwise` with a halo covering its support.
"""

from analysis.segment._blockwise import (
    WritableArray,
    apply_blockwise,
    iter_blocks,
    label_blockwise,
    otsu_threshold_blockwise,
)
from analysis.segment._cleanup import (
    ball_footprint,
    binary_close,
    binary_open,
    fill_holes,
    label_close,
    label_open,
    region_grow,
    remove_small_objects_um3,
    watershed_split,
)
from analysis.segment._pixel_classifier import PixelClassifier
from analysis.segment._threshold import local_threshold_mask, otsu_mask, otsu_threshold

__all__ = [
    "PixelClassifier",
    "WritableArray",
    "apply_blockwise",
    "ball_footprint",
    "binary_close",
    "binary_open",
    "fill_holes",
    "iter_blocks",
    "label_blockwise",
    "label_close",
    "label_open",
    "local_threshold_mask",
    "otsu_mask",
    "otsu_threshold",
    "otsu_threshold_blockwise",
    "region_grow",
    "remove_small_objects_um3",
    "watershed_split",
]
