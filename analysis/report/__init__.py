"""The cell-profiling report: the seed workflow from label images to a shareable folder.

:func:`profile_cell` computes (arrays in, tables out): organelle volumes and percent of
cell and cytoplasm; mitochondria morphology with centroid distances to the nucleus and
the plasma membrane and their correlation with surface-to-volume; nuclear-pore kNN
distances, Gaussian KDE density and a t-test between the two halves of the nucleus.
:func:`write_report` writes CSV tables, ``summary.json``, PNG plots (matplotlib Agg) and
one self-contained ``report.html``: :func:`render_report` renders it all in memory and
:func:`analysis.io.write_report_folder` writes the folder (only ``analysis.io`` touches
files; the CLI opens the store via ``analysis.io`` too).

To add a section, add its tables to :class:`CellProfile` in ``_profile.py`` and its
figures in ``_html.render_report``.
"""

from analysis.report._html import (
    RenderedReport,
    nucleus_parts_table,
    render_report,
    write_report,
)
from analysis.report._profile import PROFILE_LABELS, CellProfile, profile_cell

__all__ = [
    "PROFILE_LABELS",
    "CellProfile",
    "RenderedReport",
    "nucleus_parts_table",
    "profile_cell",
    "render_report",
    "write_report",
]
