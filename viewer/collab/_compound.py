"""``Compound``: several commands sent, ordered and undone as ONE session op.

:meth:`viewer.collab.CollabHistory.group` folds the commands applied inside the
block into one ``Compound`` so that, as with ``analysis.edits.History.group``, a
drag or a multi-step tool is one undo step. It travels as an ordinary op
(``{"kind": "collab_group", "args": {"name", "commands": [...]}}``); each inner
command is rebuilt through the command registry like any other op, and nesting
is refused (groups are flattened when they are built).

The project journal (``journal.jsonl``) never holds a ``collab_group``: the
server writes it there as the ``begin`` / ``apply``... / ``end`` records that
``History`` already replays as one undo step (:mod:`viewer.collab._mirror`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.edits import Command, command_from_json, command_to_json
from analysis.errors import FormatError, InvalidEditError, ParameterError

__all__ = ["MAX_GROUP_COMMANDS", "Compound"]

#: Inner commands one compound may hold (the 1 MiB frame limit bounds it too).
MAX_GROUP_COMMANDS = 10_000


class Compound(Command):
    """Apply ``commands`` in order as one edit; revert them in reverse order.

    Parameters
    ----------
    commands : sequence of Command
        At least one; nested compounds are flattened.
    name : str, default: "group"
        Shown in undo messages (like a ``History`` group's name).
    """

    kind = "collab_group"
    version = 1
    commands: list[Command]
    name: str

    def __init__(self, commands: Sequence[Command], name: str = "group") -> None:
        flat: list[Command] = []
        for c in commands:
            flat.extend(c.commands if isinstance(c, Compound) else [c])
        if not flat:
            raise ParameterError("a compound edit needs at least one command")
        if len(flat) > MAX_GROUP_COMMANDS:
            raise ParameterError(
                f"a compound edit holds at most {MAX_GROUP_COMMANDS} commands, got {len(flat)}"
            )
        self.commands = flat
        self.name = str(name)[:64] or "group"

    def apply(self, target: Any) -> None:
        done: list[Command] = []
        try:
            for c in self.commands:
                c.apply(target)
                done.append(c)
        except InvalidEditError:
            # All or nothing: the target is left as it was.
            for c in reversed(done):
                c.revert(target)
            raise

    def revert(self, target: Any) -> None:
        for c in reversed(self.commands):
            c.revert(target)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "commands": [command_to_json(c) for c in self.commands]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Compound:
        cmds = data["commands"]
        if not isinstance(cmds, list) or not cmds:
            raise FormatError("a collab_group op needs a non-empty 'commands' list")
        if len(cmds) > MAX_GROUP_COMMANDS:
            raise FormatError(f"a collab_group op holds at most {MAX_GROUP_COMMANDS} commands")
        inner: list[Command] = []
        for c in cmds:
            if not isinstance(c, Mapping) or c.get("kind") == cls.kind:
                raise FormatError("collab_group commands must be plain (non-group) commands")
            inner.append(command_from_json(c))
        return cls(inner, str(data.get("name", "group")))

    @property
    def description(self) -> str:
        return self.name
