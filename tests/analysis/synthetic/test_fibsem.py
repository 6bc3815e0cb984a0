"""The FIB-SEM sample: geometry, contrast and truth, judged with SciPy and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.spatial import cKDTree
from skimage.draw import ellipsoid, ellipsoid_stats
from skimage.measure import marching_cubes, mesh_surface_area, regionprops

from analysis.errors import ParameterError
from analysis.morphology import measure_objects
from analysis.synthetic import (
    FIBSEM_LABELS,
    TRUTH_COLUMNS,
    FibsemSample,
    fibsem_cell,
    n_mitochondria_for_size,
    object_table,
)
from analysis.synthetic._fibsem import FIELD_OF_VIEW_UM

SIZE = 96
FULL = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


@pytest.fixture(scope="module")
def cell() -> FibsemSample:
    return fibsem_cell(SIZE, seed=0)


def test_shapes_dtypes_and_voxel_size(cell: FibsemSample) -> None:
    assert cell.image.shape == (SIZE,) * 3 and cell.image.dtype == np.uint8
    assert tuple(cell.labels) == FIBSEM_LABELS
    for lab in cell.labels.values():
        assert lab.shape == cell.image.shape and np.issubdtype(lab.dtype, np.integer)
    # The documented default: a 10.24 µm field of view.
    assert cell.scale_um == pytest.approx((10.24 / SIZE,) * 3)
    assert set(np.unique(cell.labels["cell"])) == {0, 1}
    assert set(np.unique(cell.labels["nucleus"])) == {0, 1}


def test_same_seed_same_sample(cell: FibsemSample) -> None:
    again = fibsem_cell(SIZE, seed=0)
    np.testing.assert_array_equal(again.image, cell.image)
    for name in FIBSEM_LABELS:
        np.testing.assert_array_equal(again.labels[name], cell.labels[name])
    assert again.truth.equals(cell.truth)


def test_different_seeds_differ(cell: FibsemSample) -> None:
    other = fibsem_cell(SIZE, seed=1)
    assert np.mean(other.image != cell.image) > 0.5
    for name in FIBSEM_LABELS:
        assert not np.array_equal(other.labels[name], cell.labels[name]), name


def test_mitochondria_count_scales_with_size(cell: FibsemSample) -> None:
    targets = [n_mitochondria_for_size(s) for s in (96, 128, 256, 384, 512)]
    assert all(50 <= t <= 300 for t in targets)
    assert targets == sorted(targets) and targets[0] < targets[2] < targets[-1]
    assert targets[0] >= 50 and targets[-1] == 300
    # The generator reaches its target; counted independently with SciPy.
    _, count = ndi.label(cell.labels["mitochondria"] > 0, structure=FULL)
    assert count == cell.n_mitochondria == n_mitochondria_for_size(SIZE)
    bigger = fibsem_cell(128, seed=0)
    assert 50 <= cell.n_mitochondria < bigger.n_mitochondria <= 300


def test_every_object_lies_inside_the_cell(cell: FibsemSample) -> None:
    inside = cell.labels["cell"] > 0
    for name in ("nucleus", "mitochondria", "nuclear_pores"):
        lab = cell.labels[name] > 0
        assert lab.any(), name
        assert not (lab & ~inside).any(), name
    # Resin all around: the cell does not touch the volume's faces.
    assert not inside[[0, -1]].any() and not inside[:, [0, -1]].any()
    assert not inside[:, :, [0, -1]].any()


def _instances_are_separate(lab: np.ndarray) -> None:
    """Each instance is one connected component and no two instances touch (26-connected)."""
    comp, count = ndi.label(lab > 0, structure=FULL)
    assert count == int(lab.max()) == len(np.unique(lab)) - 1
    # One component per instance and one instance per component.
    pairs = np.unique(np.stack([lab[lab > 0], comp[lab > 0]]), axis=1)
    assert pairs.shape[1] == count
    # The default (6-connected) labelling gives the same count: instances are solid.
    assert ndi.label(lab > 0)[1] == count


def test_mitochondria_are_separate_instances(cell: FibsemSample) -> None:
    _instances_are_separate(cell.labels["mitochondria"])


def test_mitochondria_are_elongated_and_clear_of_nucleus_and_membrane(cell: FibsemSample) -> None:
    mito = cell.labels["mitochondria"]
    nucleus = cell.labels["nucleus"] > 0
    # At least one voxel of cytoplasm between a mitochondrion and the nucleus or resin.
    near_nucleus = ndi.binary_dilation(nucleus, structure=FULL, iterations=2)
    assert not (near_nucleus & (mito > 0)).any()
    near_resin = ndi.binary_dilation(cell.labels["cell"] == 0, structure=FULL, iterations=2)
    assert not (near_resin & (mito > 0)).any()
    # Elongated: the median ratio of principal axis lengths (scikit-image) is well above 1.
    ratios = [p.axis_major_length / max(p.axis_minor_length, 1e-9) for p in regionprops(mito)]
    assert np.median(ratios) > 1.8


def test_nuclear_pores_sit_on_the_envelope(cell: FibsemSample) -> None:
    pores = cell.labels["nuclear_pores"]
    nucleus = cell.labels["nucleus"] > 0
    assert cell.n_pores >= 15
    _instances_are_separate(pores)
    surface = nucleus & ~ndi.binary_erosion(nucleus)
    outside = ~nucleus
    for index, box in enumerate(ndi.find_objects(pores), start=1):
        assert box is not None
        pore = pores[box] == index
        # Through the envelope: part outside the nucleus (channel), part inside (pocket),
        # and it covers nuclear surface voxels.
        assert (pore & outside[box]).any(), index
        assert (pore & nucleus[box]).any(), index
        assert (pore & surface[box]).any(), index
    # And nowhere far from the surface: within 6 voxels of it (SciPy EDT).
    dist = ndi.distance_transform_edt(~surface)
    assert dist[pores > 0].max() <= 6.0


def test_nucleus_has_an_invagination_and_a_double_envelope(cell: FibsemSample) -> None:
    nucleus = cell.labels["nucleus"]
    props = regionprops(nucleus)
    assert len(props) == 1
    # A deformed ellipsoid is nearly convex (solidity ~0.98); the invagination makes it less so.
    assert props[0].solidity < 0.95
    # The fold is open to the cytoplasm, not a hole.
    np.testing.assert_array_equal(ndi.binary_fill_holes(nucleus), nucleus > 0)
    # Intensity across the envelope (SciPy EDT shells): dark inner membrane, light
    # perinuclear space, dark outer membrane, then light cytoplasm.
    img = cell.image.astype(float)
    d_in = ndi.distance_transform_edt(nucleus)
    d_out = ndi.distance_transform_edt(nucleus == 0)
    pores = ndi.binary_dilation(cell.labels["nuclear_pores"] > 0, iterations=2)
    inner = img[(nucleus > 0) & (d_in < 2) & ~pores].mean()
    space = img[(nucleus == 0) & (d_out <= 1.5) & ~pores].mean()
    outer = img[(nucleus == 0) & (d_out > 1.5) & (d_out <= 2.5) & ~pores].mean()
    cyto = img[(cell.labels["cell"] > 0) & (d_out > 4) & (cell.labels["mitochondria"] == 0)]
    assert inner < space - 10
    assert outer < space - 10
    assert outer < cyto.mean() - 20


def test_contrast_is_dark_on_light(cell: FibsemSample) -> None:
    img = cell.image.astype(float)
    inside = cell.labels["cell"] > 0
    mito = cell.labels["mitochondria"] > 0
    cytoplasm = (
        inside
        & ~ndi.binary_dilation((cell.labels["nucleus"] > 0) | mito, iterations=3)
        & ndi.binary_erosion(inside, iterations=3)
    )
    resin = ~ndi.binary_dilation(inside, iterations=3)
    membrane = inside & ~ndi.binary_erosion(inside)
    assert img[mito].mean() < img[cytoplasm].mean() - 30
    assert img[cytoplasm].mean() < img[resin].mean()
    assert img[membrane].mean() < img[cytoplasm].mean() - 30
    # Noise and texture: the cytoplasm is not flat.
    assert img[cytoplasm].std() > 5


def test_truth_table_matches_regionprops(cell: FibsemSample) -> None:
    truth = cell.truth
    assert tuple(truth.columns) == TRUTH_COLUMNS
    voxel_volume = float(np.prod(cell.scale_um))
    for name in FIBSEM_LABELS:
        rows = truth[truth["kind"] == name].set_index("label")
        props = regionprops(cell.labels[name].astype(np.int32), spacing=cell.scale_um)
        assert sorted(rows.index) == [p.label for p in props], name
        for p in props:
            row = rows.loc[p.label]
            assert row["voxel_count"] == p.num_pixels
            assert row["volume_um3"] == pytest.approx(p.num_pixels * voxel_volume, rel=1e-12)
            np.testing.assert_allclose(
                row[["centroid_z_um", "centroid_y_um", "centroid_x_um"]].to_numpy(float),
                p.centroid,
                rtol=1e-10,
            )
    assert (truth["surface_area_um2"] > 0).all()


def test_object_table_on_an_analytic_ellipsoid() -> None:
    # scikit-image's analytic ellipsoid at anisotropic spacing: volume within 2%,
    # marching-cubes area of the binary mask within 10% (it overestimates by ~8%).
    spacing = (2.0, 1.0, 1.0)
    mask = ellipsoid(20, 15, 12, spacing=spacing)
    table = object_table({"e": mask.astype(np.uint8)}, spacing)
    volume, area = ellipsoid_stats(20, 15, 12)
    assert table["volume_um3"][0] == pytest.approx(volume, rel=0.02)
    assert table["surface_area_um2"][0] == pytest.approx(area, rel=0.10)
    centre = np.array(mask.shape, float) / 2 - 0.5
    np.testing.assert_allclose(
        table.loc[0, ["centroid_z_um", "centroid_y_um", "centroid_x_um"]].to_numpy(float),
        centre * spacing,
        atol=1e-9,
    )


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"size": 10}, "size"),
        ({"size": 4096}, "size"),
        ({"size": 96.5}, "size"),
        ({"seed": -1}, "seed"),
        ({"voxel_size_um": 0.0}, "voxel_size_um"),
        ({"voxel_size_um": (0.01, 0.01)}, "voxel_size_um"),
    ],
)
def test_bad_arguments_raise_parameter_error(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ParameterError, match=word):
        fibsem_cell(**kwargs)  # type: ignore[arg-type]


def test_progress_reports_every_stage() -> None:
    seen: list[tuple[str, int, int]] = []
    sample = fibsem_cell(
        SIZE, seed=2, voxel_size_um=(0.02, 0.01, 0.01), progress=lambda *a: seen.append(a)
    )
    assert sample.scale_um == (0.02, 0.01, 0.01)
    done = [d for _, d, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][2] and len(seen) >= 5


def _nucleus_halves_reference(sample: FibsemSample) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (µm) and major principal axis of the nucleus from scikit-image.

    The major axis of the voxel distribution is the inertia tensor's eigenvector with the
    smallest eigenvalue (regionprops' ``inertia_tensor`` is in physical units with
    ``spacing``).
    """
    (prop,) = regionprops(sample.labels["nucleus"].astype(np.int32), spacing=sample.scale_um)
    vals, vecs = np.linalg.eigh(prop.inertia_tensor)
    return np.asarray(prop.centroid), vecs[:, int(np.argmin(vals))]


def _envelope_area_by_half(sample: FibsemSample) -> tuple[float, float, float]:
    """(sparse, dense, total) binary marching-cubes area of the nucleus, scikit-image."""
    lay = sample.pore_layout
    assert lay is not None
    nuc = np.pad(sample.labels["nucleus"] > 0, 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(nuc, 0.5, spacing=sample.scale_um)
    verts -= np.asarray(sample.scale_um)  # undo the padding
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = mesh_surface_area(verts, faces)
    assert area.sum() == pytest.approx(total, rel=1e-9)  # per-triangle areas add up
    dense = lay.in_dense_half(tri.mean(axis=1))
    return float(area[~dense].sum()), float(area[dense].sum()), float(total)


def _pore_centroids(sample: FibsemSample) -> np.ndarray:
    pores = sample.labels["nuclear_pores"].astype(np.int32)
    return np.array([p.centroid for p in regionprops(pores, spacing=sample.scale_um)])


def test_pore_layout_matches_scikit_image(cell: FibsemSample) -> None:
    """The recorded split plane, pores and envelope area per half, against scikit-image."""
    lay = cell.pore_layout
    assert lay is not None
    centre, axis = _nucleus_halves_reference(cell)
    np.testing.assert_allclose(lay.centre_um, centre, atol=1e-9)
    assert abs(float(np.dot(lay.normal, axis))) == pytest.approx(1.0, abs=1e-9)
    pts = _pore_centroids(cell)
    dense = lay.in_dense_half(pts)
    assert (int(np.count_nonzero(~dense)), int(np.count_nonzero(dense))) == lay.counts
    assert sum(lay.counts) == cell.n_pores
    sparse_a, dense_a, total = _envelope_area_by_half(cell)
    np.testing.assert_allclose(lay.envelope_area_um2, (sparse_a, dense_a), rtol=1e-9)
    assert sum(lay.envelope_area_um2) == pytest.approx(total, rel=1e-9)
    # The known difference: one half about twice as dense (at least 1.5x).
    d_sparse, d_dense = lay.density_per_um2
    assert d_dense / d_sparse == pytest.approx(lay.target_ratio, rel=0.25)
    assert d_dense / d_sparse >= 1.5
    info = lay.as_dict()
    assert info["counts"] == {"sparse": lay.counts[0], "dense": lay.counts[1]}
    assert "principal plane" in str(info["split"])


def test_pores_are_packed_a_few_voxels_apart(cell: FibsemSample) -> None:
    """Pores are packed as tightly as separate instances allow at this voxel size."""
    pts = _pore_centroids(cell)
    nn = cKDTree(pts).query(pts, 2)[0][:, 1]
    voxel = cell.scale_um[0]
    # Centres a few voxels apart: 3-voxel pores with a one-voxel gap (26-neighbourhood).
    assert nn.min() >= 3.5 * voxel
    assert nn.min() <= 6.0 * voxel
    lay = cell.pore_layout
    assert lay is not None
    # At 96 voxels (0.107 µm) the dense half is as full as it gets: >= 2 pores per µm².
    assert lay.density_per_um2[1] >= 2.0


def test_truth_surface_is_the_binary_morphology_surface(cell: FibsemSample) -> None:
    """The truth's surface area is measure_objects(surface_method="binary"), not "smooth"."""
    mito = cell.labels["mitochondria"]
    truth = cell.truth[cell.truth["kind"] == "mitochondria"].set_index("label")
    binary = measure_objects(mito, cell.scale_um, surface_method="binary").set_index("label")
    np.testing.assert_allclose(
        binary["surface_area_um2"], truth.loc[binary.index, "surface_area_um2"], rtol=1e-9
    )
    smooth = measure_objects(mito, cell.scale_um).set_index("label")
    assert (smooth["surface_area_um2"] < binary["surface_area_um2"]).mean() > 0.9


def _hard_core_random(
    surface_um: np.ndarray, n: int, d0: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` points drawn uniformly from surface voxels, no two closer than ``d0`` (RSA)."""
    tree_pts: list[np.ndarray] = []
    for i in rng.permutation(len(surface_um)):
        p = surface_um[i]
        if not tree_pts or np.min(np.sum((np.asarray(tree_pts) - p) ** 2, axis=1)) >= d0 * d0:
            tree_pts.append(p)
            if len(tree_pts) == n:
                break
    return np.asarray(tree_pts)


@pytest.mark.slow
def test_standard_sample_pores_are_realistic_and_clustered() -> None:
    """size 256 (0.04 µm voxels): 3-4.5 pores per µm², clustered, dense half ~2x."""
    sample = fibsem_cell(256, seed=0)
    assert sample.scale_um[0] == pytest.approx(FIELD_OF_VIEW_UM / 256)
    lay = sample.pore_layout
    assert lay is not None
    sparse_a, dense_a, total = _envelope_area_by_half(sample)
    assert 3.0 <= sample.n_pores / total <= 4.5
    pts = _pore_centroids(sample)
    dense = lay.in_dense_half(pts)
    d_sparse = np.count_nonzero(~dense) / sparse_a
    d_dense = np.count_nonzero(dense) / dense_a
    assert 1.5 <= d_dense / d_sparse <= 2.5
    nn = cKDTree(pts).query(pts, 2)[0][:, 1]
    assert 0.12 <= nn.min() <= 0.22  # centre spacing down to ~0.15-0.2 µm
    # Clustering: more pairs within 0.3 µm (two cluster sigmas) than in 20 hard-core
    # random patterns with the same number of points and the same minimum spacing,
    # drawn on the same half of the nuclear surface (SciPy k-d tree pair counts).
    nuc = sample.labels["nucleus"] > 0
    surface = np.argwhere(nuc & ~ndi.binary_erosion(nuc)) * np.asarray(sample.scale_um)
    rng = np.random.default_rng(0)
    half_pts = pts[dense]
    half_surface = surface[lay.in_dense_half(surface)]
    observed = len(cKDTree(half_pts).query_pairs(0.3))
    null = [
        len(cKDTree(_hard_core_random(half_surface, len(half_pts), nn.min(), rng)).query_pairs(0.3))
        for _ in range(20)
    ]
    assert observed > max(null)
