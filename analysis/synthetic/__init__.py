"""Sample generators with known ground truth: a FIB-SEM cell and a dividing-nuclei time-lapse.

Generators are pure: they return arrays and truth tables and never touch files
(writing a sample into an OME-Zarr store is :mod:`analysis.io`'s job, see
``analysis.io.write_fibsem_sample`` and ``analysis.io.write_timelapse_sample``).
The truth is always computed from the final label arrays, so it is exact.

- :func:`fibsem_cell`: a HeLa-like cell (cell body, nucleus with an invagination and a
  double envelope, nuclear pores with under-pore pockets, mitochondria, ER texture) with
  the label images ``cell``, ``nucleus``, ``mitochondria``, ``nuclear_pores`` and a
  per-object truth table (:func:`object_table`); its nuclear pores are clustered with a
  known density difference between the nucleus halves (:class:`PoreLayout`).
- :func:`timelapse`: fluorescent nuclei moving and dividing over time (t, z, y, x), CTC
  style instance labels and the true lineage (nodes and parent -> child edges).

To add a generator, write a function returning a frozen dataclass of arrays plus truth
(pandas tables), build shapes on object bounding boxes with the helpers in
``_shapes.py`` and compute the truth from the final labels.
"""

from analysis.synthetic._fibsem import (
    FIBSEM_LABELS,
    PORE_SPLIT_RULE,
    FibsemSample,
    PoreLayout,
    fibsem_cell,
    n_mitochondria_for_size,
)
from analysis.synthetic._shapes import ProgressCallback
from analysis.synthetic._timelapse import (
    NODE_COLUMNS,
    TRACK_COLUMNS,
    TimelapseSample,
    timelapse,
)
from analysis.synthetic._truth import TRUTH_COLUMNS, object_table, surface_area_um2

__all__ = [
    "FIBSEM_LABELS",
    "NODE_COLUMNS",
    "PORE_SPLIT_RULE",
    "TRACK_COLUMNS",
    "TRUTH_COLUMNS",
    "FibsemSample",
    "PoreLayout",
    "ProgressCallback",
    "TimelapseSample",
    "fibsem_cell",
    "n_mitochondria_for_size",
    "object_table",
    "surface_area_um2",
    "timelapse",
]
