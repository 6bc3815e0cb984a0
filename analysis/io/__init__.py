"""OME-Zarr input and output: the only package of ``analysis`` that opens files or stores.

Public API
----------
- :func:`open_volume` / :func:`open_labels` / :func:`list_labels`: lazy readers
  for NGFF 0.4 (zarr v2) and 0.5 (zarr v3), local or over HTTP, returning a
  :class:`ZarrVolumeSource` (an :class:`analysis.volume.VolumeSource`).
- :func:`write_ngff` / :func:`write_labels`: writers that build the whole
  pyramid chunk by chunk, so volumes larger than memory convert in bounded RAM.
- :func:`check_output` / :func:`replacing`: an output never is, contains or lies
  inside an input, and takes its name only once complete (``--overwrite`` included).
- :func:`validate_ngff`: JSON-schema validation with the official NGFF schemas.
- :func:`save_classifier` / :func:`load_classifier`: classifier files (pickle-free
  ``.npz`` from ``to_bytes``); :func:`write_report_folder`: a report's CSV/JSON/PNG/HTML;
  :class:`ScratchVolume`: an on-disk zarr array that block-wise operators write into and
  read from as a ``VolumeSource``; :func:`read_table` / :func:`write_table`: feature
  tables as CSV or Parquet.

Extending
---------
A new NGFF version is a new :class:`~analysis.io._format.NgffFormat` in
``_format.py`` (where its metadata lives), its schemas under ``schemas/<version>``
and an entry in ``FORMATS``; readers and writers ask the format object, never
compare version strings themselves. New file formats (TIFF, HDF5, ...) import
into a ``VolumeSource`` and are written with :func:`write_ngff`.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.io._batch import (
        commit_folder,
        list_done,
        read_json,
        read_part,
        remove_folder,
        remove_temporaries,
        reset_folder,
        write_part,
    )
    from analysis.io._ctc import read_ctc, read_ctc_masks, write_ctc
    from analysis.io._deadline import RemoteDeadlineExceeded, remote_deadline
    from analysis.io._format import FormatV04, FormatV05, NgffFormat, detect_format
    from analysis.io._geff import read_geff, write_geff
    from analysis.io._import import (
        LookupVolumeSource,
        import_hdf5,
        import_npy,
        import_slices,
        import_tiff,
        open_input,
        read_lookup_table,
    )
    from analysis.io._label_edits import (
        LABELS_DIR,
        LabelEditStore,
        MappedLabelSource,
        create_label_copy,
        export_label_copy,
        label_copy_path,
        read_id_table,
    )
    from analysis.io._models import load_classifier, save_classifier
    from analysis.io._ngff_checks import check_local_metadata
    from analysis.io._nn_models import (
        checkpoint_file,
        is_bioimageio_path,
        model_file_kind,
        read_bioimageio_description,
        read_checkpoint,
        read_model_bytes,
        read_npy,
        read_verified_bytes,
        read_verified_npy,
        scratch_array,
        sha256_file,
        write_checkpoint,
        write_model_bytes,
        write_npy,
    )
    from analysis.io._outputs import check_output, input_path, replacing
    from analysis.io._project import (
        ANNOTATIONS_FILE,
        SCENE_FILE,
        TRACKS_BASE,
        ProjectInfo,
        check_labels,
        image_reference,
        is_project,
        read_json_file,
        read_project_info,
        read_tracks_file,
        write_json_atomic,
        write_markers_csv,
        write_measurements_csv,
        write_project_info,
        write_tracks_file,
    )
    from analysis.io._read import ZarrVolumeSource, list_labels, open_labels, open_volume
    from analysis.io._report import write_report_folder
    from analysis.io._samples import (
        check_sample_output,
        truth_path,
        write_fibsem_sample,
        write_timelapse_sample,
    )
    from analysis.io._scratch import ScratchVolume
    from analysis.io._tables import read_table, write_table
    from analysis.io._tracks_csv import edges_csv_path, read_tracks_csv, write_tracks_csv
    from analysis.io._units import space_unit_to_um, time_unit_to_s
    from analysis.io._validate import validate_ngff
    from analysis.io._write import write_labels, write_ngff

#: Public name -> the module defining it. The modules are imported on first use (PEP 562),
#: so ``from analysis.io import open_volume`` loads the reader, not the TIFF/HDF5 importers,
#: model files, tables and tracks (a CLI error answers before seconds of imports, issue 18.15).
_LAZY: dict[str, str] = {
    "commit_folder": "analysis.io._batch",
    "list_done": "analysis.io._batch",
    "read_json": "analysis.io._batch",
    "read_part": "analysis.io._batch",
    "remove_folder": "analysis.io._batch",
    "remove_temporaries": "analysis.io._batch",
    "reset_folder": "analysis.io._batch",
    "write_part": "analysis.io._batch",
    "read_ctc": "analysis.io._ctc",
    "read_ctc_masks": "analysis.io._ctc",
    "write_ctc": "analysis.io._ctc",
    "FormatV04": "analysis.io._format",
    "FormatV05": "analysis.io._format",
    "NgffFormat": "analysis.io._format",
    "detect_format": "analysis.io._format",
    "read_geff": "analysis.io._geff",
    "write_geff": "analysis.io._geff",
    "LookupVolumeSource": "analysis.io._import",
    "import_hdf5": "analysis.io._import",
    "import_npy": "analysis.io._import",
    "import_slices": "analysis.io._import",
    "import_tiff": "analysis.io._import",
    "open_input": "analysis.io._import",
    "read_lookup_table": "analysis.io._import",
    "LABELS_DIR": "analysis.io._label_edits",
    "LabelEditStore": "analysis.io._label_edits",
    "MappedLabelSource": "analysis.io._label_edits",
    "create_label_copy": "analysis.io._label_edits",
    "export_label_copy": "analysis.io._label_edits",
    "label_copy_path": "analysis.io._label_edits",
    "read_id_table": "analysis.io._label_edits",
    "load_classifier": "analysis.io._models",
    "save_classifier": "analysis.io._models",
    "checkpoint_file": "analysis.io._nn_models",
    "is_bioimageio_path": "analysis.io._nn_models",
    "model_file_kind": "analysis.io._nn_models",
    "read_bioimageio_description": "analysis.io._nn_models",
    "read_checkpoint": "analysis.io._nn_models",
    "read_model_bytes": "analysis.io._nn_models",
    "read_npy": "analysis.io._nn_models",
    "read_verified_bytes": "analysis.io._nn_models",
    "read_verified_npy": "analysis.io._nn_models",
    "scratch_array": "analysis.io._nn_models",
    "sha256_file": "analysis.io._nn_models",
    "write_checkpoint": "analysis.io._nn_models",
    "write_model_bytes": "analysis.io._nn_models",
    "write_npy": "analysis.io._nn_models",
    "check_output": "analysis.io._outputs",
    "input_path": "analysis.io._outputs",
    "replacing": "analysis.io._outputs",
    "ANNOTATIONS_FILE": "analysis.io._project",
    "SCENE_FILE": "analysis.io._project",
    "TRACKS_BASE": "analysis.io._project",
    "ProjectInfo": "analysis.io._project",
    "check_labels": "analysis.io._project",
    "image_reference": "analysis.io._project",
    "is_project": "analysis.io._project",
    "read_json_file": "analysis.io._project",
    "read_project_info": "analysis.io._project",
    "read_tracks_file": "analysis.io._project",
    "write_json_atomic": "analysis.io._project",
    "write_markers_csv": "analysis.io._project",
    "write_measurements_csv": "analysis.io._project",
    "write_project_info": "analysis.io._project",
    "write_tracks_file": "analysis.io._project",
    "check_local_metadata": "analysis.io._ngff_checks",
    "ZarrVolumeSource": "analysis.io._read",
    "list_labels": "analysis.io._read",
    "open_labels": "analysis.io._read",
    "open_volume": "analysis.io._read",
    "RemoteDeadlineExceeded": "analysis.io._deadline",
    "remote_deadline": "analysis.io._deadline",
    "write_report_folder": "analysis.io._report",
    "check_sample_output": "analysis.io._samples",
    "truth_path": "analysis.io._samples",
    "write_fibsem_sample": "analysis.io._samples",
    "write_timelapse_sample": "analysis.io._samples",
    "ScratchVolume": "analysis.io._scratch",
    "read_table": "analysis.io._tables",
    "write_table": "analysis.io._tables",
    "edges_csv_path": "analysis.io._tracks_csv",
    "read_tracks_csv": "analysis.io._tracks_csv",
    "write_tracks_csv": "analysis.io._tracks_csv",
    "space_unit_to_um": "analysis.io._units",
    "time_unit_to_s": "analysis.io._units",
    "validate_ngff": "analysis.io._validate",
    "write_labels": "analysis.io._write",
    "write_ngff": "analysis.io._write",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    # editable label images in a project (analysis.io._label_edits)
    "LABELS_DIR",
    "LabelEditStore",
    "MappedLabelSource",
    "create_label_copy",
    "export_label_copy",
    "label_copy_path",
    "read_id_table",
    "ANNOTATIONS_FILE",
    "SCENE_FILE",
    "TRACKS_BASE",
    "ProjectInfo",
    "check_labels",
    "image_reference",
    "is_project",
    "read_json_file",
    "read_project_info",
    "read_tracks_file",
    "write_json_atomic",
    "write_markers_csv",
    "write_measurements_csv",
    "write_project_info",
    "write_tracks_file",
    "FormatV04",
    "FormatV05",
    "LookupVolumeSource",
    "NgffFormat",
    "ZarrVolumeSource",
    "detect_format",
    "import_hdf5",
    "import_npy",
    "import_slices",
    "import_tiff",
    "input_path",
    "list_labels",
    "open_input",
    "open_labels",
    "open_volume",
    "RemoteDeadlineExceeded",
    "remote_deadline",
    "read_lookup_table",
    "space_unit_to_um",
    "time_unit_to_s",
    "validate_ngff",
    "write_labels",
    "write_ngff",
    # classifiers, report folders, scratch volumes, tables (_models, _report, _scratch, _tables)
    "ScratchVolume",
    "load_classifier",
    "read_table",
    "save_classifier",
    "write_report_folder",
    "write_table",
    # batch runs: atomic units, parts and resume (analysis.io._batch; used by analysis.batch)
    "commit_folder",
    "list_done",
    "read_json",
    "read_part",
    "remove_folder",
    "remove_temporaries",
    "reset_folder",
    "write_part",
    # neural-network model files (analysis.io._nn_models; used by analysis.inference)
    "check_local_metadata",
    "check_output",
    "checkpoint_file",
    "is_bioimageio_path",
    "model_file_kind",
    "read_bioimageio_description",
    "read_checkpoint",
    "read_model_bytes",
    "read_npy",
    "read_verified_bytes",
    "read_verified_npy",
    "replacing",
    "scratch_array",
    "sha256_file",
    "write_checkpoint",
    "write_model_bytes",
    "write_npy",
    # generated samples (analysis.io._samples)
    "check_sample_output",
    "truth_path",
    "write_fibsem_sample",
    "write_timelapse_sample",
    # tracks (analysis.io._geff, _ctc, _tracks_csv)
    "edges_csv_path",
    "read_ctc",
    "read_ctc_masks",
    "read_geff",
    "read_tracks_csv",
    "write_ctc",
    "write_geff",
    "write_tracks_csv",
]
