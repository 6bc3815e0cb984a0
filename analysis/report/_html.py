"""Rendering a :class:`CellProfile` as CSV tables, ``summary.json``, PNGs and one
self-contained ``report.html`` (images embedded as base64, no external files needed).

:func:`render_report` builds everything in memory; :func:`write_report` hands it to
:func:`analysis.io.write_report_folder`, the only code that writes the files."""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.report._plots import box_strip_png, histogram_png, projection_png, scatter_fit_png
from analysis.report._profile import CellProfile

__all__ = ["RenderedReport", "nucleus_parts_table", "render_report", "write_report"]

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


def nucleus_parts_table(summary: Mapping[str, Any]) -> pd.DataFrame:
    """Per nucleus half: pores, envelope area (µm²), pores per µm², mean KDE density.

    From ``summary["pores"]["nucleus_parts"]`` (:func:`profile_cell`); empty when absent.
    """
    parts = summary.get("pores", {}).get("nucleus_parts", {})
    rows = [
        {
            "part": int(p),
            "n_pores": v.get("n_pores"),
            "envelope_area_um2": v.get("envelope_area_um2"),
            "pores_per_um2": v.get("pores_per_um2"),
            "mean_kde_density": v.get("mean_kde_density"),
        }
        for p, v in sorted(parts.items(), key=lambda kv: int(kv[0]))
    ]
    return pd.DataFrame(
        rows,
        columns=["part", "n_pores", "envelope_area_um2", "pores_per_um2", "mean_kde_density"],
    )


@dataclass
class RenderedReport:
    """A report rendered in memory, ready for :func:`analysis.io.write_report_folder`.

    Attributes
    ----------
    tables : dict name -> DataFrame
        Written as ``<name>.csv``.
    images : dict name -> PNG bytes
        Written as ``<name>.png`` (and embedded in the HTML).
    texts : dict file name -> str
        ``summary.json`` and ``report.html``.
    """

    tables: dict[str, pd.DataFrame]
    images: dict[str, bytes]
    texts: dict[str, str]


def render_report(profile: CellProfile, *, progress: bool = False) -> RenderedReport:
    """Render tables, PNG plots, ``summary.json`` and the self-contained ``report.html``.

    Pure: nothing is written (see :func:`write_report`).
    """
    parts_table = nucleus_parts_table(profile.summary)
    tables = {
        "volumes": profile.volumes,
        "mitochondria": profile.mitochondria,
        "pores": profile.pores,
        "correlations": profile.correlations,
        "density_tests": profile.density_tests,
        "nucleus_parts": parts_table,
    }
    summary_json = json.dumps(_jsonable(profile.summary), indent=2)

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
    per_um2: dict[object, float] = {}
    for part, value in zip(parts_table["part"], parts_table["pores_per_um2"], strict=True):
        if value is not None and np.isfinite(float(value)):
            per_um2[int(part)] = float(value)
    figures["pores_density_by_part"] = partial(
        box_strip_png,
        pores,
        "nucleus_part",
        "kde_density",
        "Pore KDE density per nucleus half",
        "KDE density (1/µm³)",
        {g: f"part {g}\n{v:.2f} pores/µm²" for g, v in per_um2.items()},
    )
    images: dict[str, bytes] = {}
    for name, make in tqdm(figures.items(), desc="plots", disable=not progress):
        images[name] = make()

    def fmt(v: float) -> str:
        return f"{v:.4g}"

    doc = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>vrscope cell profile</title>",
        f"<style>{_CSS}</style></head><body><h1>Cell profile</h1>",
        f"<p>Voxel size (z, y, x): {', '.join(f'{s:g}' for s in profile.spacing)} µm</p>",
        "<h2>Compartment volumes</h2>",
        profile.volumes.to_html(index=False, float_format=fmt, na_rep=""),
        "<h2>Mitochondria: surface-to-volume vs membrane distance</h2>",
        profile.correlations.to_html(index=False, float_format=fmt),
    ]

    def fig(names: list[str]) -> None:
        for n in names:
            if n in images:
                data = base64.b64encode(images[n]).decode("ascii")
                doc.append(
                    f"<figure><img alt='{html.escape(n)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(n)}</figcaption></figure>"
                )

    fig(["sv_vs_nucleus", "sv_vs_membrane", "sv_vs_nearest", "mito_volume_hist", "mito_sv_hist"])
    fig([n for n in images if n.startswith("proj_mitochondria")])
    doc.append("<h2>Nuclear pores: clustering</h2>")
    fig(["pores_knn_hist", "pores_kde_hist", "proj_pores_kde_density"])
    doc.append("<h2 id='nucleus-halves'>Nuclear pores: density per nucleus half</h2>")
    plane = profile.summary.get("pores", {}).get("nucleus_split_plane", {})
    if plane:
        normal = ", ".join(f"{v:.3f}" for v in plane.get("normal", []))
        doc.append(
            "<p>The nucleus is cut by its principal plane (through the centroid, normal "
            f"({html.escape(normal)}) in z, y, x): part 2 lies on the normal's side. "
            "Envelope area: marching-cubes surface of the nucleus, triangles split by the "
            "plane.</p>"
        )
    if len(parts_table):
        doc.append(
            parts_table.to_html(index=False, float_format=fmt, na_rep="", table_id="nucleus-parts")
        )
    if len(profile.density_tests):
        doc.append("<h3>t-tests of pore KDE density, part 1 vs part 2</h3>")
        doc.append(
            profile.density_tests.to_html(index=False, float_format=fmt, table_id="density-tests")
        )
    note = str(profile.summary.get("pores", {}).get("density_note", ""))
    if note:
        doc.append(f"<p><em>{html.escape(note)}</em></p>")
    fig(["pores_density_by_part"])
    doc.append("<h2>Summary</h2><pre>")
    doc.append(html.escape(summary_json))
    doc.append("</pre></body></html>")
    texts = {"summary.json": summary_json, "report.html": "\n".join(doc)}
    return RenderedReport(tables=tables, images=images, texts=texts)


def write_report(profile: CellProfile, out_dir: str | Path, *, progress: bool = False) -> Path:
    """Render the report and write the folder (:func:`analysis.io.write_report_folder`).

    Files: ``volumes.csv``, ``mitochondria.csv``, ``pores.csv``, ``correlations.csv``,
    ``density_tests.csv``, ``nucleus_parts.csv``, ``summary.json``, ``*.png`` and
    ``report.html``. Returns the path of ``report.html``.
    """
    from analysis.io import write_report_folder  # only analysis.io touches files

    rendered = render_report(profile, progress=progress)
    folder = write_report_folder(
        out_dir, tables=rendered.tables, texts=rendered.texts, images=rendered.images
    )
    log.info("report written to %s", folder / "report.html")
    return folder / "report.html"
