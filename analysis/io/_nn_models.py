"""Neural-network model files: the file side of :mod:`analysis.inference`.

:mod:`analysis.inference` builds, trains, exports and runs models in memory (state
dicts, serialized ONNX / TorchScript bytes, parsed descriptions); this module is
where those meet the disk:

- our U-Net checkpoints: ``model.safetensors`` (or a folder holding one) with the
  model description as JSON in the safetensors metadata under ``"vrscope"``, or a
  ``.pt`` file written by ``torch.save({"vrscope": json, "state_dict": ...})`` and
  read back with ``torch.load(weights_only=True)``; neither can execute code when
  loaded, so checkpoints from others are safe to open;
- exported model files (ONNX, TorchScript) as bytes;
- bioimage.io descriptions (``bioimageio.yaml`` / ``rdf.yaml``) parsed with
  ``yaml.safe_load``, and the files they name read only after their sha256 matches;
- ``.npy`` inputs and outputs of ``vrscope infer`` and a scratch memory map for
  probability maps larger than RAM.

torch, safetensors and PyYAML are imported inside the functions, so
:mod:`analysis.io` imports without the ``ml`` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import tokenize
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.errors import FormatError

__all__ = [
    "CHECKPOINT_NAME",
    "BIOIMAGEIO_NAMES",
    "checkpoint_file",
    "find_bioimageio_description",
    "is_bioimageio_path",
    "model_file_kind",
    "read_bioimageio_description",
    "read_checkpoint",
    "read_model_bytes",
    "read_npy",
    "read_verified_bytes",
    "read_verified_npy",
    "scratch_array",
    "sha256_file",
    "write_checkpoint",
    "write_model_bytes",
    "write_npy",
]

CHECKPOINT_NAME = "model.safetensors"
BIOIMAGEIO_NAMES = ("bioimageio.yaml", "rdf.yaml")
_TORCH_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(2, "No such file or directory", str(path))


# ----------------------------------------------------------------------------- checkpoints


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """The weights file of a checkpoint path: a folder means its ``model.safetensors``."""
    p = Path(path).expanduser()
    return p / CHECKPOINT_NAME if p.is_dir() else p


def write_checkpoint(
    path: str | os.PathLike[str], state: Mapping[str, Any], description: str
) -> Path:
    """Write a state dict and its JSON description as safetensors or a ``.pt`` state dict.

    Parameters
    ----------
    path : path
        ``*.safetensors``, ``*.pt`` / ``*.pth``, or a folder (created if needed; gets
        ``model.safetensors``).
    state : mapping of str to torch.Tensor
        Contiguous CPU tensors (``UNet.state_dict()``).
    description : str
        JSON stored with the weights (safetensors metadata ``"vrscope"`` / the ``.pt``
        dict's ``"vrscope"`` entry).

    Returns
    -------
    Path of the written file.
    """
    import torch

    p = Path(path).expanduser()
    if p.suffix in (".pt", ".pth"):
        p.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"vrscope": description, "state_dict": dict(state)}, p)
        return p
    from safetensors.torch import save_file

    if p.suffix != ".safetensors":
        p.mkdir(parents=True, exist_ok=True)
        p = p / CHECKPOINT_NAME
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(state), str(p), metadata={"vrscope": description})
    return p


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str | None]:
    """Read a checkpoint written by :func:`write_checkpoint` without unpickling code.

    Returns
    -------
    state : dict of str to torch.Tensor (on the CPU)
    description : str or None
        The stored ``"vrscope"`` JSON, None when the file has none.
    """
    import torch

    p = checkpoint_file(path)
    if not p.exists():
        raise _missing(p)
    if p.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(p))
        except Exception as exc:  # safetensors raises its own untyped errors
            raise FormatError(f"{p}: not a readable safetensors file ({exc})") from exc
        return state, meta.get("vrscope")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler raises many types for foreign files
        raise FormatError(f"{p}: not a state_dict checkpoint ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise FormatError(f"{p}: no 'state_dict' in the checkpoint")
    text = blob.get("vrscope")
    return dict(blob["state_dict"]), (str(text) if text is not None else None)


# ----------------------------------------------------------------------------- model files


def _is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (it holds code), False for a state_dict ``.pt``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any("/code/" in n or n.endswith("constants.pkl") for n in names)


def is_bioimageio_path(path: str | os.PathLike[str]) -> bool:
    """True for a ``*.yaml`` description or a folder holding ``bioimageio.yaml`` / ``rdf.yaml``."""
    p = Path(path).expanduser()
    if p.is_dir():
        return any((p / n).is_file() for n in BIOIMAGEIO_NAMES)
    return p.suffix in (".yaml", ".yml")


def model_file_kind(path: str | os.PathLike[str]) -> str:
    """What a model file is: ``checkpoint``, ``onnx``, ``torchscript`` or ``bioimageio``.

    Raises ``FileNotFoundError`` for a missing file and :class:`FormatError` for a
    folder or file of another kind.
    """
    p = Path(path).expanduser()
    if is_bioimageio_path(p):
        return "bioimageio"
    if p.is_dir():
        if (p / CHECKPOINT_NAME).is_file():
            return "checkpoint"
        raise FormatError(f"{p}: folder holds neither {CHECKPOINT_NAME} nor a bioimageio.yaml")
    if not p.exists():
        raise _missing(p)
    if p.suffix == ".onnx":
        return "onnx"
    if p.suffix == ".safetensors":
        return "checkpoint"
    if p.suffix in _TORCH_SUFFIXES:
        return "torchscript" if _is_torchscript(p) else "checkpoint"
    raise FormatError(
        f"{p.name}: unknown model file (expected .safetensors, .pt, .onnx, TorchScript "
        "or bioimageio.yaml)"
    )


def read_model_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a model file (ONNX, TorchScript); ``FileNotFoundError`` when missing."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise _missing(p)
    return p.read_bytes()


def write_model_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write serialized model bytes to ``path``, creating its folder; returns the path."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


# ----------------------------------------------------------------------------- bioimage.io


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_bioimageio_description(path: str | os.PathLike[str]) -> Path:
    """The description file of ``path``: itself, or the ``bioimageio.yaml`` / ``rdf.yaml`` in it."""
    p = Path(path).expanduser()
    if p.is_dir():
        for name in BIOIMAGEIO_NAMES:
            if (p / name).is_file():
                return p / name
        raise FormatError(f"{p}: no bioimageio.yaml or rdf.yaml in this folder")
    if not p.exists():
        raise _missing(p)
    return p


def read_bioimageio_description(path: str | os.PathLike[str]) -> tuple[Path, Mapping[str, Any]]:
    """Parse a bioimage.io description with ``yaml.safe_load``.

    Returns
    -------
    file : Path
        The yaml file (relative ``source`` entries resolve against its folder).
    description : mapping
        The parsed YAML; :class:`FormatError` when it is not a mapping.
    """
    import yaml

    p = find_bioimageio_description(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{p}: not a text file") from exc
    try:
        desc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FormatError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(desc, Mapping):
        raise FormatError(f"{p}: not a bioimage.io model description (not a mapping)")
    return p, desc


def read_verified_bytes(
    path: str | os.PathLike[str], sha256: str | None, what: str = "file"
) -> bytes:
    """Read ``path`` after checking that it exists and, when given, matches ``sha256``.

    The digest is taken of the bytes returned, so the check and the use see the same
    content. Raises :class:`FormatError` (naming ``what``) when the file is missing or
    its digest differs.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FormatError(f"{what} file {p.name} is missing")
    data = p.read_bytes()
    if sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():
            raise FormatError(
                f"{what} {p.name} fails its sha256 check "
                f"(expected {sha256[:12]}..., got {actual[:12]}...)"
            )
    return data


def read_verified_npy(
    path: str | os.PathLike[str], sha256: str | None, what: str = "array"
) -> npt.NDArray[Any]:
    """A ``.npy`` file read with :func:`read_verified_bytes` (never unpickled)."""
    data = read_verified_bytes(path, sha256, what)
    try:
        arr: npt.NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise FormatError(f"{what} {Path(path).name}: not a .npy array ({exc})") from exc
    return arr


# ----------------------------------------------------------------------------- arrays


def read_npy(path: str | os.PathLike[str], mmap: bool = True) -> npt.NDArray[Any]:
    """A ``.npy`` array, memory-mapped by default, never unpickled.

    Raises ``FileNotFoundError`` when missing and :class:`FormatError` when the file
    is not a readable ``.npy`` (or holds objects).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise _missing(p)
    try:
        arr: npt.NDArray[Any] = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        # a damaged header is parsed as Python literals: SyntaxError, TokenError
        raise FormatError(f"{p}: not a readable .npy file") from exc
    return arr


def write_npy(path: str | os.PathLike[str], array: npt.ArrayLike) -> Path:
    """Write ``array`` as ``.npy``; :class:`FormatError` when the folder does not exist."""
    p = Path(path).expanduser()
    if not p.parent.is_dir():
        raise FormatError(f"folder {p.parent} does not exist")
    np.save(p, np.asarray(array), allow_pickle=False)
    return p


@contextlib.contextmanager
def scratch_array(shape: tuple[int, ...], dtype: npt.DTypeLike) -> Iterator[npt.NDArray[Any]]:
    """A zero-filled memory-mapped array in a temporary folder, deleted on exit.

    For accumulators larger than RAM (e.g. tiled probability maps, (K, Z, Y, X)).
    """
    with tempfile.TemporaryDirectory(prefix="vrscope-scratch-") as tmp:
        arr = np.lib.format.open_memmap(
            Path(tmp) / "scratch.npy", mode="w+", dtype=np.dtype(dtype), shape=shape
        )
        try:
            yield arr
        finally:
            del arr
