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
    create_label_copy,
    export_label_copy,
    label_copy_path,
    read_id_table,
)
from analysis.io._models import load_classifier, save_classifier
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

__all__ = [
    # editable label images in a project (analysis.io._label_edits)
    "LABELS_DIR",
    "LabelEditStore",
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
