"""Trained classifiers on disk: the file side of ``to_bytes`` / ``from_bytes``.

The compute classes (:class:`analysis.segment.PixelClassifier`,
:class:`analysis.features.ObjectClassifier`) serialise themselves to pickle-free
``.npz`` bytes; only this module touches the file. Any object with ``to_bytes()`` can
be saved, any class with ``from_bytes(data, source)`` loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, TypeVar

from analysis.errors import FormatError

__all__ = ["load_classifier", "save_classifier"]


class _ToBytes(Protocol):
    def to_bytes(self) -> bytes: ...


T_co = TypeVar("T_co", covariant=True)


class _FromBytes(Protocol[T_co]):
    def from_bytes(self, data: bytes, source: str = ...) -> T_co: ...


def save_classifier(classifier: _ToBytes, path: str | os.PathLike[str]) -> Path:
    """Write ``classifier.to_bytes()`` to ``path`` (conventionally ``*.npz``).

    Raises :class:`FormatError` when the folder does not exist.
    """
    target = Path(path).expanduser()
    if not target.parent.is_dir():
        raise FormatError(f"folder {target.parent} does not exist")
    data = classifier.to_bytes()  # serialise first: a failure leaves no partial file
    target.write_bytes(data)
    return target


def load_classifier(cls: _FromBytes[T_co], path: str | os.PathLike[str]) -> T_co:
    """Read a classifier file written by :func:`save_classifier` as ``cls``.

    ``cls.from_bytes`` validates the content (and never unpickles); a missing file
    raises ``FileNotFoundError`` (the CLI reports it in one line).
    """
    p = Path(path).expanduser()
    return cls.from_bytes(p.read_bytes(), str(p))
