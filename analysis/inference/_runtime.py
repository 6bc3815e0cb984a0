"""Runtimes: a :class:`Predictor` runs one batch of tiles through a model.

A predictor knows its :class:`ModelSpec` (spatial dims, channels, tile
constraints, halo, pre- and post-processing) and maps a float32 batch
``(B, C, *spatial)`` to probabilities ``(B, K, *spatial)``. Two runtimes:

- :class:`TorchPredictor`: any ``torch.nn.Module`` or TorchScript module on CPU,
  CUDA or MPS (:func:`select_device` picks the best available one);
- :class:`OnnxPredictor`: an ONNX model on onnxruntime.

Pre-processing steps use the bioimage.io names (``zero_mean_unit_variance``,
``fixed_zero_mean_unit_variance``, ``scale_linear``, ``scale_range``, ``clip``,
``ensure_dtype``); their statistics are taken over the whole input volume (or per
plane for a 2D model normalised over ``x, y``), never per tile, so tiles agree.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import FormatError, ParameterError

__all__ = [
    "ONNX_META_KEY",
    "ModelSpec",
    "OnnxPredictor",
    "Predictor",
    "Step",
    "TorchPredictor",
    "apply_postprocessing",
    "select_device",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

PRE_STEPS = (
    "ensure_dtype",
    "zero_mean_unit_variance",
    "fixed_zero_mean_unit_variance",
    "scale_linear",
    "scale_range",
    "clip",
    "binarize",
    "sigmoid",
)
POST_STEPS = ("ensure_dtype", "sigmoid", "softmax", "clip", "scale_linear", "binarize")


@dataclass(frozen=True)
class Step:
    """One pre- or post-processing operation, named as in bioimage.io (``id``, ``kwargs``)."""

    id: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """What the tiler must know about a model.

    Parameters
    ----------
    dims : {2, 3}
        Spatial dimensions of the model's input (a 2D model runs plane by plane).
    in_channels, n_classes : int
        Input channels and output channels (classes or probability maps).
    class_names : tuple of str
    tile_multiple : int, default: 1
    min_tile : int, default: ``tile_multiple``
        Accepted spatial input sizes are ``min_tile + k * tile_multiple`` (bioimage.io's
        ``min`` and ``step``).
    fixed_tile : tuple of int or None
        The only accepted spatial input shape (an ONNX model with static axes).
    halo : int, default: 0
        Voxels at each tile border the model may get wrong (receptive field
        cut by the tile border); discarded when tiles are blended.
    default_tile : tuple of int or None
    preprocessing, postprocessing : tuple of :class:`Step`
    name : str
    """

    dims: int
    in_channels: int
    n_classes: int
    class_names: tuple[str, ...] = ()
    tile_multiple: int = 1
    min_tile: int = 0
    fixed_tile: tuple[int, ...] | None = None
    halo: int = 0
    default_tile: tuple[int, ...] | None = None
    preprocessing: tuple[Step, ...] = ()
    postprocessing: tuple[Step, ...] = ()
    name: str = "model"

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise FormatError(f"model {self.name!r}: spatial dims must be 2 or 3, got {self.dims}")
        for step in self.preprocessing:
            if step.id not in PRE_STEPS:
                raise FormatError(f"model {self.name!r}: unsupported preprocessing {step.id!r}")
        for step in self.postprocessing:
            if step.id not in POST_STEPS:
                raise FormatError(f"model {self.name!r}: unsupported postprocessing {step.id!r}")
        if self.fixed_tile is not None and len(self.fixed_tile) != self.dims:
            raise FormatError(
                f"model {self.name!r}: fixed tile {self.fixed_tile} is not {self.dims}D"
            )
        if self.tile_multiple < 1:
            raise FormatError(f"model {self.name!r}: tile multiple must be >= 1")
        if self.min_tile <= 0:
            object.__setattr__(self, "min_tile", self.tile_multiple)
        if not self.class_names:
            names = tuple(f"channel{i}" for i in range(self.n_classes))
            object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if len(self.class_names) != self.n_classes:
            raise FormatError(
                f"model {self.name!r}: {len(self.class_names)} class names for {self.n_classes} outputs"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (stored with exported models)."""
        return {
            "dims": self.dims,
            "in_channels": self.in_channels,
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
            "tile_multiple": self.tile_multiple,
            "min_tile": self.min_tile,
            "fixed_tile": list(self.fixed_tile) if self.fixed_tile is not None else None,
            "halo": self.halo,
            "default_tile": list(self.default_tile) if self.default_tile is not None else None,
            "preprocessing": [{"id": s.id, "kwargs": dict(s.kwargs)} for s in self.preprocessing],
            "postprocessing": [{"id": s.id, "kwargs": dict(s.kwargs)} for s in self.postprocessing],
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; raises :class:`FormatError` for a malformed description."""
        try:
            fixed = data.get("fixed_tile")
            default = data.get("default_tile")
            return cls(
                dims=int(data["dims"]),
                in_channels=int(data["in_channels"]),
                n_classes=int(data["n_classes"]),
                class_names=tuple(str(c) for c in data.get("class_names", ())),
                tile_multiple=int(data.get("tile_multiple", 1)),
                min_tile=int(data.get("min_tile", 0)),
                fixed_tile=tuple(int(v) for v in fixed) if fixed is not None else None,
                halo=int(data.get("halo", 0)),
                default_tile=tuple(int(v) for v in default) if default is not None else None,
                preprocessing=tuple(
                    Step(str(s["id"]), dict(s.get("kwargs", {})))
                    for s in data.get("preprocessing", ())
                ),
                postprocessing=tuple(
                    Step(str(s["id"]), dict(s.get("kwargs", {})))
                    for s in data.get("postprocessing", ())
                ),
                name=str(data.get("name", "model")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"malformed model description: {exc!r}") from exc


def select_device(preference: str = "auto") -> str:
    """Return the torch device to use: ``"cuda"``, ``"mps"`` or ``"cpu"``.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU. Naming a device that is
    not available raises :class:`ParameterError`.
    """
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if preference == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    kind = preference.split(":")[0]
    if kind == "cpu" or (kind == "cuda" and cuda) or (kind == "mps" and mps):
        return preference
    raise ParameterError(f"device {preference!r} is not available here")


def _softmax(x: FloatArray, axis: int) -> FloatArray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out: FloatArray = (e / e.sum(axis=axis, keepdims=True)).astype(np.float32, copy=False)
    return out


def _sigmoid(x: FloatArray) -> FloatArray:
    # exp of -|x| never overflows; the two branches give the same function.
    e = np.exp(-np.abs(x))
    out: FloatArray = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)
    return out


def apply_postprocessing(raw: FloatArray, steps: Sequence[Step]) -> FloatArray:
    """Apply post-processing ``steps`` to a model output ``(B, K, *spatial)``."""
    out = np.asarray(raw, dtype=np.float32)
    for step in steps:
        kw = step.kwargs
        if step.id == "sigmoid":
            out = _sigmoid(out)
        elif step.id == "softmax":
            out = _softmax(out, axis=1)
        elif step.id == "clip":
            out = np.clip(out, kw.get("min", None), kw.get("max", None)).astype(np.float32)
        elif step.id == "scale_linear":
            out = (
                out * np.float32(kw.get("gain", 1.0)) + np.float32(kw.get("offset", 0.0))
            ).astype(np.float32)
        elif step.id == "binarize":
            out = (out > np.float32(kw.get("threshold", 0.5))).astype(np.float32)
        elif step.id == "ensure_dtype":
            # Blending needs floats; the final dtype is chosen when writing.
            continue
    return out


class Predictor(ABC):
    """Runs batches of pre-processed tiles; see the module docstring.

    ``input_axes`` / ``output_axes`` name the model's own tensor layout with the
    letters ``b c z y x`` (default ``"bc"`` + spatial axes). A layout without ``b``,
    or ``single_batch=True``, runs one tile per model call.
    """

    runtime: str = ""
    device: str = "cpu"

    def __init__(
        self,
        spec: ModelSpec,
        input_axes: str | None = None,
        output_axes: str | None = None,
        single_batch: bool = False,
    ) -> None:
        self.spec = spec
        ours = "bc" + "zyx"[3 - spec.dims :]
        self.input_axes = input_axes or ours
        self.output_axes = output_axes or ours
        for axes in (self.input_axes, self.output_axes):
            if sorted(axes.replace("b", "").replace("c", "")) != sorted(ours[2:]) or len(
                set(axes)
            ) != len(axes):
                raise FormatError(f"model {spec.name!r}: unsupported axes {axes!r} for {ours!r}")
        self.single_batch = single_batch

    @abstractmethod
    def forward(self, batch: FloatArray) -> FloatArray:
        """Raw model output for ``batch``, both in the model's own axes."""

    def _forward_ours(self, batch: FloatArray) -> FloatArray:
        ours = "bc" + "zyx"[3 - self.spec.dims :]
        ia, oa = self.input_axes, self.output_axes
        if ia == ours and oa == ours and not self.single_batch:
            return self.forward(batch)
        per_item = self.single_batch or "b" not in ia
        items = [batch[i : i + 1] for i in range(batch.shape[0])] if per_item else [batch]
        outs = []
        for item in items:
            x, cur = item, ours
            if "c" not in ia:
                x, cur = x[:, 0], cur.replace("c", "")
            if "b" not in ia:
                x, cur = x[0], cur.replace("b", "")
            y = self.forward(np.ascontiguousarray(np.transpose(x, [cur.index(a) for a in ia])))
            cur = oa
            if "b" not in cur:
                y, cur = y[None], "b" + cur
            if "c" not in cur:
                y, cur = y[:, None], cur[0] + "c" + cur[1:]
            outs.append(np.transpose(y, [cur.index(a) for a in ours]))
        return np.concatenate(outs, axis=0) if len(outs) > 1 else outs[0]

    def __call__(self, batch: FloatArray) -> FloatArray:
        """Probabilities ``(B, K, *spatial)`` (post-processing applied) for ``(B, C, *spatial)``."""
        spec = self.spec
        if batch.ndim != spec.dims + 2 or batch.shape[1] != spec.in_channels:
            raise ParameterError(
                f"model {spec.name!r} expects (B, {spec.in_channels}, {spec.dims} spatial axes), "
                f"got a batch of shape {batch.shape}"
            )
        out = self._forward_ours(np.ascontiguousarray(batch, dtype=np.float32))
        if out.shape[0] != batch.shape[0] or out.shape[2:] != batch.shape[2:]:
            raise FormatError(
                f"model {spec.name!r} returned shape {out.shape} for input {batch.shape}; "
                "only models whose output matches the input's spatial shape are supported"
            )
        return apply_postprocessing(out, spec.postprocessing)


class TorchPredictor(Predictor):
    """Run a torch module (eager or TorchScript) on ``device`` (default: best available)."""

    runtime = "torch"

    def __init__(self, module: Any, spec: ModelSpec, device: str = "auto", **axes: Any) -> None:
        super().__init__(spec, **axes)
        self.device = select_device(device)
        self.module = module.to(self.device).eval()

    def forward(self, batch: FloatArray) -> FloatArray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            y = self.module(x)
            if isinstance(y, (tuple, list)):
                y = y[0]
            out: FloatArray = y.float().cpu().numpy()
        return out


ONNX_META_KEY = "vrscope"


def _onnx_spec(session: Any, name: str) -> ModelSpec:
    """The spec stored in our ONNX metadata, else what the graph's static shapes tell."""
    meta = session.get_modelmeta().custom_metadata_map
    if ONNX_META_KEY in meta:
        import json

        return ModelSpec.from_dict(json.loads(meta[ONNX_META_KEY]))
    shape_in = session.get_inputs()[0].shape
    shape_out = session.get_outputs()[0].shape
    if len(shape_in) not in (4, 5) or len(shape_out) != len(shape_in):
        raise FormatError(f"{name}: ONNX input of rank {len(shape_in)}; need (B, C, (Z,) Y, X)")
    if not isinstance(shape_in[1], int) or not isinstance(shape_out[1], int):
        raise FormatError(
            f"{name}: ONNX channel axes are not static; describe it in bioimageio.yaml"
        )
    spatial = shape_in[2:]
    fixed = tuple(spatial) if all(isinstance(s, int) for s in spatial) else None
    return ModelSpec(
        dims=len(spatial),
        in_channels=shape_in[1],
        n_classes=shape_out[1],
        fixed_tile=fixed,
        name=name,
    )


class OnnxPredictor(Predictor):
    """Run an ONNX model (serialized bytes, or a file read by ``analysis.io``) on onnxruntime.

    ``spec`` None reads it from the model's ``vrscope`` metadata or, for a
    foreign model, from its static input and output shapes. ``providers``
    default to CUDA when onnxruntime has it, else the CPU. ``name`` names the
    model in messages (default: the file name, or "onnx" for bytes).
    """

    runtime = "onnx"

    def __init__(
        self,
        model: bytes | str | os.PathLike[str],
        spec: ModelSpec | None,
        providers: Sequence[str] | None = None,
        threads: int = 0,
        name: str | None = None,
        **axes: Any,
    ) -> None:
        import onnxruntime as ort

        if isinstance(model, bytes):
            data = model
        else:  # a file: analysis.io reads it, onnxruntime only sees the bytes
            from analysis.io import read_model_bytes

            name = name or os.fspath(model)
            data = read_model_bytes(model)

        available = ort.get_available_providers()
        if providers is None:
            providers = [
                p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
            ]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                data, sess_options=options, providers=list(providers)
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise FormatError(f"not a loadable ONNX model: {str(exc).splitlines()[0]}") from exc
        super().__init__(spec or _onnx_spec(self.session, name or "onnx"), **axes)
        self.device = "cuda" if "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, batch: FloatArray) -> FloatArray:
        out = self.session.run(None, {self.input_name: batch})[0]
        return np.asarray(out, dtype=np.float32)
