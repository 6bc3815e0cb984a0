"""The ``Command`` base class and the registry that turns journal JSON back into commands."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from analysis.errors import FormatError

__all__ = ["Command", "command_from_json", "command_to_json", "registered_commands"]

_REGISTRY: dict[str, type[Command]] = {}


class Command(abc.ABC):
    """One undoable change to a target (a ``TrackGraph``, an annotation set, ...).

    Subclasses set ``kind`` (a unique name used in the journal) and ``version``
    (bumped when the JSON arguments change), and implement:

    - :meth:`apply`: validate everything first and raise
      :class:`analysis.errors.InvalidEditError` with the target untouched if the
      edit is not allowed; then change the target and keep the minimal diff
      needed by :meth:`revert`.
    - :meth:`revert`: undo exactly what the last :meth:`apply` did.
    - :meth:`to_json` / :meth:`from_json`: the arguments as plain JSON. Applying a
      command rebuilt from JSON to the same target state must do the same thing
      (ids a command creates are part of its JSON once it has been applied).
    """

    kind: ClassVar[str] = ""
    version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind:
            if kind in _REGISTRY and _REGISTRY[kind] is not cls:
                raise TypeError(f"command kind {kind!r} is already registered")
            _REGISTRY[kind] = cls

    @abc.abstractmethod
    def apply(self, target: Any) -> None:
        """Validate, then change ``target``; raise ``InvalidEditError`` leaving it unchanged."""

    @abc.abstractmethod
    def revert(self, target: Any) -> None:
        """Undo the last :meth:`apply` on ``target``."""

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The command's arguments as JSON-able data."""

    @classmethod
    @abc.abstractmethod
    def from_json(cls, data: Mapping[str, Any]) -> Command:
        """Rebuild a command from :meth:`to_json` output."""

    @property
    def description(self) -> str:
        """A short human-readable name, e.g. for an undo menu."""
        return self.kind

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()})"


def registered_commands() -> dict[str, type[Command]]:
    """Command classes by ``kind`` (everything the journal can replay)."""
    return dict(_REGISTRY)


def command_to_json(cmd: Command) -> dict[str, Any]:
    """``{"kind", "v", "args"}`` for one command."""
    return {"kind": cmd.kind, "v": cmd.version, "args": cmd.to_json()}


def command_from_json(data: Mapping[str, Any]) -> Command:
    """Rebuild a command from :func:`command_to_json` output.

    Raises :class:`FormatError` for an unknown kind or a newer version than this code knows.
    """
    try:
        kind = str(data["kind"])
        version = int(data.get("v", 1))
        args = data["args"]
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"malformed command record {data!r}") from exc
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise FormatError(f"unknown command kind {kind!r} (known: {sorted(_REGISTRY)})")
    if version > cls.version:
        raise FormatError(
            f"command {kind!r} has version {version}, newer than supported {cls.version}"
        )
    try:
        return cls.from_json(args)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        # OverflowError: an id of 1e400 (JSON infinity) given to int().
        raise FormatError(f"malformed arguments for command {kind!r}: {exc}") from exc
