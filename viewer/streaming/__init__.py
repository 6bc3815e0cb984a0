"""Multiscale streaming: view-dependent level of detail, chunk scheduler, bounded cache.

No VTK here (import-linter forbids it); :mod:`viewer.render` draws what this
package chooses (``viewer.render._streaming``).

Per frame the caller builds one :class:`View` per camera or eye and calls
:meth:`VolumeStreamer.update`, which

- picks per region the coarsest pyramid level whose projected voxel is below
  ``max_error_px`` and culls bricks outside the frusta and behind clipping planes
  (:func:`select_bricks` over a :class:`BrickGrid`, vectorised, hierarchical);
- asks a :class:`ChunkScheduler` (worker threads, stale requests dropped) for the
  missing bricks, coarse first, then by distance from the view centre;
- returns a :class:`StreamFrame`: the resident bricks to draw, each cropped to a
  world box, a coarser resident ancestor standing in for a brick not yet loaded.

Decoded bricks live in a :class:`BrickCache` (LRU bounded in bytes, default a
quarter of RAM); GPU textures are accounted in a :class:`TextureBudget`. Labels
stream the same way (``labels=True``); time-lapses prefetch the next time points.

Extending: a new kind of source only needs the ``VolumeSource`` protocol; a new
consumer (another renderer) reads ``StreamFrame.keys/crop_lo/crop_hi`` and
:meth:`VolumeStreamer.padded` for each key's voxels with their one-voxel border.
"""

from ._cache import BrickCache, TextureBudget, default_cache_bytes
from ._lod import (
    BrickGrid,
    EyeLike,
    Selection,
    View,
    clip_planes_array,
    perspective_matrix,
    select_bricks,
)
from ._rebrick import BrickedSource, check_brick_size
from ._scheduler import (
    BrickRequest,
    BrickResult,
    ChunkScheduler,
    SchedulerStats,
    default_batch,
    default_workers,
)
from ._streamer import (
    NEIGHBOUR_OFFSETS,
    PaddedBrick,
    StreamFrame,
    StreamStats,
    VolumeStreamer,
)

__all__ = [
    "NEIGHBOUR_OFFSETS",
    "BrickedSource",
    "check_brick_size",
    "BrickCache",
    "BrickGrid",
    "BrickRequest",
    "BrickResult",
    "ChunkScheduler",
    "EyeLike",
    "PaddedBrick",
    "SchedulerStats",
    "Selection",
    "StreamFrame",
    "StreamStats",
    "TextureBudget",
    "View",
    "VolumeStreamer",
    "clip_planes_array",
    "default_batch",
    "default_cache_bytes",
    "default_workers",
    "perspective_matrix",
    "select_bricks",
]
