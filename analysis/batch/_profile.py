"""Batch profile: one task per store, one report folder per store, a combined table."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.batch._cluster import UnitResult, run_units
from analysis.errors import ChunkError, FormatError, ParameterError
from analysis.volume import VolumeSource

__all__ = [
    "ProfileOptions",
    "batch_profile",
    "profile_store",
    "read_zyx",
    "run_per_store",
    "store_unit_name",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileOptions:
    """The settings of ``vrscope profile``, per store.

    Attributes
    ----------
    label_names : mapping role -> label image name
        Roles are :data:`analysis.report.PROFILE_LABELS` (``cell``, ``nucleus``,
        ``mitochondria``, ``nuclear_pores``); the names are the store's.
    k : int, default: 8
    bandwidth_um : float, default: 0.1
    image : bool, default: True
        Read the store's image for the intensity columns.
    allow_missing : bool, default: False
        A damaged chunk (corrupt, a folder in place of its file, unreadable) reads as the
        fill value and is listed in ``unreadable_chunks.json`` instead of failing the
        store (``--allow-missing``).
    """

    label_names: Mapping[str, str]
    k: int = 8
    bandwidth_um: float = 0.1
    image: bool = True
    allow_missing: bool = False


UNREADABLE_FILE = "unreadable_chunks.json"
"""In a store's result folder of a batch run that was allowed to read damaged chunks as
empty: the list of those chunks' errors (absent when there were none)."""


def read_zyx(
    source: VolumeSource, level: int, what: str, unreadable: list[ChunkError] | None = None
) -> npt.NDArray[np.generic]:
    """Read a whole level as a (z, y, x) array; singleton t/c axes are dropped.

    Every chunk of an OME-Zarr level is checked (``ZarrVolumeSource.read_level``): a
    damaged one raises its :class:`ChunkError` (naming the store, level and chunk) unless
    ``unreadable`` is a list, where it is appended (it reads as the fill value).
    """
    from analysis.io import ZarrVolumeSource

    if not 0 <= level < len(source.levels):
        raise ParameterError(f"{what} has no level {level} (it has {len(source.levels)})")
    if isinstance(source, ZarrVolumeSource):
        data, bad = source.read_level(level, allow_missing=unreadable is not None)
        if unreadable is not None:
            unreadable.extend(bad)
    else:
        data = np.asarray(source.read(level))
    if any(n != 1 for n in data.shape[:-3]):
        raise ParameterError(
            f"{what} has axes {''.join(source.axes)} with shape {data.shape}; "
            "only single-time-point, single-channel volumes can be measured"
        )
    return data.reshape(data.shape[-3:])


def store_unit_name(store: str) -> str:
    """The folder name of a store's results: its last path part without ``.zarr``."""
    name = store.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    if not name or name.startswith("."):
        raise ParameterError(f"cannot name the results of store {store!r}")
    return name


def run_per_store(
    client: Any,
    stores: Sequence[str],
    out_dir: str | os.PathLike[str],
    func: Callable[[str, str, Any], Any],
    options: Any,
    *,
    done_file: str,
    row: Callable[[Any], Mapping[str, Any]],
    desc: str,
    resume: bool = False,
    progress: bool = False,
) -> tuple[list[UnitResult], pd.DataFrame]:
    """The many-stores driver of the ``batch`` commands: one task per store.

    ``func(store, out_dir/<store name>, options)`` writes that store's folder (atomically)
    and returns its JSON-able summary, which ``done_file`` in the folder also holds: with
    ``resume`` a store whose folder has it is skipped. ``out_dir/summary.csv`` gets one
    row per store: ``store``, ``name``, ``status``, ``error``, ``unreadable_chunks`` (how
    many damaged chunks a store allowed to have them read as empty: its folder's
    :data:`UNREADABLE_FILE`, which ``func`` writes) and ``row(summary)`` for the stores
    that succeeded. Returns the outcomes (in the order of ``stores``; a succeeded
    store's ``value`` gets ``unreadable_chunks``, the list of those chunks' errors) and
    that table.
    """
    from analysis.io import read_json, remove_temporaries, reset_folder, write_table

    out = reset_folder(out_dir, keep=True)
    units: dict[str, str] = {}
    for store in stores:
        name = store_unit_name(store)
        if name in units:
            raise ParameterError(f"two stores give the result folder name {name!r}")
        units[name] = store if "://" in store else str(Path(store).expanduser().resolve())
    remove_temporaries(out)
    outcomes: dict[str, UnitResult] = {}
    todo: dict[str, tuple[Any, ...]] = {}
    for name, store in units.items():
        done = read_json(out / name / done_file) if resume else None
        if done is not None:
            outcomes[name] = UnitResult(name, True, value=done, skipped=True)
        else:
            todo[name] = (store, str(out / name), options)
    log.info("%s: %d stores, %d to do", desc, len(units), len(todo))
    for result in run_units(client, func, todo, desc=desc, progress=progress):
        outcomes[result.unit] = result
    remove_temporaries(out)
    rows = []
    for name, store in units.items():
        res = outcomes[name]
        r: dict[str, Any] = {
            "store": store,
            "name": name,
            "status": "ok" if res.ok else "failed",
            "error": res.error,
        }
        if res.ok:
            damaged = read_json(out / name / UNREADABLE_FILE) or []
            res.value["unreadable_chunks"] = damaged
            r["unreadable_chunks"] = len(damaged)
            r.update(row(res.value))
        rows.append(r)
    table = pd.DataFrame(rows)
    write_table(table, out / "summary.csv")
    return [outcomes[name] for name in units], table


def profile_store(
    store: str, out_dir: str | os.PathLike[str], options: ProfileOptions
) -> dict[str, Any]:
    """Profile one store and write its report folder atomically (the task of one unit).

    The folder appears under its final name only when complete, so a worker killed
    half-way leaves a temporary that is never taken as done. Returns ``summary.json``'s
    content.
    """
    from analysis.io import commit_folder, open_volume
    from analysis.report import PROFILE_LABELS, profile_cell, write_report

    src = open_volume(store)
    names = [options.label_names[role] for role in PROFILE_LABELS]
    missing = [n for n in names if n not in src.label_names]
    if missing:
        raise FormatError(
            f"{store} lacks label image(s) {', '.join(missing)} "
            f"(has: {', '.join(src.label_names) or 'none'})"
        )
    labels = {}
    spacing = None
    bad: list[ChunkError] | None = [] if options.allow_missing else None
    for role, name in zip(PROFILE_LABELS, names, strict=True):
        lab_src = src.open_labels(name)
        labels[role] = read_zyx(lab_src, 0, f"label image {name!r}", bad)
        spacing = lab_src.levels[0].scale_um
    assert spacing is not None
    image = read_zyx(src, 0, "image", bad) if options.image else None
    profile = profile_cell(labels, spacing, image, k=options.k, bandwidth_um=options.bandwidth_um)

    def fill(tmp: Path) -> None:
        write_report(profile, tmp)
        write_unreadable(tmp, bad)

    commit_folder(out_dir, fill)
    return dict(profile.summary)


def write_unreadable(folder: Path, unreadable: Sequence[ChunkError] | None) -> None:
    """:data:`UNREADABLE_FILE` in a store's result folder, when chunks were damaged."""
    from analysis.io import write_json_atomic

    if unreadable:
        write_json_atomic(folder / UNREADABLE_FILE, [str(e) for e in unreadable])


def _flat_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar numbers of a summary, keyed by dotted paths.

    Lists are left out, and so are the step timings (``timings_s``): the table holds
    results, the same whatever the cluster.
    """
    results = {k: v for k, v in summary.items() if k != "timings_s"}
    flat = pd.json_normalize(results, sep=".").iloc[0].to_dict()
    return {
        str(k): v for k, v in flat.items() if v is None or isinstance(v, (int, float, str, bool))
    }


def batch_profile(
    client: Any,
    stores: Sequence[str],
    out_dir: str | os.PathLike[str],
    options: ProfileOptions,
    *,
    resume: bool = False,
    progress: bool = False,
) -> tuple[list[UnitResult], pd.DataFrame]:
    """Profile many stores on a dask cluster: one task per store.

    Parameters
    ----------
    client : distributed.Client
    stores : sequence of str
        Store paths or URLs. Local paths must be visible to every worker (a shared file
        system on a real cluster); they are made absolute here.
    out_dir : path-like
        Receives ``<store name>/`` (the same files as ``vrscope profile``) per store and
        ``summary.csv`` (one row per store: ``store``, ``status``, ``error`` and every
        number of its ``summary.json`` under a dotted name).
    options : ProfileOptions
    resume : bool, default: False
        Skip stores whose folder is already there (complete by construction).
    progress : bool, default: False

    Returns
    -------
    (outcomes, combined table)
    """
    return run_per_store(
        client,
        stores,
        out_dir,
        profile_store,
        options,
        done_file="summary.json",
        row=_flat_summary,
        desc="profile",
        resume=resume,
        progress=progress,
    )
