"""The cell-profiling workflow on the generated FIB-SEM cell: ground truth, SciPy and
scikit-learn as references, and a self-contained report folder."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats
from sklearn.neighbors import KernelDensity, NearestNeighbors

from analysis.errors import ParameterError
from analysis.report import profile_cell, write_report
from analysis.synthetic import fibsem_cell


@pytest.fixture(scope="module")
def sample():
    return fibsem_cell(96, seed=1)


@pytest.fixture(scope="module")
def profile(sample):
    return profile_cell(sample.labels, sample.scale_um, sample.image)


def _truth(sample, kind):
    return sample.truth[sample.truth["kind"] == kind]


def test_volumes_and_counts_reproduce_ground_truth(sample, profile):
    vols = profile.volumes.set_index("compartment")
    cell_v = _truth(sample, "cell")["volume_um3"].sum()
    nuc_v = _truth(sample, "nucleus")["volume_um3"].sum()
    for name, truth_v in (
        ("cell", cell_v),
        ("nucleus", nuc_v),
        ("cytoplasm", cell_v - nuc_v),
        ("mitochondria", _truth(sample, "mitochondria")["volume_um3"].sum()),
        ("nuclear_pores", _truth(sample, "nuclear_pores")["volume_um3"].sum()),
    ):
        assert vols.loc[name, "volume_um3"] == pytest.approx(truth_v, rel=0.02)
    assert vols.loc["mitochondria", "count"] == len(_truth(sample, "mitochondria"))
    n_pores = len(_truth(sample, "nuclear_pores"))
    assert vols.loc["nuclear_pores", "count"] == pytest.approx(n_pores, rel=0.05)
    assert vols.loc["mitochondria", "percent_of_cytoplasm"] == pytest.approx(
        100 * vols.loc["mitochondria", "volume_um3"] / (cell_v - nuc_v)
    )
    # Per-object mitochondria volumes and centroids against the truth table.
    truth_m = _truth(sample, "mitochondria").set_index("label")
    mito = profile.mitochondria.set_index("label")
    np.testing.assert_allclose(
        mito["volume_um3"], truth_m.loc[mito.index, "volume_um3"], rtol=1e-12
    )
    np.testing.assert_allclose(
        mito["centroid_y_um"], truth_m.loc[mito.index, "centroid_y_um"], rtol=1e-12
    )


def test_correlations_and_distances_match_scipy(profile):
    mito = profile.mitochondria
    np.testing.assert_array_equal(
        mito["min_distance_um"],
        np.minimum(mito["distance_to_nucleus_um"], mito["distance_to_plasma_membrane_um"]),
    )
    assert (mito["distance_to_nucleus_um"] > 0).all()  # mitochondria lie outside the nucleus
    cols = {
        "nucleus": "distance_to_nucleus_um",
        "plasma_membrane": "distance_to_plasma_membrane_um",
        "nearest": "min_distance_um",
    }
    for row in profile.correlations.itertuples():
        fn = stats.pearsonr if row.method == "pearson" else stats.spearmanr
        ref = fn(mito[cols[row.distance]], mito["surface_to_volume"])
        assert row.r == pytest.approx(ref.statistic, rel=1e-12)
        assert row.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    assert len(profile.correlations) == 6


@pytest.fixture(scope="module")
def sample128():
    # 0.08 µm voxels: pores can lie 0.3 µm apart, close enough for a 0.1 µm kernel to see.
    return fibsem_cell(128, seed=0)


@pytest.fixture(scope="module")
def profile128(sample128):
    return profile_cell(sample128.labels, sample128.scale_um)


def _dense_part(profile, layout) -> int:
    """The profile's part (1 or 2) that is the generator's dense half."""
    normal = np.asarray(profile.summary["pores"]["nucleus_split_plane"]["normal"])
    dot = float(normal @ np.asarray(layout.normal))
    assert abs(dot) == pytest.approx(1.0, abs=1e-6)  # the same plane
    return 2 if dot > 0 else 1


def test_pore_density_matches_sklearn_and_ttest_matches_scipy(sample128, profile128):
    """Default bandwidth 0.1 µm: a real t-test between the halves, against the references."""
    pores = profile128.pores
    truth_p = _truth(sample128, "nuclear_pores").set_index("label").loc[pores["label"]]
    pts = truth_p[["centroid_z_um", "centroid_y_um", "centroid_x_um"]].to_numpy()
    dist, _ = NearestNeighbors(n_neighbors=9).fit(pts).kneighbors(pts)
    np.testing.assert_allclose(pores["knn_mean_distance_um"], dist[:, 1:].mean(axis=1), rtol=1e-9)
    kde = np.exp(KernelDensity(bandwidth=0.1).fit(pts).score_samples(pts))
    np.testing.assert_allclose(pores["kde_density"], kde, rtol=1e-6)
    assert profile128.summary["pores"]["density_note"] == ""
    assert list(profile128.density_tests["method"]) == ["Student", "Welch"]
    a = pores.loc[pores["nucleus_part"] == 1, "kde_density"]
    b = pores.loc[pores["nucleus_part"] == 2, "kde_density"]
    for row in profile128.density_tests.itertuples():
        ref = stats.ttest_ind(a, b, equal_var=row.method == "Student")
        assert row.statistic == pytest.approx(ref.statistic, rel=1e-9)
        assert row.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
        assert (row.n_part1, row.n_part2) == (len(a), len(b))


def test_profile_detects_the_known_pore_density_difference(sample128, profile128):
    """The generator made one half ~2x denser; the profile's halves and t-test find it."""
    layout = sample128.pore_layout
    dense = _dense_part(profile128, layout)
    sparse = 3 - dense
    # The same halves: pores per part equal the generator's counts per half.
    pores = profile128.pores
    n = pores["nucleus_part"].value_counts()
    assert (n[sparse], n[dense]) == layout.counts
    parts = profile128.summary["pores"]["nucleus_parts"]
    assert parts[str(dense)]["pores_per_um2"] == pytest.approx(layout.density_per_um2[1], rel=1e-9)
    assert parts[str(sparse)]["pores_per_um2"] == pytest.approx(layout.density_per_um2[0], rel=1e-9)
    assert parts[str(dense)]["pores_per_um2"] >= 1.5 * parts[str(sparse)]["pores_per_um2"]
    # Denser half -> higher mean KDE density, significant for Student and Welch.
    for row in profile128.density_tests.itertuples():
        means = {1: row.mean_part1, 2: row.mean_part2}
        assert means[dense] > means[sparse]
        assert row.pvalue < 0.05


def test_constant_density_guard_skips_the_t_test(sample, tmp_path):
    """Pores much farther apart than the bandwidth: every density is the own kernel."""
    pores = np.zeros_like(sample.labels["nuclear_pores"])
    step = 12  # 1.28 µm at 96 voxels: neighbours add exp(-82) of a kernel, i.e. nothing
    for i, (z, y, x) in enumerate(np.ndindex(3, 3, 2), start=1):
        c = np.array([20 + step * z, 20 + step * y, 30 + step * x])
        pores[c[0] : c[0] + 2, c[1] : c[1] + 2, c[2] : c[2] + 2] = i
    labels = {**sample.labels, "nuclear_pores": pores}
    prof = profile_cell(labels, sample.scale_um)
    assert prof.density_tests.empty
    assert "constant" in prof.summary["pores"]["density_note"]
    np.testing.assert_allclose(prof.pores["kde_density"], prof.pores["kde_density"].iloc[0])
    html = write_report(prof, tmp_path / "rep").read_text()
    assert "constant" in html  # the note is shown


def test_projection_colours_objects_by_feature(sample, profile):
    proj = profile.projections["mitochondria_surface_to_volume"]
    mito = sample.labels["mitochondria"]
    assert proj.shape == mito.shape[1:]
    assert np.array_equal(np.isfinite(proj), (mito > 0).any(axis=0))
    sv = profile.mitochondria.set_index("label")["surface_to_volume"]
    lab = int(profile.mitochondria["label"].iloc[0])
    ys, xs = np.nonzero((mito == lab).any(axis=0))
    # Every pixel of the object shows its value or a larger one (max projection).
    assert np.all(proj[ys, xs] >= sv[lab])


def test_report_folder_is_complete_and_self_contained(profile, tmp_path):
    report = write_report(profile, tmp_path / "rep")
    out = report.parent
    for name in ("volumes", "mitochondria", "pores", "correlations"):
        table = pd.read_csv(out / f"{name}.csv")
        assert len(table) > 0
    assert "pvalue" in pd.read_csv(out / "density_tests.csv").columns
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["nuclear_pores"] == int(
        profile.volumes.set_index("compartment").loc["nuclear_pores", "count"]
    )
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 10
    for png in pngs:
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] > 100
    html = report.read_text()
    srcs = re.findall(r"src='([^']*)'", html)
    assert len(srcs) >= 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "href=" not in html and "<script" not in html
    assert "Welch" in html  # the density t-tests are shown


class _ReportParser(HTMLParser):
    """A headless reading of report.html: images, section headings, tables by id."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.headings: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.order: list[str] = []  # headings, table ids and image alts in document order
        self._table = None
        self._cell = None
        self._heading = None
        self.unclosed = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("img", "meta", "br"):
            self.unclosed.append(tag)
        if tag == "img":
            self.images.append(a.get("src", ""))
            self.order.append(f"img:{a.get('alt')}")
        elif tag in ("h2", "h3"):
            self._heading = [a.get("id") or "", ""]
        elif tag == "table":
            self._table = a.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
            self.order.append(f"table:{self._table}")
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = ""

    def handle_endtag(self, tag):
        if self.unclosed and self.unclosed[-1] == tag:
            self.unclosed.pop()
        if tag in ("h2", "h3") and self._heading:
            hid, text = self._heading
            self.headings[text.strip()] = hid
            self.order.append(f"h:{text.strip()}")
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._heading is not None:
            self._heading[1] += data


def test_report_html_shows_density_per_nucleus_half(sample128, profile128, tmp_path):
    """Parse report.html headlessly: every image embedded and decodable, the per-half
    section with the generator's pore counts and densities, the t-tests as SciPy's."""
    report = write_report(profile128, tmp_path / "rep")
    parser = _ReportParser()
    parser.feed(report.read_text(encoding="utf-8"))
    parser.close()
    assert parser.unclosed == []  # well-formed: every element closed
    assert parser.images and all(s.startswith("data:image/png;base64,") for s in parser.images)
    for src in parser.images:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.format == "PNG" and min(im.size) > 100
    heading = "Nuclear pores: density per nucleus half"
    assert parser.headings[heading] == "nucleus-halves"
    # The section holds the per-half table, the t-tests and the box/strip plot, in order.
    start = parser.order.index(f"h:{heading}")
    section = parser.order[start : parser.order.index("h:Summary")]
    assert "table:nucleus-parts" in section and "table:density-tests" in section
    assert "img:pores_density_by_part" in section
    header, *rows = parser.tables["nucleus-parts"]
    assert header == ["part", "n_pores", "envelope_area_um2", "pores_per_um2", "mean_kde_density"]
    layout = sample128.pore_layout
    dense = _dense_part(profile128, layout)
    truth_n = {3 - dense: layout.counts[0], dense: layout.counts[1]}
    truth_d = {3 - dense: layout.density_per_um2[0], dense: layout.density_per_um2[1]}
    assert [int(r[0]) for r in rows] == [1, 2]
    for r in rows:
        part = int(r[0])
        assert int(r[1]) == truth_n[part]
        assert float(r[3]) == pytest.approx(truth_d[part], rel=1e-3)  # shown with 4 digits
        assert float(r[2]) * float(r[3]) == pytest.approx(truth_n[part], rel=2e-3)
    header, *rows = parser.tables["density-tests"]
    pores = profile128.pores
    a = pores.loc[pores["nucleus_part"] == 1, "kde_density"]
    b = pores.loc[pores["nucleus_part"] == 2, "kde_density"]
    for r in rows:
        row = dict(zip(header, r, strict=True))
        ref = stats.ttest_ind(a, b, equal_var=row["method"] == "Student")
        assert float(row["statistic"]) == pytest.approx(ref.statistic, rel=1e-3)
        assert float(row["pvalue"]) == pytest.approx(ref.pvalue, rel=1e-3)
    assert [dict(zip(header, r, strict=True))["method"] for r in rows] == ["Student", "Welch"]
    parts_csv = pd.read_csv(report.parent / "nucleus_parts.csv")
    assert parts_csv["n_pores"].tolist() == [truth_n[1], truth_n[2]]


def test_profile_bad_inputs(sample):
    labels = dict(sample.labels)
    with pytest.raises(ParameterError, match="missing nucleus"):
        profile_cell({k: v for k, v in labels.items() if k != "nucleus"}, sample.scale_um)
    with pytest.raises(ParameterError, match="at least 1000 nuclear pores"):
        profile_cell(labels, sample.scale_um, k=999)
    with pytest.raises(ParameterError, match="'mitochondria' is empty"):
        profile_cell(
            {**labels, "mitochondria": np.zeros_like(labels["mitochondria"])}, sample.scale_um
        )
    with pytest.raises(ParameterError, match="bandwidth"):
        profile_cell(labels, sample.scale_um, bandwidth_um=0.0)
