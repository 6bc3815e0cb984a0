"""Deep-learning segmentation: U-Net training from sparse labels and smooth tiled inference.

Pieces, each in its own private module:

- ``_unet``: :class:`UNet` 2D/3D built from a JSON-serialisable :class:`UNetConfig`.
- ``_train``: :func:`train` from sparse annotations (0 = unlabelled, ignored by
  the loss), class weights, augmentation, validation split, early stopping.
- ``_runtime``: a :class:`Predictor` runs batches of tiles on torch
  (:class:`TorchPredictor`, CPU/CUDA/MPS) or onnxruntime (:class:`OnnxPredictor`);
  a :class:`ModelSpec` tells the tiler the model's axes, tile rules, halo and
  pre-/post-processing.
- ``_tiling``: :func:`predict_tiled` blends overlapping tiles of a
  ``VolumeSource`` of any size with a Gaussian window; memory is bounded by the
  batch of tiles.
- ``_checkpoint``, ``_export``, ``_bioimageio``: models in memory (state dicts,
  ONNX / TorchScript bytes, parsed bioimage.io descriptions). The files themselves
  are read and written by :mod:`analysis.io` (``_nn_models``): checkpoints are
  safetensors or state_dict ``.pt`` (loaded with ``weights_only=True``), bioimage.io
  weights are sha256-checked. :func:`load_model`, :func:`save_checkpoint`,
  :func:`export_onnx` etc. take paths for convenience and delegate the file access.
- ``_postprocess``: probabilities -> objects (threshold, closing, small-object
  removal, connected components or watershed).

To add a runtime, subclass :class:`Predictor` (implement ``forward``) and teach
:func:`load_model` its file type. To add a model family, give it a
:class:`ModelSpec`; the tiler needs nothing else.

This package needs the ``ml`` extra (torch, onnxruntime, safetensors).
"""

from analysis.inference._bioimageio import (
    BioimageioModel,
    from_model_layout,
    is_bioimageio,
    load_bioimageio,
    parse_bioimageio,
    read_bioimageio,
    to_model_layout,
)
from analysis.inference._checkpoint import (
    checkpoint_state,
    load_checkpoint,
    save_checkpoint,
    unet_from_state,
    unet_spec,
)
from analysis.inference._export import (
    export_onnx,
    export_torchscript,
    load_model,
    model_kind,
    onnx_bytes,
    torchscript_bytes,
)
from analysis.inference._postprocess import objects_from_probabilities
from analysis.inference._runtime import (
    ModelSpec,
    OnnxPredictor,
    Predictor,
    Step,
    TorchPredictor,
    select_device,
)
from analysis.inference._tiling import (
    InputVolume,
    Normalizer,
    TilePlan,
    blend_window,
    block_moments,
    labels_from_probabilities,
    merge_moments,
    moment_blocks,
    plan_tiles,
    predict_tiled,
    predict_untiled,
    run_tile_batch,
    tile_contribution,
    tile_core,
    tile_input_region,
    volume_stat_steps,
)
from analysis.inference._train import (
    TrainConfig,
    TrainResult,
    annotations_from_instances,
    augment_patch,
    class_weights_from_annotations,
    dice_scores,
    rotation_in_physical_space,
    train,
)
from analysis.inference._unet import UNet, UNetConfig

__all__ = [
    "BioimageioModel",
    "InputVolume",
    "ModelSpec",
    "Normalizer",
    "OnnxPredictor",
    "Predictor",
    "Step",
    "TilePlan",
    "TorchPredictor",
    "TrainConfig",
    "TrainResult",
    "UNet",
    "UNetConfig",
    "annotations_from_instances",
    "augment_patch",
    "blend_window",
    "block_moments",
    "checkpoint_state",
    "class_weights_from_annotations",
    "dice_scores",
    "export_onnx",
    "export_torchscript",
    "from_model_layout",
    "is_bioimageio",
    "labels_from_probabilities",
    "load_bioimageio",
    "load_checkpoint",
    "load_model",
    "merge_moments",
    "moment_blocks",
    "model_kind",
    "objects_from_probabilities",
    "onnx_bytes",
    "parse_bioimageio",
    "plan_tiles",
    "predict_tiled",
    "predict_untiled",
    "read_bioimageio",
    "rotation_in_physical_space",
    "run_tile_batch",
    "save_checkpoint",
    "select_device",
    "tile_contribution",
    "tile_core",
    "tile_input_region",
    "to_model_layout",
    "torchscript_bytes",
    "train",
    "unet_from_state",
    "unet_spec",
    "volume_stat_steps",
]
