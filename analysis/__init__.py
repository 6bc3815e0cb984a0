"""vrscope analysis core: GUI-free compute and the data model.

Subpackages (imports only point down; nothing here imports ``viewer`` or ``xr``,
and everything here runs with no Qt, VTK or OpenXR installed):

- ``analysis.io``: the only place that opens files or stores (OME-Zarr NGFF 0.4/0.5,
  TIFF/PNG/NumPy/HDF5 import, GEFF/CTC/CSV tracks).
- ``analysis.volume``: the ``VolumeSource`` protocol and in-memory/procedural sources.
- ``analysis.synthetic``: sample generators with known ground truth.
- ``analysis.segment``, ``analysis.morphology``, ``analysis.distances``,
  ``analysis.density``: segmentation and per-object measurements.
- ``analysis.tracks``, ``analysis.edits``: TrackGraph, undoable edit commands, journal.

To add a capability, add a module that takes arrays, a ``VolumeSource`` or a
``TrackGraph`` (never a path) and raise :mod:`analysis.errors` exceptions for bad input.
"""
