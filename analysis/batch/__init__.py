"""The analysis pipelines over many volumes or one huge volume, on dask.distributed.

Two kinds of parallelism, both as tasks of a dask.distributed cluster (a LocalCluster
started for the run, or any scheduler address: dask-jobqueue, dask-kubernetes and Coiled
clusters work without code changes):

- many stores: one task per store (:func:`batch_profile`), results written per store
  under ``DIR/<store name>/`` and a combined ``summary.csv``;
- one huge store: one task per block of whole chunks (:func:`batch_measure`), reduced
  exactly per object, so the table equals the single-process one;
- both: tiled model inference (:func:`batch_infer`), one task per block of every store,
  after a reduction for the whole-volume normalisation statistics; the blocks blend the
  tiles that reach into them, so the labels equal the single-process ones; objects of a
  class (``--objects``) are labelled block by block and joined exactly across block faces
  (:mod:`analysis.batch._objects`);
- many stores: classic segmentation (:func:`batch_segment`, one task per store; the
  function of ``vrscope segment``, :func:`segment_store`).

Faults: a unit's result appears under its final name only when complete (written under a
temporary name, then renamed: :mod:`analysis.io._batch`), so a killed worker's task is
rerun by dask and never leaves a half unit taken as done; ``resume`` skips units already
there. A unit that fails for a data reason (corrupt chunk, missing label image) is a
failed :class:`UnitResult` and the others finish.

To add a pipeline, write its unit as a plain function of picklable arguments that
writes its result through :mod:`analysis.io` atomically, and run the units with
:func:`run_units` under :func:`cluster_client`.
"""

from analysis.batch._cluster import (
    UnitResult,
    cluster_client,
    dashboard_link,
    run_units,
    worker_memory,
)
from analysis.batch._infer import (
    InferJob,
    InferOutcome,
    batch_infer,
    blend_block,
    default_infer_block,
    stats_moments,
)
from analysis.batch._measure import (
    MeasureJob,
    MeasureResult,
    batch_measure,
    block_grid,
    budget_block,
    default_block,
    measure_block,
)
from analysis.batch._profile import (
    ProfileOptions,
    batch_profile,
    profile_store,
    read_zyx,
    store_unit_name,
)
from analysis.batch._segment import (
    SEGMENT_LABELS,
    SegmentOptions,
    batch_segment,
    segment_store,
)

__all__ = [
    "SEGMENT_LABELS",
    "SegmentOptions",
    "batch_segment",
    "segment_store",
    "InferJob",
    "InferOutcome",
    "batch_infer",
    "blend_block",
    "default_infer_block",
    "MeasureJob",
    "MeasureResult",
    "ProfileOptions",
    "UnitResult",
    "batch_measure",
    "batch_profile",
    "block_grid",
    "budget_block",
    "cluster_client",
    "dashboard_link",
    "default_block",
    "measure_block",
    "profile_store",
    "read_zyx",
    "run_units",
    "stats_moments",
    "store_unit_name",
    "worker_memory",
]
