"""bioimage.io model descriptions (``bioimageio.yaml`` / ``rdf.yaml``, format 0.4 and 0.5).

We read the parts needed to run a model: the input and output axes, their size
constraints and halo, pre- and post-processing, the TorchScript and ONNX weights
(checked against their sha256) and the test tensors. We parse the YAML
ourselves rather than depend on ``bioimageio.core``: that package pulls a large
stack and validates over the network, while running a model needs only these
fields; the reproduction of each model's own ``test_output`` is the check.
Weights given only as ``pytorch_state_dict`` need the author's Python
architecture code, which we do not execute.

The YAML and the files it names are read by :mod:`analysis.io`
(``read_bioimageio_description``, ``read_verified_bytes``, ``read_verified_npy``:
sha256 checked on the bytes that are then used); :func:`parse_bioimageio` works
on the parsed mapping.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import FormatError, ParameterError
from analysis.inference._runtime import ModelSpec, OnnxPredictor, Predictor, Step, TorchPredictor

__all__ = [
    "BioimageioModel",
    "from_model_layout",
    "is_bioimageio",
    "load_bioimageio",
    "parse_bioimageio",
    "read_bioimageio",
    "to_model_layout",
]

log = logging.getLogger(__name__)

# bioimage.io 0.4 names for axes letters; 0.5 uses typed axes with ids.
_SPACE = ("z", "y", "x")


@dataclass(frozen=True)
class BioimageioModel:
    """A parsed bioimage.io model description.

    ``input_axes`` / ``output_axes`` use the letters ``b c z y x`` in the model's order.
    ``weights`` maps ``"torchscript"`` / ``"onnx"`` to (file, sha256 or None).
    """

    path: Path
    name: str
    format_version: str
    spec: ModelSpec
    input_axes: str
    output_axes: str
    single_batch: bool
    weights: Mapping[str, tuple[Path, str | None]] = field(default_factory=dict)
    test_input: tuple[Path, str | None] | None = None
    test_output: tuple[Path, str | None] | None = None

    def verified(self, entry: tuple[Path, str | None], what: str) -> bytes:
        """The bytes of the file of ``entry``, after they matched its sha256.

        Read by :func:`analysis.io.read_verified_bytes`.
        """
        from analysis.io import read_verified_bytes

        file, digest = entry
        return read_verified_bytes(file, digest, f"{self.path.name}: {what}")

    def load_test_tensors(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """The description's test input and expected output (sha256-checked)."""
        from analysis.io import read_verified_npy

        if self.test_input is None or self.test_output is None:
            raise FormatError(f"{self.path.name}: the description names no test tensors")
        x = read_verified_npy(*self.test_input, f"{self.path.name}: test input")
        y = read_verified_npy(*self.test_output, f"{self.path.name}: test output")
        return x, y


def is_bioimageio(path: str | os.PathLike[str]) -> bool:
    """True for a ``*.yaml`` description or a folder holding one (see ``analysis.io``)."""
    from analysis.io import is_bioimageio_path

    return is_bioimageio_path(path)


def _file_entry(base: Path, entry: Any, what: str) -> tuple[Path, str | None]:
    if isinstance(entry, str):
        source, digest = entry, None
    elif isinstance(entry, Mapping) and "source" in entry:
        source, digest = str(entry["source"]), entry.get("sha256")
    else:
        raise FormatError(f"{base.name}: {what} has no 'source'")
    if "://" in source:
        raise FormatError(f"{what} {source} is remote; download the model package first")
    return base.parent / source, (str(digest) if digest else None)


def _axes_v05(axes: Sequence[Any], where: str) -> tuple[str, list[Mapping[str, Any]]]:
    letters = []
    for ax in axes:
        if not isinstance(ax, Mapping) or "type" not in ax:
            raise FormatError(f"{where}: axis {ax!r} has no type")
        kind = ax["type"]
        if kind == "batch":
            letters.append("b")
        elif kind == "channel":
            letters.append("c")
        elif kind == "space":
            ident = str(ax.get("id", "x"))
            if ident not in _SPACE:
                raise FormatError(f"{where}: space axis {ident!r} is not one of z, y, x")
            letters.append(ident)
        else:
            raise FormatError(f"{where}: axis type {kind!r} is not supported")
    return "".join(letters), [dict(a) for a in axes]


def _steps(raw: Any, version: str, where: str) -> tuple[Step, ...]:
    steps = []
    for item in raw or ():
        if not isinstance(item, Mapping):
            raise FormatError(f"{where}: processing step {item!r} is not a mapping")
        ident = str(item.get("id", item.get("name", "")))
        kwargs = dict(item.get("kwargs", {}) or {})
        if version.startswith("0.4"):
            mode = kwargs.pop("mode", "per_sample")
            if ident == "zero_mean_unit_variance" and mode == "fixed":
                ident = "fixed_zero_mean_unit_variance"
            elif mode == "per_dataset":
                raise FormatError(f"{where}: 'per_dataset' statistics are not supported")
            if ident == "clip" and "min" not in kwargs and "max" not in kwargs:
                raise FormatError(f"{where}: clip without bounds")
        steps.append(Step(ident, kwargs))
    return tuple(steps)


def read_bioimageio(path: str | os.PathLike[str]) -> BioimageioModel:
    """Read (with :func:`analysis.io.read_bioimageio_description`) and parse a description.

    ``path`` is a yaml file or the folder holding ``bioimageio.yaml`` / ``rdf.yaml``.
    Raises :class:`FormatError` for descriptions that are not models, use axes
    other than batch/channel/z/y/x, or have one input or output too many.
    """
    from analysis.io import read_bioimageio_description

    p, desc = read_bioimageio_description(path)
    return parse_bioimageio(desc, p)


def parse_bioimageio(desc: Mapping[str, Any], p: Path) -> BioimageioModel:
    """Parse a bioimage.io model description already read into a mapping.

    Parameters
    ----------
    desc : mapping
        The YAML content.
    p : Path
        The yaml file's path: names it in messages; relative ``source`` entries are
        resolved against its folder (nothing is read here).
    """
    if not isinstance(desc, Mapping) or desc.get("type") != "model":
        raise FormatError(f"{p}: not a bioimage.io model description (type is not 'model')")
    version = str(desc.get("format_version", ""))
    if not (version.startswith("0.4") or version.startswith("0.5")):
        raise FormatError(
            f"{p}: bioimage.io format_version {version!r} is not supported (0.4, 0.5)"
        )
    inputs, outputs = desc.get("inputs") or [], desc.get("outputs") or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise FormatError(f"{p}: only models with one input and one output are supported")
    inp, out = inputs[0], outputs[0]
    name = str(desc.get("name", p.parent.name))
    if version.startswith("0.5"):
        in_axes, in_ax = _axes_v05(inp.get("axes", ()), f"{p.name}: input")
        out_axes, out_ax = _axes_v05(out.get("axes", ()), f"{p.name}: output")
        spatial = [a for a in in_axes if a in _SPACE]
        sizes = {a: ax.get("size") for a, ax in zip(in_axes, in_ax, strict=True)}
        fixed, mins, steps = [], [], []
        for a in spatial:
            s = sizes[a]
            if isinstance(s, int):
                fixed.append(s)
            elif isinstance(s, Mapping) and "min" in s:
                mins.append(int(s["min"]))
                steps.append(int(s.get("step", 1)) or 1)
            else:
                raise FormatError(f"{p.name}: input axis {a} has an unsupported size {s!r}")
        in_c = in_ax[in_axes.index("c")] if "c" in in_axes else None
        in_channels = len(in_c.get("channel_names", [1])) if in_c else 1
        out_c = out_ax[out_axes.index("c")] if "c" in out_axes else None
        class_names = tuple(str(n) for n in out_c.get("channel_names", [])) if out_c else ()
        n_classes = len(class_names) or (1 if out_c is None else int(out_c.get("size", 1)))
        halo = max([int(ax.get("halo", 0)) for ax in out_ax] or [0])
        batch = in_ax[in_axes.index("b")] if "b" in in_axes else None
        single_batch = batch is not None and batch.get("size") == 1
    else:
        in_axes, out_axes = str(inp.get("axes", "")), str(out.get("axes", ""))
        for ax in (in_axes, out_axes):
            if set(ax) - set("bczyx"):
                raise FormatError(f"{p.name}: axes {ax!r} are not supported (b, c, z, y, x only)")
        spatial = [a for a in in_axes if a in _SPACE]
        shape = inp.get("shape")
        fixed, mins, steps = [], [], []
        if isinstance(shape, Sequence):
            fixed = [int(shape[in_axes.index(a)]) for a in spatial]
        elif isinstance(shape, Mapping):
            mins = [int(shape["min"][in_axes.index(a)]) for a in spatial]
            steps = [int(shape["step"][in_axes.index(a)]) or 1 for a in spatial]
        in_channels = int(fixed_channels(inp, in_axes))
        n_classes = int(fixed_channels(out, out_axes, reference=in_channels))
        class_names = ()
        halo = max(out.get("halo", [0]) or [0])
        single_batch = (
            isinstance(shape, Sequence) and "b" in in_axes and shape[in_axes.index("b")] == 1
        )
    if len(spatial) not in (2, 3) or (len(spatial) == 3 and spatial != list(_SPACE)):
        raise FormatError(f"{p.name}: input axes {in_axes!r} must be (z,) y, x in this order")
    if sorted(a for a in out_axes if a in _SPACE) != sorted(spatial):
        raise FormatError(f"{p.name}: output axes {out_axes!r} do not match input {in_axes!r}")
    fixed_tile = tuple(fixed) if len(fixed) == len(spatial) else None
    if fixed_tile is None and mins:
        # One size rule for all axes: the largest min and step of any axis.
        tile_multiple, min_tile = max(steps), max(mins)
    else:
        tile_multiple, min_tile = 1, 0
    spec = ModelSpec(
        dims=len(spatial),
        in_channels=in_channels,
        n_classes=n_classes,
        class_names=class_names,
        tile_multiple=tile_multiple,
        min_tile=min_tile,
        fixed_tile=fixed_tile,
        halo=int(halo),
        preprocessing=_steps(inp.get("preprocessing"), version, f"{p.name}: input"),
        postprocessing=_steps(out.get("postprocessing"), version, f"{p.name}: output"),
        name=name,
    )
    weights = {}
    for key, entry in (desc.get("weights") or {}).items():
        if key in ("torchscript", "onnx") and entry:
            weights[key] = _file_entry(p, entry, f"{key} weights")
    test_in = inp.get("test_tensor") if version.startswith("0.5") else None
    test_out = out.get("test_tensor") if version.startswith("0.5") else None
    if version.startswith("0.4"):
        ti, to = desc.get("test_inputs") or [], desc.get("test_outputs") or []
        test_in = ti[0] if ti else None
        test_out = to[0] if to else None
    return BioimageioModel(
        path=p,
        name=name,
        format_version=version,
        spec=spec,
        input_axes=in_axes,
        output_axes=out_axes,
        single_batch=single_batch,
        weights=weights,
        test_input=_file_entry(p, test_in, "test input") if test_in else None,
        test_output=_file_entry(p, test_out, "test output") if test_out else None,
    )


def fixed_channels(tensor: Mapping[str, Any], axes: str, reference: int = 1) -> int:
    """Channels of a 0.4 tensor: from a fixed shape, or scale/offset of the reference input."""
    if "c" not in axes:
        return 1
    shape = tensor.get("shape")
    i = axes.index("c")
    if isinstance(shape, Sequence):
        return int(shape[i])
    if isinstance(shape, Mapping) and "min" in shape:
        return int(shape["min"][i])
    if isinstance(shape, Mapping) and "scale" in shape:
        return int(round(reference * float(shape["scale"][i]) + 2 * float(shape["offset"][i])))
    raise FormatError(f"cannot tell the channel count from shape {shape!r}")


def load_bioimageio(
    path: str | os.PathLike[str] | BioimageioModel,
    runtime: str = "torch",
    device: str = "auto",
) -> Predictor:
    """A :class:`Predictor` for a bioimage.io model, with its weights sha256-checked.

    Parameters
    ----------
    path : path or BioimageioModel
    runtime : {"torch", "onnx"}, default: "torch"
        "torch" runs the TorchScript weights, "onnx" the ONNX weights.
    device : str, default: "auto" (torch only)
    """
    model = path if isinstance(path, BioimageioModel) else read_bioimageio(path)
    key = {"torch": "torchscript", "onnx": "onnx"}.get(runtime)
    if key is None:
        raise ParameterError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
    if key not in model.weights:
        have = ", ".join(sorted(model.weights)) or "none we can run"
        raise FormatError(f"{model.path.name}: no {key} weights (has {have})")
    data = model.verified(model.weights[key], f"{key} weights")
    file = model.weights[key][0]
    axes: dict[str, Any] = {
        "input_axes": model.input_axes,
        "output_axes": model.output_axes,
        "single_batch": model.single_batch,
    }
    if runtime == "onnx":
        return OnnxPredictor(data, model.spec, name=file.name, **axes)
    import torch

    try:
        with warnings.catch_warnings():
            # torch deprecates TorchScript, but bioimage.io publishes it.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(  # type: ignore[no-untyped-call]
                io.BytesIO(data), map_location="cpu"
            )
    except RuntimeError as exc:
        raise FormatError(f"{file.name}: not a loadable TorchScript file") from exc
    return TorchPredictor(module, model.spec, device=device, **axes)


def to_model_layout(volume: npt.NDArray[Any], axes: str) -> npt.NDArray[Any]:
    """(C, Z, Y, X) output -> the model's layout ``axes`` (a batch of one)."""
    arr, cur = volume, "czyx"
    if "z" not in axes:
        arr, cur = arr[:, 0], "cyx"
    if "c" not in axes:
        arr, cur = arr[0], cur[1:]
    if "b" in axes:
        arr, cur = arr[None], "b" + cur
    return np.transpose(arr, [cur.index(a) for a in axes])


def from_model_layout(tensor: npt.NDArray[Any], axes: str) -> npt.NDArray[Any]:
    """A tensor in the model's input layout ``axes`` (batch of 1) -> (C, Z, Y, X)."""
    if tensor.ndim != len(axes):
        raise ParameterError(
            f"array of shape {tensor.shape} does not have the model's axes {axes!r}"
        )
    arr, cur = tensor, axes
    if "b" in cur:
        if arr.shape[cur.index("b")] != 1:
            raise ParameterError("only a batch of one sample is supported")
        arr = arr.squeeze(cur.index("b"))
        cur = cur.replace("b", "")
    if "c" not in cur:
        arr, cur = arr[None], "c" + cur
    if "z" not in cur:
        arr, cur = np.expand_dims(arr, 0), "z" + cur
    return np.transpose(arr, [cur.index(a) for a in "czyx"])
