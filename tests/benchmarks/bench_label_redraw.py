"""Merge of 1,000 ids and split of a 10^6-voxel object at the desk: time to applied and to
the first redrawn frame of every view (issue 17).

Run: ``.venv/bin/python tests/benchmarks/bench_label_redraw.py [--size 256] [--repeats 3]``
(Qt offscreen unless ``QT_QPA_PLATFORM`` is set). The label image of
``bench_label_edits.py --objects``: ``size``³ uint32 of 16³ cubes (4,096 objects at 256)
plus one cube of ``100 * size / 256`` voxels a side (the 10^6-voxel object at 256), 64³
chunks, 10 nm voxels, opened in a project in the desktop window at its default layout
(three slice views and the 3D view, which draws the labels as streamed surfaces).
The crosshair is put inside the big cube, so every slice view crosses it.

Each repeat, through the registered actions a user triggers (real key events):

- merge: 1,000 small cubes selected (``labels.select``'s selection), Shift+M
  (``labels.merge``: an id mapping change, ``docs/design/0005``), then Ctrl+Z;
- split: two seeds on the big cube's opposite faces (``labels.split_seed``; the preview is
  made then, not timed), Ctrl+Return (``labels.split``: every level written), then Ctrl+Z.

Timed from the key press: ``applied`` (the history's ``changed`` event: applied and
journaled), ``action returned`` (the key's handler done, the synchronous listeners
included), ``slices painted`` (the last of the three slice views' viewport paint events
after a fresh read of every labels item it shows (base and detail) landed) and ``3D
painted`` (the 3D widget's paint event after a frame handed over when the streamed
surfaces had no edit pending (every drawn brick re-meshed since the edit) and the drawn
triangles showed the change: none of a merged-away id, the split's new id present; the
state is checked when the frame is handed over, so it may be one frame newer than that
frame).

What the slices showed is then checked against NumPy: for the merge, each view's fresh
slice equals ``np.where(np.isin(before, ids), into, before)`` of the slice it showed
before; for the split, voxels off the object are unchanged, the object's are the old id
or the new one, and the XZ view (through both seeds) shows the new id.

References in the same run and window: ``slice step`` (the crosshair moved one voxel in
z: the XY view reads and paints one new slice) and ``plain re-read`` (no edit: every
slice view asked to read its slices again and the 3D view told that every brick changed,
``Labels.notify_edited`` over the whole extent: what a merge costs the views if nothing
else). Medians over the repeats and their ratios to the plain re-read are printed, with
the meshes the 3D view built meanwhile and the load average; per trial figures go to
stderr as they come. ``--profile``: cProfile of the merge key's handler (GUI thread: the
apply and its synchronous listeners) in the first repeat.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

from PySide6 import QtCore, QtWidgets  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

Qt = QtCore.Qt
LAYER = "cells"
VOXEL_UM = 0.01
TIMEOUT_S = 900.0
REF = "plain re-read (no edit)"


def make_store(folder: Path, n: int) -> tuple[Path, np.ndarray, int, tuple[int, int]]:
    """The image store (zeros) with label image ``cells``: 16³ cubes and one big cube.
    Returns the store, the labels, the big cube's id and its (start, stop) on every axis."""
    from analysis.io import write_labels, write_ngff

    c = 16
    g = n // c
    ids = (np.arange(g**3, dtype=np.uint32) + 1).reshape(g, g, g)
    lab = np.repeat(np.repeat(np.repeat(ids, c, 0), c, 1), c, 2)
    big = int(lab.max()) + 1
    lo, side = round(20 * n / 256), round(100 * n / 256)
    lab[lo : lo + side, lo : lo + side, lo : lo + side] = big
    store = folder / "objects.zarr"
    folder.mkdir(parents=True, exist_ok=True)
    write_ngff(np.zeros(lab.shape, np.uint8), store, scale_um=(VOXEL_UM,) * 3, chunks=(64,) * 3)
    write_labels(store, LAYER, lab)
    return store, lab, big, (lo, lo + side)


def _wait_until(cond: Any, timeout_s: float = TIMEOUT_S) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        QTest.qWait(1)


class Probe(QtCore.QObject):
    """Paint events of the slice views' viewports and of the 3D widget, timed against a
    trial's start, with the checks of what a painted frame shows."""

    def __init__(self, win: Any) -> None:
        super().__init__()
        self.win = win
        self.viewports = {v.viewport(): p for p, v in win.slices.items()}
        for vp in self.viewports:
            vp.installEventFilter(self)
        win.render_view.installEventFilter(self)
        win.render_view.frame_shown.connect(self._on_frame)
        win.session.history.changed.connect(self._on_history)
        self.active = False

    def start(self, planes: list[str], check3d: Any) -> None:
        """A trial: ``planes`` must paint fresh slices, ``check3d()`` (None: no 3D) must
        hold for a frame handed to the 3D widget."""
        self.pre = {p: self._results(p) for p in self.win.slices}
        self.planes = planes
        self.check3d = check3d
        self.slice_t: dict[str, float] = {}
        self.fresh: dict[str, dict[str, Any]] = {}
        self.frame_ok = False
        self.t3d: float | None = None
        self.t_applied: float | None = None
        self.t0 = time.perf_counter()
        self.active = True

    def done(self) -> bool:
        return len(self.slice_t) == len(self.planes) and (
            self.check3d is None or self.t3d is not None
        )

    def _results(self, plane: str) -> dict[str, Any]:
        view = self.win.slices[plane]
        out = {}
        for which in ("base", "detail"):
            res = view.shown(LAYER, which)
            if res is not None:
                out[which] = res
        return out

    def _on_history(self, op: str, _cmd: object) -> None:
        if self.active and op == "apply" and self.t_applied is None:
            self.t_applied = time.perf_counter() - self.t0

    def _on_frame(self, _seconds: float) -> None:
        if self.active and self.check3d is not None and not self.frame_ok:
            self.frame_ok = bool(self.check3d())

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:
        if not self.active or ev.type() != QtCore.QEvent.Type.Paint:
            return False
        now = time.perf_counter() - self.t0
        plane = self.viewports.get(obj)  # type: ignore[call-overload]
        if plane is not None and plane in self.planes and plane not in self.slice_t:
            got, pre = self._results(plane), self.pre[plane]
            if pre and all(w in got and got[w] is not r for w, r in pre.items()):
                self.slice_t[plane] = now
                self.fresh[plane] = got
        elif obj is self.win.render_view and self.frame_ok and self.t3d is None:
            self.t3d = now
        return False


def _surfaces(win: Any) -> Any:
    ctl = win.render_view.render_thread.streaming
    return None if ctl is None else ctl.adapters.get(LAYER)


def _drawn_ids(win: Any) -> np.ndarray:
    adapter = _surfaces(win)
    with win.render_view.render_thread.lock:
        parts = [ids for *_, ids in adapter.drawn_triangles()]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _no_edit_pending(win: Any) -> bool:
    adapter = _surfaces(win)
    with win.render_view.render_thread.lock:
        return not adapter.edits_pending


def _settled(win: Any) -> bool:
    rt = win.render_view.render_thread
    slices = win.slice_loader.idle() and not any(v.busy for v in win.slices.values())
    return bool(slices and _no_edit_pending(win) and rt.wait_idle(0.001))


def settle(win: Any) -> None:
    _wait_until(lambda: _settled(win))
    QTest.qWait(50)
    _wait_until(lambda: _settled(win))


def whole(win: Any) -> tuple[tuple[tuple[slice, ...], ...], ...]:
    src = win.session.scene.layers.get(LAYER).data
    return tuple((tuple(slice(0, int(k)) for k in lev.shape[-3:]),) for lev in src.levels)


def trial(
    name: str, win: Any, probe: Probe, planes: list[str], check3d: Any, act: Any
) -> dict[str, float]:
    adapter = _surfaces(win)
    built = adapter.built
    probe.start(planes, check3d)
    act()
    returned = time.perf_counter() - probe.t0
    _wait_until(probe.done)
    probe.active = False
    out = {"returned": returned, "slices": max(probe.slice_t.values())}
    if _surfaces(win) is adapter:  # (else the layer's surfaces were made anew meanwhile)
        out["meshes"] = float(adapter.built - built)
    if probe.t_applied is not None:
        out["applied"] = probe.t_applied
    if probe.t3d is not None:
        out["3d"] = probe.t3d
    print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="edge of the label image (voxels)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--merge", type=int, default=1000, help="ids merged")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the merge key's handler (GUI thread) in the first repeat",
    )
    args = ap.parse_args(argv)
    from viewer.actions import Pick
    from viewer.qt import ProofreadingSession, QtViewer

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    tmp = Path(tempfile.mkdtemp())
    store, lab, big, (lo, hi) = make_store(tmp / "data", args.size)
    present = np.unique(lab)
    merge_ids = [int(i) for i in present[(present > 0) & (present != big)][::3][: args.merge]]
    into = min(merge_ids)
    away = np.asarray(sorted(set(merge_ids) - {into}), np.int64)
    s = ProofreadingSession.open(str(store), [LAYER], project=str(tmp / "proj"))
    t_open = time.perf_counter()
    win = QtViewer(s, size=(1400, 900))
    win.show()
    QTest.qWaitForWindowExposed(win)
    rt = win.render_view.render_thread
    _wait_until(lambda: rt.frames >= 1)
    mid = (lo + hi) // 2
    s.set_cursor((mid * VOXEL_UM, mid * VOXEL_UM, mid * VOXEL_UM))
    win.activateWindow()
    QTest.keyClick(win, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)  # the working copy
    settle(win)
    print(f"  window open, every view drawn: {time.perf_counter() - t_open:.1f} s", file=sys.stderr)
    if _surfaces(win) is None or not hasattr(_surfaces(win), "drawn_triangles"):
        print("the 3D view does not draw the labels as streamed surfaces", file=sys.stderr)
        return 1
    probe = Probe(win)
    planes = list(win.slices)
    seeds = [(lo, mid, mid), (hi - 1, mid, mid)]
    rows: dict[str, list[dict[str, float]]] = {}
    checks: list[str] = []

    def merged_3d() -> bool:
        if not _no_edit_pending(win):
            return False
        ids = _drawn_ids(win)
        return bool(into in ids and not np.isin(away, ids).any())

    def plain_3d() -> bool:
        return _no_edit_pending(win)

    for rep in range(args.repeats):
        # reference 1: the slice one voxel on (XY reads and paints one slice)
        c = np.asarray(s.cursor, dtype=float)
        step = 1 if rep % 2 == 0 else -1
        rows.setdefault("slice step (XY)", []).append(
            trial(
                "slice step (XY)",
                win,
                probe,
                ["xy"],
                None,
                lambda c=c, step=step: s.set_cursor((c[0] + step * VOXEL_UM, c[1], c[2])),
            )
        )
        settle(win)

        # reference 2: every view reads everything again, no edit
        def reread() -> None:
            boxes = whole(win)
            for view in win.slices.values():
                view.reload(LAYER, boxes)
            s.scene.layers.get(LAYER).notify_edited([], boxes)

        rows.setdefault(REF, []).append(trial(REF, win, probe, planes, plain_3d, reread))
        settle(win)

        # merge of 1,000 ids: Shift+M on the selection
        s.select_labels(LAYER, merge_ids)
        settle(win)
        merge_name = f"merge {len(merge_ids):,} ids"

        def merge_key(profile: bool = args.profile and rep == 0) -> None:
            prof = cProfile.Profile() if profile else None
            if prof is not None:
                prof.enable()
            QTest.keyClick(win, Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
            if prof is not None:
                prof.disable()
                pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)

        r = trial(merge_name, win, probe, planes, merged_3d, merge_key)
        rows.setdefault(merge_name, []).append(r)
        for plane, got in probe.fresh.items():
            for which, res in got.items():
                before = probe.pre[plane][which]
                if res.request.what != before.request.what:
                    continue  # another slice or level: not comparable
                want = np.where(np.isin(before.array, merge_ids), into, before.array)
                if not np.array_equal(np.asarray(res.array), want):
                    checks.append(f"merge: {plane} {which} differs from NumPy's merge")
        settle(win)
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        settle(win)

        # split of the big cube by two seeds: seeds, then Ctrl+Return
        s.select_labels(LAYER, [])
        for seed in seeds:
            pt = tuple(v * VOXEL_UM for v in seed)
            s.run("labels.split_seed", Pick(point_um=pt, layer=LAYER, label=big))
        settle(win)
        new_id: list[int] = []

        def split_3d(new_id: list[int] = new_id) -> bool:
            if not new_id:
                ids = [int(i) for i in s.scene.selection.label_ids if int(i) != big]
                if not ids:
                    return False
                new_id.append(ids[0])
            return bool(_no_edit_pending(win) and new_id[0] in _drawn_ids(win))

        split_name = "split 10^6 voxels" if args.size == 256 else "split big cube"
        r = trial(
            split_name,
            win,
            probe,
            planes,
            split_3d,
            lambda: QTest.keyClick(win, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier),
        )
        rows.setdefault(split_name, []).append(r)
        for plane, got in probe.fresh.items():
            for which, res in got.items():
                before = probe.pre[plane][which]
                if res.request.what != before.request.what:
                    continue
                a, b = np.asarray(res.array), np.asarray(before.array)
                obj = b == big
                if not (np.array_equal(a[~obj], b[~obj]) and np.isin(a[obj], [big, *new_id]).all()):
                    checks.append(f"split: {plane} {which} changed off the object")
                if plane == "xz" and which == "base" and new_id and new_id[0] not in a:
                    checks.append("split: the XZ view (through both seeds) lacks the new id")
        settle(win)
        QTest.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        settle(win)

    load = os.getloadavg()
    ref = float(np.median([r["3d"] for r in rows[REF]]))
    ref_s = float(np.median([r["slices"] for r in rows[REF]]))
    print(
        f"{args.size}³ labels, {len(present) - 1} objects, {args.repeats} repeats, "
        f"window 1400x900 (medians, ms; ratio: to the plain re-read's)"
    )
    print(
        f"{'':28s} {'applied':>9s} {'returned':>9s} {'slices':>9s} {'3D':>9s}"
        f" {'slices/ref':>10s} {'3D/ref':>8s} {'meshes':>7s}"
    )
    for name, rs in rows.items():

        def med(k: str, rs: list[dict[str, float]] = rs) -> float | None:
            v = [r[k] for r in rs if k in r]
            return float(np.median(v)) if v else None

        cells = []
        for k in ("applied", "returned", "slices", "3d"):  # seconds -> ms
            m = med(k)
            cells.append(f"{1000 * m:9.0f}" if m is not None else f"{'-':>9s}")
        sl, d3 = med("slices"), med("3d")
        cells.append(f"{sl / ref_s:10.2f}" if sl is not None else f"{'-':>10s}")
        cells.append(f"{d3 / ref:8.2f}" if d3 is not None else f"{'-':>8s}")
        m = med("meshes")
        cells.append(f"{m:7.0f}" if m is not None else f"{'-':>7s}")
        print(f"{name:28s} " + " ".join(cells))
    print(f"load average: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    for c in checks:
        print("CHECK FAILED: " + c)
    s.unsaved_edits = 0
    win.close()
    app.processEvents()
    return 1 if checks else 0


if __name__ == "__main__":
    raise SystemExit(main())
