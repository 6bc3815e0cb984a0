"""Label edits as session ops: the server computes and writes them, every client re-reads.

A label command (``labels.merge``, ``labels.paint`` ... in :mod:`analysis.edits`) keeps
its change as an *atom* (masked old and new values per touched chunk) in the label
image's working copy, by atom id. Atoms can be megabytes (a merge of two large objects),
so they never travel through the session. Instead:

- **One writer.** A project session (``vrscope serve PROJECT_DIR``) makes the working
  copy of each of the project's label images when it starts
  (``PROJECT_DIR/labels/NAME.zarr``) and names them in the session info
  (``label_copies``). Only the server writes them: it computes each label op on its
  state in server order (validation included: an invalid op is rejected), records the
  atom, writes the touched chunks of every level, journals the op (session journal and
  the project's ``journal.jsonl``) and only then broadcasts it with its atom id.
- **Clients are views.** A client never applies a label op itself (no optimistic
  apply: the op waits for the server, one round trip, like an undo). Its workspace's
  label images are :class:`SharedLabels`: the server's working copy opened read-only.
  When an op arrives in server order, "applying" it loads the op's atom (its masks
  say which chunks changed) and announces a :class:`analysis.edits.LabelChange`, so
  the views re-read exactly those regions from the shared copy. Every replica shows
  the one copy the server wrote: they cannot diverge.
- **Ids are never client-asserted atoms.** A client sends label commands without an
  atom id or id mapping entries (a redo is sent as the command again, recomputed by the
  server on the current voxels); the server refuses a label op that names either.
- **Merges and tables are id mappings** (``docs/design/0005``): the op the server
  broadcasts carries the mapping entries it computed; applying it on a client sets them
  on the shared copy's :class:`analysis.edits.LabelIds` (what the client's views read
  through) and announces a :class:`analysis.edits.LabelChange` with ``remapped`` ids.
- **Undo.** One's own label op can be undone (selectively) unless a later label op
  on the same label image is still active: its stored old values would no longer be
  right (undo that one first). The rule is decided from the op log alone, so the
  server and every replica agree.

A participant on another machine, for which the copy's path does not open, sees the
label images as the server started them (the image store's) and is refused label
edits with a message naming the path (:class:`SharedLabels` with ``root=None``); the
others' label ops change nothing there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from psygnal import Signal

from analysis.edits import Command, LabelAtom, LabelChange
from analysis.errors import FormatError, InvalidEditError, LabelEditError, VrscopeError

__all__ = [
    "SharedLabels",
    "client_atoms",
    "label_images_of",
    "label_names",
    "server_computed",
    "without_atoms",
]

log = logging.getLogger(__name__)

LABEL_KIND_PREFIX = "labels."
_ATOM_ID = re.compile(r"^[0-9a-f]{32}$")

Region = tuple[slice, ...]


def _commands(cmd: Command) -> list[Command]:
    inner = getattr(cmd, "commands", None)
    return list(inner) if cmd.kind == "collab_group" and inner is not None else [cmd]


def server_computed(cmd: Command | None) -> bool:
    """Whether ``cmd`` (or a command of a group) is a label edit: computed by the server."""
    if cmd is None:
        return False
    return any(c.kind.startswith(LABEL_KIND_PREFIX) for c in _commands(cmd))


def label_names(cmd: Command) -> set[str]:
    """The label images ``cmd`` edits."""
    return {
        str(getattr(c, "labels", ""))
        for c in _commands(cmd)
        if c.kind.startswith(LABEL_KIND_PREFIX)
    }


def client_atoms(cmd: Command) -> list[str]:
    """The atom ids (and ``"map"`` for id mapping entries) a submitted command names (a
    client must name none)."""
    out: list[str] = []
    for c in _commands(cmd):
        if not c.kind.startswith(LABEL_KIND_PREFIX):
            continue
        if (a := getattr(c, "atom_id", None)) is not None:
            out.append(str(a))
        if getattr(c, "entries", None) is not None:
            out.append("map")
    return out


def without_atoms(body: Mapping[str, Any]) -> dict[str, Any]:
    """A command body (``command_to_json``) with every label command's atom id removed:
    the command is computed again where it is applied (a redo in a session)."""

    def strip(b: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(b)
        args = dict(out.get("args") or {})
        if str(out.get("kind", "")).startswith(LABEL_KIND_PREFIX):
            if "atom" in args:
                args["atom"] = None
            args.pop("map", None)
        if out.get("kind") == "collab_group" and isinstance(args.get("commands"), list):
            args["commands"] = [strip(c) for c in args["commands"]]
        out["args"] = args
        return out

    return strip(body)


def check_label_undo(later: list[Any], target: Any) -> None:
    """Refuse the undo of label op ``target`` when an active op in ``later`` (the entries
    after it, in order) edits one of the same label images (InvalidEditError)."""
    assert target.cmd is not None
    if not server_computed(target.cmd):
        return
    names = label_names(target.cmd)
    for e in later:
        if e.kind == "cmd" and not e.undone and e.cmd is not None and server_computed(e.cmd):
            shared = names & label_names(e.cmd)
            if shared:
                raise InvalidEditError(
                    f"cannot undo {target.op_id}: {e.author}'s later edit of label image "
                    f"{sorted(shared)[0]!r} builds on it (undo that one first)"
                )


def _factors(shapes: list[tuple[int, ...]]) -> list[tuple[int, int, int]]:
    """Level k samples level 0 every f_k voxels (the writer's rule ``level[k-1][::2]``
    along each axis that halves)."""
    out = [(1, 1, 1)]
    for prev, cur in zip(shapes, shapes[1:], strict=False):
        f = out[-1]
        out.append(
            (
                f[0] * (2 if prev[0] != cur[0] else 1),
                f[1] * (2 if prev[1] != cur[1] else 1),
                f[2] * (2 if prev[2] != cur[2] else 1),
            )
        )
    return out


class SharedLabels:
    """A session label image as a client sees it: the server's working copy, read-only.

    It is an :class:`analysis.edits.EditableLabels` that never writes: reads (and the
    previews actions compute, e.g. a split's parts) see the shared copy; ``set`` (an op
    in server order) only announces what the atom changed (:attr:`changed`) so views
    re-read it; ``record`` is refused (the server computes label edits).

    Parameters
    ----------
    name : str
        The label image.
    root : path of the server's ``labels/NAME.zarr``, or None
        None (or a path that does not open here): label edits are refused with ``why``.
    """

    changed = Signal(object)

    def __init__(self, name: str, root: str | Path | None, why: str = "") -> None:
        self._name = name
        self.root = Path(root) if root is not None else None
        self.why = why
        self._store: Any = None
        self.source: Any = None
        self._max_id: int | None = None
        if self.root is not None:
            from analysis.io import LabelEditStore

            try:
                # No chunk cache: the server writes the files, so a chunk decoded here
                # earlier may be stale (every read goes to the files).
                self._store = LabelEditStore(self.root, name, fsync=False, cache_bytes=0)
            except (OSError, VrscopeError) as exc:
                self.why = (
                    f"the session's label image {name!r} is kept at {self.root}, which does "
                    f"not open here ({exc}); label edits are refused on this machine"
                )
                self._store = None
            else:
                self.source = self._store.source
                # The id mapping ops set here is the one the views read through; its
                # changes are announced as this image's (the store itself writes nothing).
                self._store.changed.connect(self.changed.emit)
                shapes = [tuple(int(s) for s in lv.shape[-3:]) for lv in self.source.levels]
                self._shapes = shapes
                self._level_chunks = [
                    tuple(int(c) for c in lv.chunks[-3:]) for lv in self.source.levels
                ]
                self._factors = _factors(shapes)

    @property
    def ids(self) -> Any:
        """The shared copy's id mapping and counts (None: the copy does not open here)."""
        return self._store.ids if self._store is not None else None

    @property
    def available(self) -> bool:
        """Whether the shared copy opened (label edits possible from here)."""
        return self._store is not None

    def _need(self) -> Any:
        if self._store is None:
            raise LabelEditError(
                self.why or f"the session's label image {self._name!r} cannot be opened here"
            )
        return self._store

    # -- EditableLabels ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self._need().shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def dtype(self) -> np.dtype[Any]:
        dt: np.dtype[Any] = np.dtype(self._need().dtype)
        return dt

    @property
    def chunks(self) -> tuple[int, int, int]:
        c = self._need().chunks
        return (int(c[0]), int(c[1]), int(c[2]))

    @property
    def scale_um(self) -> tuple[float, float, float]:
        s = self._need().scale_um
        return (float(s[0]), float(s[1]), float(s[2]))

    def read(self, region: Region) -> npt.NDArray[Any]:
        return np.asarray(self._need().read(region))

    def blocks(self) -> Iterator[Region]:
        return iter(self._need().blocks())

    def max_id(self) -> int:
        if self._max_id is None:
            self._max_id = int(self._need().max_id())
        mapping = self._need().ids.mapping  # new ids stay above the mapping's ids too
        return max(self._max_id, max((max(k, v) for k, v in mapping.items()), default=0))

    def record(self, atom: LabelAtom) -> str:
        raise LabelEditError(
            f"label image {self._name!r} is edited by the session server: send the command"
        )

    def load(self, atom_id: str) -> LabelAtom:
        if not _ATOM_ID.match(atom_id):
            raise FormatError(f"label edit id {atom_id!r} is malformed")
        atom: LabelAtom = self._need().load(atom_id)
        return atom

    def set(self, atom_id: str, forward: bool, atom: LabelAtom | None = None) -> None:
        """The server wrote this atom (op in server order): announce what changed."""
        if self._store is None:
            return  # nothing shown from the shared copy here: nothing to refresh
        try:
            got = atom if atom is not None else self.load(atom_id)
        except (FormatError, OSError) as exc:
            # Never stop applying the session's ops over a view refresh: re-read it all.
            log.warning("label image %s: edit %s unreadable (%s)", self._name, atom_id, exc)
            self._announce_all(forward)
            return
        if not got.pieces:
            return
        # The server wrote it (maybe before this replica counted): count again when asked.
        self._store.ids.forget_counts()
        values = np.concatenate([np.concatenate([p.old, p.new]) for p in got.pieces])
        ids = {int(v) for v in np.unique(values)}
        ids.discard(0)
        if forward and self._max_id is not None:
            self._max_id = max(self._max_id, max(int(p.new.max()) for p in got.pieces))
        boxes = tuple(self._boxes(got, k) for k in range(len(self._shapes)))
        self.changed.emit(LabelChange(self._name, frozenset(ids), boxes, forward))

    def _boxes(self, atom: LabelAtom, k: int) -> tuple[Region, ...]:
        """The chunk regions of level ``k`` holding a sample of the atom's pieces."""
        f, ck, shape = self._factors[k], self._level_chunks[k], self._shapes[k]
        seen: set[tuple[int, ...]] = set()
        out: list[Region] = []
        for p in atom.pieces:
            lo = [-(-o // fi) for o, fi in zip(p.offset, f, strict=True)]
            hi = [-(-(o + s) // fi) for o, s, fi in zip(p.offset, p.mask.shape, f, strict=True)]
            if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
                continue  # no sample of this level falls in the piece
            ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(lo, hi, ck, strict=True)]
            for cz in ranges[0]:
                for cy in ranges[1]:
                    for cx in ranges[2]:
                        key = (cz, cy, cx)
                        if key in seen:
                            continue
                        seen.add(key)
                        out.append(
                            tuple(
                                slice(c * n, min((c + 1) * n, s))
                                for c, n, s in zip(key, ck, shape, strict=True)
                            )
                        )
        return tuple(out)

    def _announce_all(self, forward: bool) -> None:
        boxes = tuple((tuple(slice(0, s) for s in shape),) for shape in self._shapes)
        self.changed.emit(LabelChange(self._name, frozenset(), boxes, forward))

    def __repr__(self) -> str:
        return f"SharedLabels({self._name!r}, {str(self.root) if self.root else None!r})"


def label_images_of(info: Mapping[str, Any]) -> dict[str, SharedLabels]:
    """The session's label images from its info (``labels`` and ``label_copies``)."""
    copies = info.get("label_copies")
    copies = copies if isinstance(copies, Mapping) else {}
    out: dict[str, SharedLabels] = {}
    for name in info.get("labels") or []:
        name = str(name)
        path = copies.get(name)
        if isinstance(path, str) and path:
            out[name] = SharedLabels(name, path)
        else:
            out[name] = SharedLabels(
                name,
                None,
                f"label image {name!r} has no working copy in this session (the server could "
                "not make one); label edits are refused",
            )
    return out
