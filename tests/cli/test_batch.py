"""``vrscope batch`` against the single-machine commands (the reference the issue names):
``vrscope profile`` per store and ``vrscope measure`` on the whole label image, with a
LocalCluster of two workers and with an external scheduler whose worker is SIGKILLed
mid-run; data faults reported per unit; ``--resume`` recomputing only what is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.io import open_volume, write_fibsem_sample, write_labels, write_ngff
from analysis.synthetic import fibsem_cell
from vrscope.cli import main

SEEDS = (1, 2, 3)
TABLES = (
    "volumes", "mitochondria", "pores", "correlations", "density_tests", "nucleus_parts",
)  # fmt: skip


def _run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _results(summary: dict) -> dict:
    """summary.json without the step timings (wall-clock, not results)."""
    return {k: v for k, v in summary.items() if k != "timings_s"}


def _assert_same_report(got: Path, ref: Path) -> None:
    got_summary = json.loads((got / "summary.json").read_text())
    ref_summary = json.loads((ref / "summary.json").read_text())
    assert _results(got_summary) == _results(ref_summary)  # every number, exactly
    for name in TABLES:
        assert (got / f"{name}.csv").read_bytes() == (ref / f"{name}.csv").read_bytes(), name
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in ref.iterdir())


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> tuple[list[Path], dict[str, Path]]:
    """Three FIB-SEM samples and their ``vrscope profile`` reports (the reference)."""
    root = tmp_path_factory.mktemp("cells")
    stores, refs = [], {}
    for seed in SEEDS:
        store = root / f"cell{seed}.zarr"
        write_fibsem_sample(fibsem_cell(96, seed=seed), store, version="0.4", chunks=(32, 32, 32))
        stores.append(store)
        refs[f"cell{seed}"] = root / f"ref{seed}"
        assert main(["profile", str(store), "--out", str(refs[f"cell{seed}"])]) == 0
    return stores, refs


@pytest.fixture(scope="module")
def batch_out(cells, tmp_path_factory) -> Path:
    stores, _ = cells
    out = tmp_path_factory.mktemp("batch") / "reports"
    assert main(["batch", "profile", *map(str, stores), "--out", str(out), "--workers", "2"]) == 0
    return out


def test_batch_profile_equals_profile_per_store(cells, batch_out):
    _, refs = cells
    assert sorted(p.name for p in batch_out.iterdir()) == [*sorted(refs), "summary.csv"]
    for name, ref in refs.items():
        _assert_same_report(batch_out / name, ref)
    table = pd.read_csv(batch_out / "summary.csv").set_index("name")
    assert (table["status"] == "ok").all()
    for name, ref in refs.items():
        summary = json.loads((ref / "summary.json").read_text())
        assert table.at[name, "volumes_um3.cell"] == summary["volumes_um3"]["cell"]
        assert table.at[name, "counts.mitochondria"] == summary["counts"]["mitochondria"]


def test_profile_label_name_options(cells, tmp_path, capsys):
    """Label images under other names: --cell/--nucleus/--mitochondria/--pores find them, in
    vrscope profile and vrscope batch profile alike, with the sample's numbers."""
    stores, refs = cells
    src = open_volume(str(stores[0]))  # cell1, copied with other label names
    store = tmp_path / "renamed.zarr"
    write_ngff(src, store, version="0.4", chunks=(32, 32, 32))
    names = {"cell": "cell_seg", "nucleus": "nuc", "mitochondria": "mito", "nuclear_pores": "npc"}
    for role, name in names.items():
        write_labels(store, name, src.open_labels(role).read(0), chunks=(32, 32, 32))
    opts = ["--cell", "cell_seg", "--nucleus", "nuc", "--mitochondria", "mito", "--pores", "npc"]
    code, _, err = _run(capsys, "profile", store, "--out", tmp_path / "one", *opts)
    assert code == 0, err
    _assert_same_report(tmp_path / "one", refs["cell1"])
    code, _, err = _run(capsys, "batch", "profile", store, "--out", tmp_path / "b", "--workers", 1, *opts)  # fmt: skip
    assert code == 0, err
    _assert_same_report(tmp_path / "b" / "renamed", refs["cell1"])
    # Without the options the default names are missing: one line, exit 2.
    code, _, err = _run(capsys, "profile", store, "--out", tmp_path / "two")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cell" in err
    code, _, err = _run(capsys, "profile", store, "--out", tmp_path / "two", *opts, "--cell", "nuc")
    assert code == 2 and "four different" in err


def _corrupt_one_chunk(store: Path, label: str) -> Path:
    """Overwrite one chunk file of a label image's level 0 with bytes no codec decodes."""
    level0 = store / "labels" / label / "s0"
    files = [p for p in level0.rglob("*") if p.is_file() and not p.name.startswith(".")]
    chunk = max(files, key=lambda p: p.stat().st_size)  # one with objects in it
    chunk.write_bytes(b"this is not a compressed chunk" * 4)
    return chunk


def test_corrupt_store_among_three_is_reported_and_others_finish(cells, tmp_path, capsys):
    stores, refs = cells
    copies = []
    for store in stores:
        copies.append(tmp_path / store.name)
        shutil.copytree(store, copies[-1])
    _corrupt_one_chunk(copies[1], "mitochondria")
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "batch", "profile", *copies, "--out", out, "--workers", 2)
    assert code == 1
    assert "2 profiled, 0 already done, 1 failed" in stdout
    assert "1 store(s) failed" in err and "cell2:" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["cell1", "cell3", "summary.csv"]
    _assert_same_report(out / "cell1", refs["cell1"])
    _assert_same_report(out / "cell3", refs["cell3"])
    table = pd.read_csv(out / "summary.csv").set_index("name")
    assert table["status"].to_dict() == {"cell1": "ok", "cell2": "failed", "cell3": "ok"}
    assert "cannot read" in table.at["cell2", "error"] or "Chunk" in table.at["cell2", "error"]


def test_resume_recomputes_only_what_is_missing(cells, batch_out, tmp_path, capsys):
    stores, refs = cells
    out = tmp_path / "reports"
    shutil.copytree(batch_out, out)
    shutil.rmtree(out / "cell2")  # never finished ...
    (out / ".cell2.tmp-0123456789ab").mkdir()  # ... its worker died while writing
    (out / ".cell2.tmp-0123456789ab" / "volumes.csv").write_text("half")
    kept = {n: (out / n / "summary.json").stat().st_mtime_ns for n in ("cell1", "cell3")}
    code, stdout, err = _run(
        capsys, "batch", "profile", *stores, "--out", out, "--workers", 1, "--resume"
    )
    assert code == 0, err
    assert "1 profiled, 2 already done, 0 failed" in stdout
    assert {n: (out / n / "summary.json").stat().st_mtime_ns for n in kept} == kept
    assert not any(p.name.startswith(".") for p in out.iterdir())
    _assert_same_report(out / "cell2", refs["cell2"])
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "summary.csv"), pd.read_csv(batch_out / "summary.csv")
    )


def test_batch_measure_equals_measure_files(cells, tmp_path, capsys):
    """Blocks of 32³ on a 96³ cell: the cell, the nucleus and many mitochondria cross
    blocks; the CSV is the same file as vrscope measure's."""
    stores, _ = cells
    for labels, dashboard in (("mitochondria", ["--dashboard"]), ("cell", [])):
        ref = tmp_path / f"{labels}_ref.csv"
        assert _run(capsys, "measure", stores[0], "--labels", labels, "--out", ref)[0] == 0
        got = tmp_path / f"{labels}_batch.csv"
        code, out, err = _run(
            capsys, "batch", "measure", stores[0], "--labels", labels, "--out", got,
            "--workers", 2, "--block", 32, 32, 32, *dashboard,
        )  # fmt: skip
        assert code == 0, err
        assert "27 of 27 blocks computed" in out
        assert ("dashboard http" in out) == bool(dashboard)  # served only when asked for
        assert got.read_bytes() == ref.read_bytes()
        assert not (tmp_path / f"{labels}_batch.csv.parts").exists()


def test_batch_measure_failed_block_then_resume(cells, tmp_path, capsys):
    stores, _ = cells
    store = tmp_path / "cell.zarr"
    shutil.copytree(stores[0], store)
    chunk = _corrupt_one_chunk(store, "mitochondria")
    good = (stores[0] / chunk.relative_to(store)).read_bytes()
    out = tmp_path / "mito.parquet"
    args = ["batch", "measure", store, "--labels", "mitochondria", "--out", out, "--workers", 2]
    code, _, err = _run(capsys, *args, "--block", 32, 32, 32)
    assert code == 1 and "1 unit(s) failed" in err and "Traceback" not in err
    assert not out.exists()
    parts = tmp_path / "mito.parquet.parts"
    assert len(list(parts.glob("*.parquet"))) == 26
    chunk.write_bytes(good)  # repaired: --resume computes the one missing block
    # ... with the blocks of the first run, though one worker (a thread) would pick others.
    code, stdout, err = _run(capsys, *args[:-1], 1, "--resume")
    assert code == 0, err
    assert "(1 of 27 blocks computed)" in stdout
    ref = tmp_path / "ref.parquet"
    assert _run(capsys, "measure", stores[0], "--labels", "mitochondria", "--out", ref)[0] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(ref), check_exact=True)
    # --resume with other settings refuses to mix blocks: one line, exit 2.
    (parts).mkdir()
    (parts / "job.json").write_text(json.dumps({"store": "elsewhere"}))
    code, _, err = _run(capsys, *args, "--block", 32, 32, 32, "--resume")
    assert code == 2 and "another run" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workers", "0"], ["--workers", "at least 1"]),
        (["--block", "0", "8", "8"], ["--block"]),
    ],
)
def test_batch_measure_bad_input_one_line(cells, tmp_path, capsys, args, words):
    stores, _ = cells
    code, _, err = _run(
        capsys,
        "batch",
        "measure",
        stores[0],
        "--labels",
        "cell",
        "--out",
        tmp_path / "t.csv",
        *args,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err


def test_batch_profile_bad_input_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "batch", "profile", tmp_path / "nope.zarr", "--out", tmp_path / "o")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


# -- a real cluster on loopback: a scheduler and two worker processes; one is SIGKILLed --


def _dask(*args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("dask")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def loopback_cluster(tmp_path):
    from distributed import Client

    info = tmp_path / "scheduler.json"
    procs = [_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                   "--scheduler-file", str(info))]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not info.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written whole, but give it a moment anyway
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(_dask("worker", address, "--nthreads", "1", "--no-nanny",
                               "--no-dashboard", "--host", "127.0.0.1"))  # fmt: skip
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            pids = client.run(os.getpid)  # worker address -> process id (no nanny: the worker)
            yield address, client, pids
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_killed_worker_does_not_fail_the_run(cells, loopback_cluster, tmp_path):
    stores, refs = cells
    address, client, pids = loopback_cluster
    out = tmp_path / "reports"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "vrscope", "batch", "profile", *map(str, stores),
           "--out", str(out), "--scheduler", address]  # fmt: skip
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        killed = None
        deadline = time.monotonic() + 120
        while killed is None and run.poll() is None and time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed = busy[0]
            else:
                time.sleep(0.02)
        stdout, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert killed is not None, "no task ran on a worker before the command ended"
    assert run.returncode == 0, stderr[-3000:]
    assert "3 profiled, 0 already done, 0 failed" in stdout
    assert list(client.scheduler_info()["workers"]) == [w for w in pids if w != killed]
    for name, ref in refs.items():
        _assert_same_report(out / name, ref)
    assert not any(p.name.startswith(".") for p in out.iterdir())
