"""Writing a :class:`CellProfile` as CSV tables, ``summary.json``, PNGs and one
self-contained ``report.html`` (images embedded as base64, no external files needed)."""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from analysis.errors import FormatError
from analysis.report._plots import histogram_png, projection_png, scatter_fit_png, strip_png
from analysis.report._profile import CellProfile

__all__ = ["write_report"]

log = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
img { max-width: 480px; }
"""


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def write_report(profile: CellProfile, out_dir: str | Path, *, progress: bool = False) -> Path:
    """Write the report folder and return the path of ``report.html``.

    Files: ``volumes.csv``, ``mitochondria.csv``, ``pores.csv``, ``correlations.csv``,
    ``density_tests.csv``, ``summary.json``, ``*.png`` and ``report.html``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FormatError(f"report output {out} exists and is not a folder")
    if not out.parent.is_dir():
        raise FormatError(f"report output folder {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    tables = {
        "volumes": profile.volumes,
        "mitochondria": profile.mitochondria,
        "pores": profile.pores,
        "correlations": profile.correlations,
        "density_tests": profile.density_tests,
    }
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    (out / "summary.json").write_text(json.dumps(_jsonable(profile.summary), indent=2))

    mito, pores = profile.mitochondria, profile.pores
    figures: dict[str, Callable[[], bytes]] = {
        "mito_volume_hist": partial(
            histogram_png, mito["volume_um3"], "Mitochondria volume", "volume (µm³)"
        ),
        "mito_sv_hist": partial(
            histogram_png, mito["surface_to_volume"], "Mitochondria surface / volume", "S/V (1/µm)"
        ),
        "pores_knn_hist": partial(
            histogram_png,
            pores["knn_mean_distance_um"],
            "Pores: kNN mean distance",
            "distance (µm)",
        ),
        "pores_kde_hist": partial(
            histogram_png, pores["kde_density"], "Pores: Gaussian KDE density", "density (1/µm³)"
        ),
    }
    for key, col, label in (
        ("nucleus", "distance_to_nucleus_um", "distance to nucleus (µm)"),
        ("membrane", "distance_to_plasma_membrane_um", "distance to plasma membrane (µm)"),
        ("nearest", "min_distance_um", "distance to nearest membrane (µm)"),
    ):
        figures[f"sv_vs_{key}"] = partial(
            scatter_fit_png,
            mito,
            col,
            "surface_to_volume",
            col,
            "Mitochondria S/V",
            label,
            "S/V (1/µm)",
        )
    for name, proj in profile.projections.items():
        figures[f"proj_{name}"] = partial(
            projection_png, proj, profile.spacing, name.replace("_", " "), name.split("_", 1)[1]
        )
    figures["pores_density_by_part"] = partial(
        strip_png, pores, "nucleus_part", "kde_density", "Pore KDE density per nucleus half"
    )
    images: dict[str, bytes] = {}
    for name, make in tqdm(figures.items(), desc="plots", disable=not progress):
        images[name] = make()
        (out / f"{name}.png").write_bytes(images[name])

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>vrscope cell profile</title>",
        f"<style>{_CSS}</style></head><body><h1>Cell profile</h1>",
        f"<p>Voxel size (z, y, x): {', '.join(f'{s:g}' for s in profile.spacing)} µm</p>",
        "<h2>Compartment volumes</h2>",
        profile.volumes.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""),
        "<h2>Mitochondria: surface-to-volume vs membrane distance</h2>",
        profile.correlations.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
    ]

    def fig(names: list[str]) -> None:
        for n in names:
            if n in images:
                data = base64.b64encode(images[n]).decode("ascii")
                parts.append(
                    f"<figure><img alt='{html.escape(n)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(n)}</figcaption></figure>"
                )

    fig(["sv_vs_nucleus", "sv_vs_membrane", "sv_vs_nearest", "mito_volume_hist", "mito_sv_hist"])
    fig([n for n in images if n.startswith("proj_mitochondria")])
    parts.append("<h2>Nuclear pores: clustering</h2>")
    if len(profile.density_tests):
        parts.append(profile.density_tests.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    note = str(profile.summary.get("pores", {}).get("density_note", ""))
    if note:
        parts.append(f"<p><em>{html.escape(note)}</em></p>")
    fig(["pores_knn_hist", "pores_kde_hist", "pores_density_by_part", "proj_pores_kde_density"])
    parts.append("<h2>Summary</h2><pre>")
    parts.append(html.escape(json.dumps(_jsonable(profile.summary), indent=2)))
    parts.append("</pre></body></html>")
    report = out / "report.html"
    report.write_text("\n".join(parts), encoding="utf-8")
    log.info("report written to %s", report)
    return report
