"""The cell-profiling workflow: organelle volumes, mitochondria shape vs membrane distance,
nuclear-pore density. Pure compute on arrays; :mod:`analysis.report._html` writes it out."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi
from skimage.measure import marching_cubes
from tqdm.auto import tqdm

from analysis.density import (
    correlation,
    gaussian_kde_density,
    knn_mean_distance,
    principal_plane,
    t_test,
)
from analysis.distances import distance_to_masks
from analysis.errors import ParameterError
from analysis.morphology import measure_objects

__all__ = ["PROFILE_LABELS", "CellProfile", "profile_cell"]

log = logging.getLogger(__name__)

PROFILE_LABELS = ("cell", "nucleus", "mitochondria", "nuclear_pores")
"""Label images the workflow needs."""

_DISTANCES = {
    "nucleus": "distance_to_nucleus_um",
    "plasma_membrane": "distance_to_plasma_membrane_um",
    "nearest": "min_distance_um",
}


@dataclass
class CellProfile:
    """Everything the report shows.

    Attributes
    ----------
    spacing : (3,) floats
        Voxel size (z, y, x) in µm.
    volumes : DataFrame
        One row per compartment (``cell``, ``nucleus``, ``cytoplasm``, ``mitochondria``,
        ``nuclear_pores``): ``count``, ``volume_um3``, ``percent_of_cell``,
        ``percent_of_cytoplasm``.
    mitochondria : DataFrame
        The morphology table plus ``distance_to_nucleus_um``,
        ``distance_to_plasma_membrane_um``, ``min_distance_um`` (centroid to surface),
        ``nearest_surface``.
    pores : DataFrame
        Morphology table plus ``knn_mean_distance_um``, ``kde_density`` and
        ``nucleus_part`` (1 or 2, the side of the nucleus's principal plane,
        :func:`analysis.density.principal_plane`: 2 where ``(p - centre) . normal > 0``).
    correlations : DataFrame
        S/V against each distance: ``distance``, ``method``, ``r``, ``pvalue``, ``n``.
    density_tests : DataFrame
        KDE density of pores, part 1 vs part 2: Student and Welch t-tests (empty, with
        ``summary["pores"]["density_note"]`` saying why, when the densities are constant
        within the KDE's error or a part has fewer than 2 pores).
    summary : dict
        JSON-able numbers for ``summary.json``; ``summary["pores"]["nucleus_parts"]``
        has per part the pore count, the envelope area (binary marching cubes of the
        nucleus, triangles split by the plane) and pores per µm².
    projections : dict name -> (y, x) float array
        Per-object colour-coded max projections along z (NaN = no object).
    """

    spacing: tuple[float, float, float]
    volumes: pd.DataFrame
    mitochondria: pd.DataFrame
    pores: pd.DataFrame
    correlations: pd.DataFrame
    density_tests: pd.DataFrame
    summary: dict[str, Any]
    projections: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)


def _feature_projection(
    labels: npt.NDArray[np.integer], table: pd.DataFrame, column: str
) -> npt.NDArray[np.float64]:
    """Max projection along z of ``labels`` with each label replaced by its ``column`` value."""
    lut = np.full(int(labels.max()) + 1, np.nan)
    lut[table["label"].to_numpy(np.int64)] = table[column].to_numpy(np.float64)
    # fmax ignores NaN (background) and leaves all-background columns NaN, without warnings.
    return np.asarray(np.fmax.reduce(lut[labels], axis=0), dtype=np.float64)


def _envelope_area_by_part(
    nucleus: npt.NDArray[np.bool_],
    spacing: Sequence[float],
    centre: npt.NDArray[np.float64],
    normal: npt.NDArray[np.float64],
) -> tuple[float, float]:
    """Nuclear surface area (µm²) in part 1 and part 2 of the split.

    Marching cubes at level 0.5 on the binary nucleus crop padded by one voxel (the
    sample truth's surface definition, ``surface_method="binary"``); each triangle goes
    to the part its centre lies in (part 2: ``(p - centre) . normal > 0``).
    """
    box = ndi.find_objects(nucleus.astype(np.uint8))[0]
    assert box is not None  # the caller checked that the nucleus is not empty
    sp = np.asarray(spacing, dtype=np.float64)
    verts, faces, _, _ = marching_cubes(  # type: ignore[no-untyped-call]
        np.pad(nucleus[box], 1).astype(np.float32), 0.5, spacing=tuple(sp)
    )
    verts = verts + (np.array([sl.start for sl in box]) - 1) * sp
    tri = verts[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    part2 = (tri.mean(axis=1) - centre) @ normal > 0
    return float(area[~part2].sum()), float(area[part2].sum())


def _column_dict(volumes: pd.DataFrame, column: str) -> dict[str, float]:
    """``{compartment: value}`` for the finite values of one column."""
    values = volumes[column].to_numpy(np.float64)
    names = volumes["compartment"].astype(str).tolist()
    return {n: float(v) for n, v in zip(names, values, strict=True) if np.isfinite(v)}


def profile_cell(
    labels: Mapping[str, npt.ArrayLike],
    spacing: Sequence[float],
    image: npt.ArrayLike | None = None,
    *,
    k: int = 8,
    bandwidth_um: float = 0.1,
    progress: bool = False,
) -> CellProfile:
    """Run the cell-profiling workflow on label images of one cell.

    Parameters
    ----------
    labels : mapping name -> (z, y, x) integer array
        Must hold :data:`PROFILE_LABELS`: ``cell`` and ``nucleus`` masks (non-zero =
        inside; the cell includes the nucleus), ``mitochondria`` and ``nuclear_pores``
        instance labels.
    spacing : (3,) floats
        Voxel size in µm.
    image : (z, y, x) array, optional
        Adds intensity columns to the mitochondria table.
    k : int, default: 8
        Neighbours for the pores' kNN mean distance.
    bandwidth_um : float, default: 0.1
        Gaussian KDE bandwidth for pore density.
    progress : bool, default: False
        tqdm progress bar over the steps.
    """
    sp, cell, nucleus, mito, pores = _checked_inputs(labels, spacing, k, bandwidth_um)
    timings: dict[str, float] = {}
    steps = tqdm(total=5, desc="profile", unit="step", disable=not progress)

    def step(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 3)
        steps.set_postfix_str(name)
        steps.update(1)

    # 1. compartment volumes
    t0 = time.perf_counter()
    volumes, n_mito, n_pores = _compartment_volumes(sp, cell, nucleus, mito, pores)
    step("volumes", t0)

    # 2. mitochondria morphology
    t0 = time.perf_counter()
    mito_table = measure_objects(mito, sp, image=image, parent=cell)
    step("mitochondria morphology", t0)

    # 3. distances of mitochondria to nucleus and plasma membrane, correlations with S/V
    t0 = time.perf_counter()
    mito_table, corr_rows = _mito_distances(mito_table, sp, cell, nucleus)
    correlations = pd.DataFrame(corr_rows, columns=["distance", "method", "r", "pvalue", "n"])
    step("distances", t0)

    # 4. pores: kNN distance, KDE density, nucleus halves, t-tests
    t0 = time.perf_counter()
    pore_table = measure_objects(pores, sp, surface=False)
    pts = pore_table[["centroid_z_um", "centroid_y_um", "centroid_x_um"]].to_numpy()
    pore_table["knn_mean_distance_um"] = knn_mean_distance(pts, k)
    pore_table["kde_density"] = gaussian_kde_density(pts, bandwidth_um)
    centre, normal = principal_plane(nucleus, sp)
    pore_table["nucleus_part"] = np.where((pts - centre) @ normal > 0, 2, 1)
    parts = [pore_table.loc[pore_table["nucleus_part"] == p, "kde_density"] for p in (1, 2)]
    envelope = _envelope_area_by_part(nucleus, sp, centre, normal)
    part_summary = {
        str(p): {
            "n_pores": int(len(parts[p - 1])),
            "envelope_area_um2": envelope[p - 1],
            "pores_per_um2": len(parts[p - 1]) / envelope[p - 1] if envelope[p - 1] else None,
            "mean_kde_density": float(parts[p - 1].mean()) if len(parts[p - 1]) else None,
        }
        for p in (1, 2)
    }
    density_tests, density_note = _density_tests(pore_table, parts, bandwidth_um)
    step("pore density", t0)

    # 5. colour-coded projections
    t0 = time.perf_counter()
    projections = {
        "mitochondria_surface_to_volume": _feature_projection(
            mito, mito_table, "surface_to_volume"
        ),
        "mitochondria_min_distance_um": _feature_projection(mito, mito_table, "min_distance_um"),
        "pores_kde_density": _feature_projection(pores, pore_table, "kde_density"),
    }
    step("projections", t0)
    steps.close()

    summary: dict[str, Any] = {
        "voxel_size_um": list(sp),
        "shape": list(cell.shape),
        "volumes_um3": _column_dict(volumes, "volume_um3"),
        "percent_of_cell": _column_dict(volumes, "percent_of_cell"),
        "percent_of_cytoplasm": _column_dict(volumes, "percent_of_cytoplasm"),
        "counts": {"mitochondria": n_mito, "nuclear_pores": n_pores},
        "mitochondria": {
            "mean_volume_um3": float(mito_table["volume_um3"].mean()),
            "mean_surface_to_volume_per_um": float(mito_table["surface_to_volume"].mean()),
        },
        "correlations_surface_to_volume": [
            {k2: (float(v) if isinstance(v, (float, np.floating)) else v) for k2, v in row.items()}
            for row in corr_rows
        ],
        "pores": {
            "k": k,
            "bandwidth_um": bandwidth_um,
            "mean_knn_distance_um": float(pore_table["knn_mean_distance_um"].mean()),
            "mean_kde_density": float(pore_table["kde_density"].mean()),
            "nucleus_split_plane": {"centre_um": centre.tolist(), "normal": normal.tolist()},
            "nucleus_parts": part_summary,
            "density_t_tests": density_tests.to_dict(orient="records"),
            "density_note": density_note,
        },
        "timings_s": timings,
    }
    return CellProfile(
        spacing=sp,
        volumes=volumes,
        mitochondria=mito_table,
        pores=pore_table,
        correlations=correlations,
        density_tests=density_tests,
        summary=summary,
        projections=projections,
    )


Vec3 = tuple[float, float, float]
Mask = npt.NDArray[np.bool_]


def _checked_inputs(
    labels: Mapping[str, npt.ArrayLike], spacing: Sequence[float], k: int, bandwidth_um: float
) -> tuple[Vec3, Mask, Mask, npt.NDArray[Any], npt.NDArray[Any]]:
    """(spacing, cell, nucleus, mitochondria, pores), or ParameterError saying what is wrong."""
    missing = [n for n in PROFILE_LABELS if n not in labels]
    if missing:
        raise ParameterError(
            f"the profile needs label images {', '.join(PROFILE_LABELS)}; missing {', '.join(missing)}"
        )
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or min(sp) <= 0:
        raise ParameterError(f"spacing must be three positive numbers, got {spacing!r}")
    cell = np.asarray(labels["cell"]) > 0
    nucleus = np.asarray(labels["nucleus"]) > 0
    mito = np.asarray(labels["mitochondria"])
    pores = np.asarray(labels["nuclear_pores"])
    for name, arr in (("cell", cell), ("nucleus", nucleus)):
        if not arr.any():
            raise ParameterError(f"label image {name!r} is empty")
    if not mito.any():
        raise ParameterError("label image 'mitochondria' is empty")
    if int(pores.max()) < k + 1:
        raise ParameterError(
            f"kNN with k = {k} needs at least {k + 1} nuclear pores, got {int(pores.max())}"
        )
    if not bandwidth_um > 0:
        raise ParameterError(f"bandwidth must be positive µm, got {bandwidth_um!r}")
    return (sp[0], sp[1], sp[2]), cell, nucleus, mito, pores


def _compartment_volumes(
    sp: Vec3, cell: Mask, nucleus: Mask, mito: npt.NDArray[Any], pores: npt.NDArray[Any]
) -> tuple[pd.DataFrame, int, int]:
    """The compartments' volumes table, and the numbers of mitochondria and pores."""
    voxel_volume = float(np.prod(sp))
    cell_v = int(np.count_nonzero(cell)) * voxel_volume
    nuc_v = int(np.count_nonzero(nucleus & cell)) * voxel_volume
    cyto_v = cell_v - nuc_v
    mito_v = int(np.count_nonzero(mito)) * voxel_volume
    pore_v = int(np.count_nonzero(pores)) * voxel_volume
    n_mito = int(np.unique(mito[mito > 0]).size)
    n_pores = int(np.unique(pores[pores > 0]).size)
    volumes = pd.DataFrame(
        {
            "compartment": ["cell", "nucleus", "cytoplasm", "mitochondria", "nuclear_pores"],
            "count": [1, 1, 1, n_mito, n_pores],
            "volume_um3": [cell_v, nuc_v, cyto_v, mito_v, pore_v],
        }
    )
    volumes["percent_of_cell"] = 100.0 * volumes["volume_um3"] / cell_v
    volumes["percent_of_cytoplasm"] = 100.0 * volumes["volume_um3"] / cyto_v
    volumes.loc[volumes["compartment"].isin(["cell", "nucleus"]), "percent_of_cytoplasm"] = np.nan
    return volumes, n_mito, n_pores


def _mito_distances(
    mito_table: pd.DataFrame, sp: Vec3, cell: Mask, nucleus: Mask
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The table with distances to nucleus and membrane; their correlations with S/V."""
    centroids = mito_table[["centroid_z_um", "centroid_y_um", "centroid_x_um"]].to_numpy()
    dist = distance_to_masks(centroids, {"nucleus": nucleus, "plasma_membrane": cell}, sp)
    mito_table = pd.concat([mito_table, dist], axis=1)
    corr_rows = []
    for key, col in _DISTANCES.items():
        for method in ("pearson", "spearman"):
            if len(mito_table) >= 3:
                res = correlation(mito_table[col], mito_table["surface_to_volume"], method)
                corr_rows.append(
                    {
                        "distance": key,
                        "method": method,
                        "r": res.r,
                        "pvalue": res.pvalue,
                        "n": res.n,
                    }
                )
    return mito_table, corr_rows


def _density_tests(
    pore_table: pd.DataFrame, parts: Sequence[pd.Series], bandwidth_um: float
) -> tuple[pd.DataFrame, str]:
    """t-tests of the pores' KDE density between the nucleus halves, and why none ran."""
    test_rows = []
    density_note = ""
    # With a bandwidth much smaller than the pore spacing every density is the point's own
    # kernel: the densities differ only below the KDE's error (1e-8 relative cut-off bound,
    # 1e-6 against scikit-learn), and a t-test of that would test rounding, not pores.
    spread = float(np.std(pore_table["kde_density"]))
    if spread <= 1e-6 * float(np.mean(pore_table["kde_density"])):
        density_note = (
            f"KDE densities are constant: no two pores lie within a few bandwidths "
            f"({bandwidth_um:g} µm) of each other; use a larger bandwidth to compare halves"
        )
        log.warning(density_note)
    elif min(len(p) for p in parts) < 2:
        density_note = "a nucleus half has fewer than 2 pores; no t-test"
        log.warning(density_note)
    else:
        for equal_var in (True, False):
            t = t_test(parts[0], parts[1], equal_var=equal_var)
            test_rows.append(
                {
                    "method": t.method,
                    "statistic": t.statistic,
                    "pvalue": t.pvalue,
                    "df": t.df,
                    "n_part1": t.n_a,
                    "n_part2": t.n_b,
                    "mean_part1": t.mean_a,
                    "mean_part2": t.mean_b,
                }
            )
    density_tests = pd.DataFrame(
        test_rows,
        columns=[
            "method",
            "statistic",
            "pvalue",
            "df",
            "n_part1",
            "n_part2",
            "mean_part1",
            "mean_part2",
        ],
    )
    return density_tests, density_note
