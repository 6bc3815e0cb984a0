"""Segmentation and clean-up: thresholds, watershed, morphology, region growing, a
random-forest pixel classifier, and block-wise versions for volumes larger than memory.

Array functions take ``(z, y, x)`` arrays and a voxel ``spacing`` in µm (radii and
volumes are physical). Block-wise functions take a :class:`analysis.volume.VolumeSource`
and write into any writable array (NumPy, ``numpy.memmap``, zarr, an
:class:`analysis.io.ScratchVolume` that reads back as a source) or, for local filters,
return a lazy :class:`BlockwiseSource`; results go to disk through
:func:`analysis.io.write_labels` / :func:`analysis.io.write_ngff`, chunk by chunk. The
halo rules and exactness conditions are in ``_blockwise_ops.py``'s docstring. To add a
filter that should run on huge volumes, write it for arrays and run it through
:func:`apply_blockwise` (or :class:`BlockwiseSource`) with a halo covering its support;
a global operator labels block-wise and accumulates per-object numbers first.
"""

from analysis.segment._blockwise import (
    WritableArray,
    apply_blockwise,
    iter_blocks,
    label_blockwise,
    otsu_threshold_blockwise,
)
from analysis.segment._blockwise_ops import (
    BlockwiseSource,
    close_blockwise,
    fill_holes_blockwise,
    open_blockwise,
    region_grow_blockwise,
    remove_small_objects_blockwise,
    watershed_split_blockwise,
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
from analysis.segment._forest import forest_from_bytes, forest_to_bytes
from analysis.segment._pixel_classifier import PixelClassifier
from analysis.segment._threshold import local_threshold_mask, otsu_mask, otsu_threshold

__all__ = [
    "forest_from_bytes",
    "forest_to_bytes",
    "BlockwiseSource",
    "PixelClassifier",
    "WritableArray",
    "apply_blockwise",
    "ball_footprint",
    "binary_close",
    "binary_open",
    "close_blockwise",
    "fill_holes",
    "fill_holes_blockwise",
    "iter_blocks",
    "label_blockwise",
    "label_close",
    "label_open",
    "local_threshold_mask",
    "open_blockwise",
    "otsu_mask",
    "otsu_threshold",
    "otsu_threshold_blockwise",
    "region_grow",
    "region_grow_blockwise",
    "remove_small_objects_blockwise",
    "remove_small_objects_um3",
    "watershed_split",
    "watershed_split_blockwise",
]
