"""One conformance test class for every VolumeSource (like zarr-python's ``StoreTests``).

Each implementation provides a ``case`` fixture: the source and, per level, the
array it must return, obtained independently of the source (NumPy formulas,
scikit-image pyramids, or the arrays read straight from zarr after ome-zarr-py
wrote them).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr
from skimage.transform import downscale_local_mean

from analysis.errors import ParameterError
from analysis.io import ZarrVolumeSource, open_volume
from analysis.volume import ArrayVolumeSource, FunctionVolumeSource, VolumeSource
from tests.analysis.io._support import serve_directory, write_with_ome_zarr

Case = tuple[VolumeSource, list[np.ndarray]]


def _regions(shape: tuple[int, ...], n: int, seed: int) -> list[tuple[slice, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        reg = []
        for size in shape:
            a, b = sorted(rng.integers(0, size + 1, 2))
            reg.append(slice(int(a), int(max(b, a + 1))))
        out.append(tuple(reg))
    # Edge cases: the last voxel, a single plane, everything.
    out.append(tuple(slice(s - 1, s) for s in shape))
    out.append((slice(0, 1),) + tuple(slice(None) for _ in shape[1:]))
    out.append(tuple(slice(None) for _ in shape))
    return out


class VolumeSourceTests:
    """Behaviour every VolumeSource must have. Subclasses provide ``case``."""

    @pytest.fixture
    def source(self, case: Case) -> VolumeSource:
        return case[0]

    @pytest.fixture
    def reference(self, case: Case) -> list[np.ndarray]:
        return case[1]

    def test_is_volume_source(self, source: VolumeSource) -> None:
        assert isinstance(source, VolumeSource)
        assert isinstance(source.name, str) and source.name

    def test_axes_convention(self, source: VolumeSource) -> None:
        axes = "".join(source.axes)
        assert axes[-3:] == "zyx"
        positions = ["tczyx".index(a) for a in axes]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)

    def test_levels_match_reference(
        self, source: VolumeSource, reference: list[np.ndarray]
    ) -> None:
        assert len(source.levels) == len(reference)
        for level, ref in zip(source.levels, reference, strict=True):
            assert level.shape == ref.shape
            assert len(level.chunks) == ref.ndim and all(c >= 1 for c in level.chunks)
            assert len(level.scale) == ref.ndim and all(s > 0 for s in level.scale)
            assert len(level.translation) == ref.ndim
            assert isinstance(level.path, str) and level.path

    def test_coarser_levels_have_larger_voxels(self, source: VolumeSource) -> None:
        for fine, coarse in zip(source.levels, source.levels[1:], strict=False):
            for ax, f_scale, c_scale, f_n, c_n in zip(
                source.axes, fine.scale, coarse.scale, fine.shape, coarse.shape, strict=True
            ):
                if ax in "zyx":
                    assert c_scale >= f_scale and c_n <= f_n
                    # Physical extent is preserved up to one coarse voxel.
                    assert abs(c_scale * c_n - f_scale * f_n) <= c_scale + 1e-9

    def test_read_whole_levels(self, source: VolumeSource, reference: list[np.ndarray]) -> None:
        for k, ref in enumerate(reference):
            got = source.read(k)
            assert got.dtype == source.dtype == ref.dtype
            np.testing.assert_array_equal(got, ref)

    def test_read_regions(self, source: VolumeSource, reference: list[np.ndarray]) -> None:
        for k in (0, len(reference) - 1):
            for reg in _regions(reference[k].shape, 8, seed=k):
                np.testing.assert_array_equal(source.read(k, reg), reference[k][reg])

    def test_partial_region_and_clipping(
        self, source: VolumeSource, reference: list[np.ndarray]
    ) -> None:
        ref = reference[0]
        # Fewer slices than axes: the rest is whole; stops past the end are clipped.
        np.testing.assert_array_equal(source.read(0, (slice(0, 1),)), ref[0:1])
        big = tuple(slice(1, s + 100) for s in ref.shape)
        np.testing.assert_array_equal(source.read(0, big), ref[big])
        empty = source.read(0, tuple(slice(1, 1) for _ in ref.shape))
        assert empty.shape == (0,) * ref.ndim

    def test_bad_requests_raise_parameter_error(self, source: VolumeSource) -> None:
        n = len(source.levels)
        ndim = len(source.axes)
        with pytest.raises(ParameterError, match=str(n)):
            source.read(n)
        with pytest.raises(ParameterError):
            source.read(-1)
        with pytest.raises(ParameterError, match="axes"):
            source.read(0, (slice(None),) * (ndim + 1))
        with pytest.raises(ParameterError, match="step"):
            source.read(0, (slice(None, None, 2),))

    def test_concurrent_reads(self, source: VolumeSource, reference: list[np.ndarray]) -> None:
        # The streaming scheduler reads from worker threads.
        regions = _regions(reference[0].shape, 12, seed=99)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda r: source.read(0, r), regions))
        for reg, got in zip(regions, results, strict=True):
            np.testing.assert_array_equal(got, reference[0][reg])


def _volume(shape: tuple[int, ...] = (20, 34, 46), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, shape, dtype=np.uint16)


class TestArrayVolumeSource(VolumeSourceTests):
    @pytest.fixture
    def case(self) -> Case:
        base = _volume((16, 32, 48)).astype(np.float32)
        levels = [base, downscale_local_mean(base, 2).astype(np.float32)]
        return ArrayVolumeSource(levels, scale_um=(0.5, 0.2, 0.2), chunks=(8, 8, 8)), levels


class TestFunctionVolumeSource(VolumeSourceTests):
    @pytest.fixture
    def case(self) -> Case:
        shape = (40, 36, 52)

        def value(level: int, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
            return ((z * 7 + y * 3 + x + 11 * level) % 251).astype(np.uint8)

        def fn(level: int, region: tuple[slice, ...]) -> np.ndarray:
            z, y, x = np.meshgrid(*(np.arange(s.start, s.stop) for s in region), indexing="ij")
            return value(level, z, y, x)

        source = FunctionVolumeSource(shape, fn, chunks=(16, 16, 16))
        reference = [
            np.fromfunction(lambda z, y, x, k=k: value(k, z, y, x), lev.shape, dtype=np.int64)
            for k, lev in enumerate(source.levels)
        ]
        return source, reference


def _ome_zarr_store(root: Path, version: str) -> tuple[Path, list[np.ndarray]]:
    """A store written by ome-zarr-py; reference levels read back with zarr directly."""
    path = write_with_ome_zarr(
        root / f"img{version}.zarr",
        _volume(),
        version=version,
        scale={"z": 0.03, "y": 0.01, "x": 0.01},
        units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
        chunks=(8, 16, 16),
    )
    group = zarr.open_group(str(path), mode="r")
    reference = [np.asarray(group[f"s{k}"][...]) for k in range(3)]
    return path, reference


@pytest.fixture(scope="module")
def v2_local(tmp_path_factory: pytest.TempPathFactory) -> Case:
    path, reference = _ome_zarr_store(tmp_path_factory.mktemp("v2"), "0.4")
    source = open_volume(path)
    assert isinstance(source, ZarrVolumeSource) and source.ngff_version == "0.4"
    return source, reference


@pytest.fixture(scope="module")
def v3_local(tmp_path_factory: pytest.TempPathFactory) -> Case:
    path, reference = _ome_zarr_store(tmp_path_factory.mktemp("v3"), "0.5")
    source = open_volume(path)
    assert isinstance(source, ZarrVolumeSource) and source.ngff_version == "0.5"
    return source, reference


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("http")
    with serve_directory(root) as (url, _requests):
        yield url, root


def _http_case(http_root: tuple[str, Path], version: str) -> Case:
    url, root = http_root
    _, reference = _ome_zarr_store(root, version)
    source = open_volume(f"{url}/img{version}.zarr")
    assert source.ngff_version == version and source.url.startswith("http://")
    return source, reference


@pytest.fixture(scope="module")
def v2_http(http_root: tuple[str, Path]) -> Case:
    return _http_case(http_root, "0.4")


@pytest.fixture(scope="module")
def v3_http(http_root: tuple[str, Path]) -> Case:
    return _http_case(http_root, "0.5")


class TestZarrVolumeSourceV2Local(VolumeSourceTests):
    @pytest.fixture
    def case(self, v2_local: Case) -> Case:
        return v2_local


class TestZarrVolumeSourceV3Local(VolumeSourceTests):
    @pytest.fixture
    def case(self, v3_local: Case) -> Case:
        return v3_local


@pytest.mark.network
class TestZarrVolumeSourceV2Http(VolumeSourceTests):
    @pytest.fixture
    def case(self, v2_http: Case) -> Case:
        return v2_http


@pytest.mark.network
class TestZarrVolumeSourceV3Http(VolumeSourceTests):
    @pytest.fixture
    def case(self, v3_http: Case) -> Case:
        return v3_http
