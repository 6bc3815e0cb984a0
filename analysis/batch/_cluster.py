"""The dask.distributed side of a batch run: a client, units as tasks, per-unit outcomes."""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from analysis.errors import ParameterError, VrscopeError

__all__ = ["UnitResult", "cluster_client", "dashboard_link", "run_units", "worker_memory"]

log = logging.getLogger(__name__)

# A task that raises is retried this many times on another worker (an OSError of a flaky
# network file system, say). A worker that dies is a different thing: the scheduler moves
# its tasks to the others by itself (up to ``distributed.scheduler.allowed-failures``).
RETRIES = 2


@dataclass(frozen=True)
class UnitResult:
    """What became of one unit (a store, a block, a group of objects).

    Attributes
    ----------
    unit : str
        Its name (the store's name, the block's position).
    ok : bool
        False when it failed; ``error`` says why in one line.
    value : object
        What the unit's function returned (None when it failed or was skipped).
    skipped : bool
        True when ``--resume`` found it done before.
    """

    unit: str
    ok: bool
    value: Any = None
    error: str = ""
    skipped: bool = False


class _UnitFailed:
    """A data error caught on the worker (kept apart from values, not retried)."""

    def __init__(self, message: str) -> None:
        self.message = message


def _guarded(func: Callable[..., Any], *args: Any) -> Any:
    """Run ``func`` on a worker; a data error becomes a :class:`_UnitFailed`, not a retry.

    Corrupt chunks, missing label images and bad metadata raise :class:`VrscopeError`
    (or zarr/numcodecs/OS errors from a damaged store): retrying would fail again, so the
    unit is reported failed and the others go on.
    """
    try:
        return func(*args)
    except (VrscopeError, OSError, ValueError, KeyError) as exc:
        log.debug("unit failed: %s", traceback.format_exc())
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _UnitFailed(f"{type(exc).__name__}: {msg}".rstrip(": "))


# dask's idle costs, cut for the clusters a command starts (measured on a 1024³ batch
# measure, docs/benchmarks.md): every server checks its event loop every 20 ms
# (``admin.tick``), samples system counters every 500 ms, each worker samples every
# thread's stack every 10 ms for the dashboard's profile page, and each nanny and worker
# polls its process's memory every 100 ms. Longer intervals change no result: the ticks
# only warn about a blocked loop, the memory limit is still enforced (twice a second).
_QUIET_CONFIG: dict[str, Any] = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.tick.limit": "10s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "500ms",
}
# The statistical profiler feeds only the dashboard's profile page.
_NO_PROFILE: dict[str, Any] = {"distributed.worker.profile.enabled": False}


@contextmanager
def cluster_client(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    memory_limit: str | None = None,
    processes: bool = True,
    dashboard: str | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client``: on the scheduler at ``scheduler`` (an existing cluster,
    ``tcp://host:port``), or on a LocalCluster of ``workers`` single-threaded workers
    (default: one per core) started here and stopped on exit.

    Parameters
    ----------
    scheduler : str, optional
        Scheduler address. dask-jobqueue, dask-kubernetes or Coiled clusters expose one.
    workers : int, optional
        Workers of the LocalCluster (ignored with ``scheduler``).
    memory_limit : str, optional
        Memory limit per LocalCluster worker (``"2GB"``); default: dask's (RAM / workers).
    processes : bool, default: True
        Worker processes (each under a nanny that restarts it when it dies or exceeds its
        memory limit). False runs the workers as threads of this process: no process to
        start and no second import of the analysis stack, but a worker over its memory
        limit is only paused, not restarted, and a crash takes the command with it.
    dashboard : str, optional
        Address of the LocalCluster's dashboard (``":8787"``, ``":0"`` for any port).
        Default: none, and no statistical profiler on the workers (it samples every
        thread's stack every 10 ms to feed the dashboard's profile page).
    """
    import dask.config
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise ParameterError(f"cannot connect to scheduler {scheduler}: {exc}") from exc
        try:
            yield client
        finally:
            client.close()  # type: ignore[no-untyped-call]
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ParameterError(f"--workers must be at least 1, got {n}")
    config = dict(_QUIET_CONFIG) if dashboard else {**_QUIET_CONFIG, **_NO_PROFILE}
    # The settings must hold while the servers run: their periodic callbacks read them at
    # start, and a nanny hands the configuration to the worker process it starts.
    with dask.config.set(config):
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n,
            threads_per_worker=1,
            processes=processes,
            # The scheduler always serves HTTP (health, metrics); at a free port unless a
            # dashboard address is given, so that runs side by side do not collide.
            dashboard_address=dashboard or ":0",
            scheduler_kwargs={"dashboard": bool(dashboard)},
            memory_limit=memory_limit or "auto",
        )
        try:
            with Client(cluster) as client:  # type: ignore[no-untyped-call]
                yield client
        finally:
            cluster.close()


def worker_memory(client: Any) -> int | None:
    """The smallest memory limit of the cluster's workers in bytes (None: no limit known)."""
    try:
        workers = client.scheduler_info().get("workers", {}).values()
    except Exception:  # an old or odd scheduler: no limit to go by
        return None
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    limits = [m for m in limits if m > 0]
    return min(limits) if limits else None


def dashboard_link(client: Any) -> str | None:
    """The dashboard's address, or None when the scheduler serves none (no bokeh)."""
    try:
        services = client.scheduler_info().get("services", {})
    except Exception:  # an old or odd scheduler: no dashboard to tell about
        return None
    if "dashboard" not in services:
        return None
    return str(client.dashboard_link)


def run_units(
    client: Any,
    func: Callable[..., Any],
    units: Mapping[str, Sequence[Any]],
    *,
    desc: str,
    progress: bool = False,
) -> list[UnitResult]:
    """Run ``func(*args)`` for every unit as one task each; returns one outcome per unit.

    A unit whose function raises a data error, or whose task the cluster gave up on
    (a worker died again and again), is a failed :class:`UnitResult`; the others finish.
    Outcomes come in the order of ``units``.
    """
    from distributed import as_completed

    if not units:
        return []
    futures = {}
    for name, args in units.items():
        key = f"{desc}-{name}-{uuid.uuid4().hex[:8]}"
        fut = client.submit(_guarded, func, *args, retries=RETRIES, key=key)
        futures[fut] = name
    outcomes: dict[str, UnitResult] = {}
    bar = tqdm(total=len(futures), desc=desc, unit="unit", disable=not progress)
    try:
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            name = futures[fut]
            try:
                value = fut.result()
            except Exception as exc:  # the task itself failed (KilledWorker, a bug, ...)
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                outcomes[name] = UnitResult(
                    name, False, error=f"{type(exc).__name__}: {msg}".rstrip(": ")
                )
            else:
                if isinstance(value, _UnitFailed):
                    outcomes[name] = UnitResult(name, False, error=value.message)
                else:
                    outcomes[name] = UnitResult(name, True, value=value)
            fut.release()
            bar.update(1)
    finally:
        bar.close()
    return [outcomes[name] for name in units]
