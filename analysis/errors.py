"""Errors that describe a problem with the user's input, not a bug.

Every reader and compute function raises a subclass of :class:`VrscopeError`
for bad paths, bad metadata, corrupt chunks or bad parameters. The CLI turns
them into one line on stderr and exit code 2; the viewer shows the message.
Messages must name the offending thing (path, field, chunk key, parameter).
"""

from __future__ import annotations

__all__ = [
    "ChunkError",
    "FormatError",
    "InvalidEditError",
    "LabelEditError",
    "ParameterError",
    "VrscopeError",
]


class VrscopeError(Exception):
    """Base class: a user-facing error whose message is one clear line."""


class FormatError(VrscopeError, ValueError):
    """A file or store is missing, not of the expected kind, or has invalid metadata."""


class ChunkError(VrscopeError, OSError):
    """A chunk exists but cannot be decoded. ``key`` names the chunk."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class ParameterError(VrscopeError, ValueError):
    """A parameter value is out of range or inconsistent with the data."""


class InvalidEditError(VrscopeError, ValueError):
    """An edit command would make a track graph or annotation set invalid."""


class LabelEditError(InvalidEditError, ParameterError):
    """A label edit is refused (unknown id, background id 0, a seed outside the object,
    coincident seeds, a label image that is not integer); nothing was changed."""
