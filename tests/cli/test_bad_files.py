"""Bad *files* given to every command that reads one (issue 21, the campaign's file cases).

Each case builds one damaged input in a temporary folder (a truncated ``.zarray`` or
``zarr.json``, an unknown dtype or codec, a 2-D, negative or empty shape, a truncated
TIFF, a PNG decompression bomb, a text column in a CSV, a symlink loop, a ``.h5.gz``
that would inflate to gigabytes, a corrupt GEFF or CTC tracks file, a junk model file,
...) and runs the command as a user does, in a fresh ``python -m vrscope`` process.
What the user must see: exit code 2, exactly one line on stderr, no traceback, within a
time bound, under a memory bound (the child's peak RSS, measured by ``wait4``; address
space and file size are capped too, so a blow-up is a failure here, not a dead machine).

The inputs are damaged by hand (JSON edits, truncation, ``gzip``, Pillow, NumPy); the
reference for "clean" is the contract of the CLI (``vrscope.cli``), not its own output.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli._bounded import check_clean, run_cli

# --------------------------------------------------------------------------- inputs


def _blobs(shape: tuple[int, int, int]) -> np.ndarray:
    from skimage import draw

    rng = np.random.default_rng(3)
    lab = np.zeros(shape, np.uint32)
    for i in range(1, 9):
        e = draw.ellipsoid(*rng.integers(2, 4, 3))
        z, y, x = (int(rng.integers(0, s - d)) for s, d in zip(shape, e.shape, strict=True))
        lab[z : z + e.shape[0], y : y + e.shape[1], x : x + e.shape[2]][e] = i
    return lab


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good inputs, built once: v2 and v3 stores with labels, a checkpoint, tracks."""
    from analysis.io import write_labels
    from tests.analysis.io._support import write_with_ome_zarr

    root = tmp_path_factory.mktemp("good")
    lab = _blobs((16, 32, 32))
    image = np.random.default_rng(4).integers(0, 4000, lab.shape).astype(np.uint16)
    out: dict[str, Path] = {}
    for version, key in (("0.4", "v2"), ("0.5", "v3")):
        path = write_with_ome_zarr(root / f"{key}.zarr", image, version=version, chunks=(8, 16, 16))
        write_labels(path, "blobs", lab, chunks=(8, 16, 16))
        out[key] = path
    return out


def _level0_dirs(store: Path) -> list[Path]:
    """The level-0 array folders of the image and of every label image."""
    found = []
    for group in [store, *sorted((store / "labels").glob("*"))]:
        if not group.is_dir():
            continue
        meta = group / ".zattrs"
        if meta.is_file():
            attrs = json.loads(meta.read_text())
        elif (group / "zarr.json").is_file():
            attrs = json.loads((group / "zarr.json").read_text()).get("attributes", {})
            attrs = attrs.get("ome", attrs)
        else:
            continue
        if "multiscales" in attrs:
            found.append(group / attrs["multiscales"][0]["datasets"][0]["path"])
    assert found, store
    return found


def _array_meta(level: Path) -> Path:
    return level / ".zarray" if (level / ".zarray").is_file() else level / "zarr.json"


def _edit_array(change: Callable[[dict[str, Any], bool], None]) -> Callable[[Path], None]:
    """Damage every level-0 array's metadata with ``change(meta, is_v3)``."""

    def damage(store: Path) -> None:
        for level in _level0_dirs(store):
            meta = _array_meta(level)
            doc = json.loads(meta.read_text())
            change(doc, meta.name == "zarr.json")
            meta.write_text(json.dumps(doc))

    return damage


def _truncate_array_meta(store: Path) -> None:
    for level in _level0_dirs(store):
        meta = _array_meta(level)
        text = meta.read_bytes()
        meta.write_bytes(text[: len(text) // 2])


def _junk_array_meta(store: Path) -> None:
    for level in _level0_dirs(store):
        _array_meta(level).write_bytes(bytes(range(256)) * 4)


def _list_array_meta(store: Path) -> None:
    for level in _level0_dirs(store):
        _array_meta(level).write_text("[1, 2, 3]")


def _remove_array_meta(store: Path) -> None:
    for level in _level0_dirs(store):
        _array_meta(level).unlink()


def _truncate_group_meta(store: Path) -> None:
    meta = store / ".zattrs" if (store / ".zattrs").is_file() else store / "zarr.json"
    text = meta.read_bytes()
    meta.write_bytes(text[: len(text) // 2])


def _multiscales_not_a_list(store: Path) -> None:
    if (store / ".zattrs").is_file():
        doc = json.loads((store / ".zattrs").read_text())
        doc["multiscales"] = {"datasets": "0"}
        (store / ".zattrs").write_text(json.dumps(doc))
    else:
        doc = json.loads((store / "zarr.json").read_text())
        doc["attributes"]["ome"]["multiscales"] = {"datasets": "0"}
        (store / "zarr.json").write_text(json.dumps(doc))


def _set_dtype(value: str) -> Callable[[Path], None]:
    def change(doc: dict[str, Any], v3: bool) -> None:
        doc["data_type" if v3 else "dtype"] = value

    return _edit_array(change)


def _set_shape(value: Any) -> Callable[[Path], None]:
    def change(doc: dict[str, Any], v3: bool) -> None:
        doc["shape"] = value

    return _edit_array(change)


def _set_chunks(value: Any) -> Callable[[Path], None]:
    def change(doc: dict[str, Any], v3: bool) -> None:
        if v3:
            doc["chunk_grid"]["configuration"]["chunk_shape"] = value
        else:
            doc["chunks"] = value

    return _edit_array(change)


def _unknown_codec(doc: dict[str, Any], v3: bool) -> None:
    if v3:
        doc["codecs"] = [*doc["codecs"], {"name": "nosuchcodec", "configuration": {}}]
    else:
        doc["compressor"] = {"id": "nosuchcodec", "level": 3}


def _unknown_filter(doc: dict[str, Any], v3: bool) -> None:
    if v3:
        doc["codecs"] = [{"name": "nosuchfilter"}, *doc["codecs"]]
    else:
        doc["filters"] = [{"id": "nosuchfilter"}]


def _junk_fill(doc: dict[str, Any], v3: bool) -> None:
    doc["fill_value"] = "not a number"


STORE_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated-array-meta": _truncate_array_meta,
    "junk-array-meta": _junk_array_meta,
    "array-meta-a-list": _list_array_meta,
    "array-meta-missing": _remove_array_meta,
    "truncated-group-meta": _truncate_group_meta,
    "multiscales-not-a-list": _multiscales_not_a_list,
    "dtype-unknown": _set_dtype("<q17"),
    "dtype-object": _set_dtype("|O"),
    "dtype-a-number": _set_dtype(7),  # type: ignore[arg-type]
    "codec-unknown": _edit_array(_unknown_codec),
    "filter-unknown": _edit_array(_unknown_filter),
    "shape-2d": _set_shape([32, 32]),
    "shape-negative": _set_shape([-16, 32, 32]),
    "shape-empty": _set_shape([0, 32, 32]),
    "shape-text": _set_shape(["16", "32", "x"]),
    "shape-huge": _set_shape([10**12, 10**6, 10**6]),
    "chunks-zero": _set_chunks([0, 16, 16]),
    "chunks-negative": _set_chunks([-8, 16, 16]),
    "fill-junk": _edit_array(_junk_fill),
}


def _store_commands(s: str) -> dict[str, list[str]]:
    return {
        "info": ["info", s],
        "render": ["render", s, "--out", "a.png", "--size", "64", "48"],
        "measure": ["measure", s, "--labels", "blobs", "--out", "m.csv"],
        "density": ["density", s, "--labels", "blobs", "--out", "d.csv"],
        "convert": ["convert", s, "c.zarr"],
        "segment": ["segment", s, "--out", "seg.zarr"],
        "batch-measure": ["batch", "measure", s, "--labels", "blobs", "--out", "b.csv"],
    }


# Every damage through every command, on a v2 (NGFF 0.4) or v3 (0.5) store in turn, so
# that each damage is seen in both formats.
STORE_CASES = [
    (("v2", "v3")[(i + j) % 2], damage, command)
    for i, damage in enumerate(STORE_DAMAGE)
    for j, command in enumerate(_store_commands("s.zarr"))
]


@pytest.mark.parametrize(("version", "damage", "command"), STORE_CASES, ids=str)
def test_a_damaged_store_is_one_line(
    base: dict[str, Path], tmp_path: Path, version: str, damage: str, command: str
) -> None:
    shutil.copytree(base[version], tmp_path / "s.zarr")
    STORE_DAMAGE[damage](tmp_path / "s.zarr")
    why = check_clean(run_cli(_store_commands("s.zarr")[command], tmp_path))
    assert why is None, why


# --------------------------------------------------------------------------- file inputs


def _tiff(path: Path) -> None:
    import tifffile

    tifffile.imwrite(path, np.arange(8 * 64 * 64, dtype=np.uint16).reshape(8, 64, 64))


def _truncated_tiff(tmp: Path) -> str:
    _tiff(tmp / "t.tif")
    data = (tmp / "t.tif").read_bytes()
    (tmp / "t.tif").write_bytes(data[: len(data) // 3])
    return "t.tif"


def _tiff_header_only(tmp: Path) -> str:
    _tiff(tmp / "t.tif")
    (tmp / "t.tif").write_bytes((tmp / "t.tif").read_bytes()[:8])
    return "t.tif"


def _empty_tiff(tmp: Path) -> str:
    (tmp / "t.tif").write_bytes(b"")
    return "t.tif"


def _junk_tiff(tmp: Path) -> str:
    (tmp / "t.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 8)
    return "t.tif"


def _png_bomb(tmp: Path) -> str:
    """A folder of PNG slices, one of them 30000 x 30000 pixels of zeros (~1 MB on disk,
    900 MB decoded): over Pillow's decompression-bomb limit."""
    from PIL import Image

    folder = tmp / "slices"
    folder.mkdir()
    for z in range(3):
        Image.fromarray(np.full((32, 32), z, np.uint8)).save(folder / f"s{z:02d}.png")
    _write_png(folder / "s03.png", 30000, 30000)
    return "slices"


def _png_bomb_single(tmp: Path) -> str:
    folder = tmp / "slices"
    folder.mkdir()
    _write_png(folder / "s00.png", 40000, 40000)
    return "slices"


def _write_png(path: Path, width: int, height: int) -> None:
    """A greyscale PNG of zeros written by hand (zlib streams the rows, so the file is
    made without holding the image)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def _truncated_png(tmp: Path) -> str:
    from PIL import Image

    folder = tmp / "slices"
    folder.mkdir()
    for z in range(3):
        Image.fromarray(np.full((32, 32), z, np.uint8)).save(folder / f"s{z:02d}.png")
    data = (folder / "s01.png").read_bytes()
    (folder / "s01.png").write_bytes(data[: len(data) // 2])
    return "slices"


def _mixed_png_sizes(tmp: Path) -> str:
    from PIL import Image

    folder = tmp / "slices"
    folder.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "s00.png")
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(folder / "s01.png")
    return "slices"


def _junk_png(tmp: Path) -> str:
    folder = tmp / "slices"
    folder.mkdir()
    (folder / "s00.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 100)
    (folder / "s01.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 100)
    return "slices"


def _npy(tmp: Path, arr: np.ndarray) -> str:
    np.save(tmp / "v.npy", arr, allow_pickle=True)
    return "v.npy"


def _truncated_npy(tmp: Path) -> str:
    _npy(tmp, np.zeros((8, 32, 32), np.uint16))
    data = (tmp / "v.npy").read_bytes()
    (tmp / "v.npy").write_bytes(data[: len(data) // 2])
    return "v.npy"


def _npy_header_lies(tmp: Path) -> str:
    """The header promises more data than the file holds."""
    _npy(tmp, np.zeros((8, 32, 32), np.uint8))
    data = (tmp / "v.npy").read_bytes()
    (tmp / "v.npy").write_bytes(data.replace(b"(8, 32, 32)", b"(8, 32, 99)"))
    return "v.npy"


def _npy_header_broken(tmp: Path) -> str:
    """The header's shape is cut mid-tuple (numpy parses it as a Python literal)."""
    _npy(tmp, np.zeros((8, 32, 32), np.uint8))
    data = (tmp / "v.npy").read_bytes()
    (tmp / "v.npy").write_bytes(data.replace(b"(8, 32, 32)", b"(8, 99999, "))
    return "v.npy"


def _npy_object(tmp: Path) -> str:
    return _npy(tmp, np.array([[{"a": 1}]] * 2, dtype=object).reshape(2, 1, 1))


def _npy_1d(tmp: Path) -> str:
    return _npy(tmp, np.arange(10, dtype=np.uint16))


def _npy_empty(tmp: Path) -> str:
    return _npy(tmp, np.zeros((0, 32, 32), np.uint16))


def _npy_complex(tmp: Path) -> str:
    return _npy(tmp, np.zeros((4, 8, 8), np.complex64))


def _npy_text(tmp: Path) -> str:
    (tmp / "v.npy").write_text("this is not an array\n")
    return "v.npy"


def _h5_junk(tmp: Path) -> str:
    (tmp / "v.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 16)
    return "v.h5:data"


def _h5_missing_dataset(tmp: Path) -> str:
    import h5py

    with h5py.File(tmp / "v.h5", "w") as f:
        f["other"] = np.zeros((4, 8, 8), np.uint8)
    return "v.h5:data"


def _h5_strings(tmp: Path) -> str:
    import h5py

    with h5py.File(tmp / "v.h5", "w") as f:
        f["data"] = np.array([[[b"a", b"b"]]])
    return "v.h5:data"


def _h5gz_bomb(tmp: Path) -> str:
    """About 2 MB of gzip that inflates to 2 GiB of zeros (not an HDF5 file)."""
    block = b"\x00" * (1 << 24)
    with gzip.open(tmp / "v.h5.gz", "wb", compresslevel=9) as f:
        for _ in range(128):
            f.write(block)
    return "v.h5.gz:data"


def _h5gz_not_gzip(tmp: Path) -> str:
    (tmp / "v.h5.gz").write_bytes(b"not gzip at all" * 50)
    return "v.h5.gz:data"


def _h5gz_truncated(tmp: Path) -> str:
    import h5py

    with h5py.File(tmp / "v.h5", "w") as f:
        f["data"] = np.random.default_rng(0).integers(0, 255, (8, 64, 64)).astype(np.uint8)
    raw = (tmp / "v.h5").read_bytes()
    (tmp / "v.h5").unlink()
    data = gzip.compress(raw)
    (tmp / "v.h5.gz").write_bytes(data[: len(data) // 2])
    return "v.h5.gz:data"


def _symlink_loop(tmp: Path) -> str:
    os.symlink(tmp / "loop.zarr", tmp / "loop.zarr")
    return "loop.zarr"


def _symlink_cycle(tmp: Path) -> str:
    os.symlink(tmp / "b.zarr", tmp / "a.zarr")
    os.symlink(tmp / "a.zarr", tmp / "b.zarr")
    return "a.zarr"


def _a_plain_file(tmp: Path) -> str:
    (tmp / "f.zarr").write_text("a file, not a store\n")
    return "f.zarr"


def _an_empty_folder(tmp: Path) -> str:
    (tmp / "e.zarr").mkdir()
    return "e.zarr"


CONVERT_INPUTS: dict[str, Callable[[Path], str]] = {
    "truncated-tiff": _truncated_tiff,
    "tiff-header-only": _tiff_header_only,
    "empty-tiff": _empty_tiff,
    "junk-tiff": _junk_tiff,
    "png-bomb": _png_bomb,
    "png-bomb-alone": _png_bomb_single,
    "truncated-png": _truncated_png,
    "png-sizes-differ": _mixed_png_sizes,
    "junk-png": _junk_png,
    "truncated-npy": _truncated_npy,
    "npy-header-lies": _npy_header_lies,
    "npy-header-broken": _npy_header_broken,
    "npy-object": _npy_object,
    "npy-1d": _npy_1d,
    "npy-empty": _npy_empty,
    "npy-complex": _npy_complex,
    "npy-text": _npy_text,
    "h5-junk": _h5_junk,
    "h5-missing-dataset": _h5_missing_dataset,
    "h5-strings": _h5_strings,
    "h5gz-bomb": _h5gz_bomb,
    "h5gz-not-gzip": _h5gz_not_gzip,
    "h5gz-truncated": _h5gz_truncated,
    "symlink-loop": _symlink_loop,
    "symlink-cycle": _symlink_cycle,
    "plain-file": _a_plain_file,
    "empty-folder": _an_empty_folder,
}


@pytest.mark.parametrize("kind", CONVERT_INPUTS, ids=str)
@pytest.mark.parametrize("role", ["input", "labels-from"])
def test_convert_refuses_a_bad_input_in_one_line(
    base: dict[str, Path], tmp_path: Path, kind: str, role: str
) -> None:
    spec = CONVERT_INPUTS[kind](tmp_path)
    if role == "input":
        argv = ["convert", spec, "out.zarr", "--voxel-size", "1", "1", "1"]
    else:
        _tiff(tmp_path / "good.tif")
        argv = ["convert", "good.tif", "out.zarr", "--voxel-size", "1", "1", "1"]
        argv += ["--labels-from", spec]
    why = check_clean(run_cli(argv, tmp_path))
    assert why is None, why


# --------------------------------------------------------------------------- lookup tables


def _lookup_text_csv(tmp: Path) -> str:
    (tmp / "lut.csv").write_text("old,new\n1,2\nthree,4\n")
    return "lut.csv"


def _lookup_one_column(tmp: Path) -> str:
    np.save(tmp / "lut.npy", np.arange(5))
    return "lut.npy"


def _lookup_floats(tmp: Path) -> str:
    np.save(tmp / "lut.npy", np.array([[1.5, np.nan], [2, np.inf]]))
    return "lut.npy"


def _lookup_negative(tmp: Path) -> str:
    np.save(tmp / "lut.npy", np.array([[1, -5], [2, 3]]))
    return "lut.npy"


def _lookup_empty_csv(tmp: Path) -> str:
    (tmp / "lut.csv").write_text("")
    return "lut.csv"


LOOKUPS: dict[str, Callable[[Path], str]] = {
    "text-csv": _lookup_text_csv,
    "one-column": _lookup_one_column,
    "floats": _lookup_floats,
    "negative": _lookup_negative,
    "empty-csv": _lookup_empty_csv,
    "h5gz-bomb": _h5gz_bomb,
    "h5-junk": _h5_junk,
}


@pytest.mark.parametrize("kind", LOOKUPS, ids=str)
def test_convert_refuses_a_bad_lookup_table(tmp_path: Path, kind: str) -> None:
    spec = LOOKUPS[kind](tmp_path)
    _tiff(tmp_path / "good.tif")
    argv = ["convert", "good.tif", "out.zarr", "--voxel-size", "1", "1", "1"]
    argv += ["--labels-from", "good.tif", "--labels-lookup", spec]
    why = check_clean(run_cli(argv, tmp_path))
    assert why is None, why


# --------------------------------------------------------------------------- tables


GOOD_HEADER = "label,centroid_z_um,centroid_y_um,centroid_x_um"

TABLES: dict[str, str] = {
    "text-column": f"{GOOD_HEADER}\n1,1.0,2.0,3.0\n2,one,2.0,3.0\n3,1.5,2.5,3.5\n",
    "nan-centroid": f"{GOOD_HEADER}\n1,1.0,2.0,3.0\n2,nan,2.0,3.0\n3,1.5,2.5,3.5\n",
    "inf-centroid": f"{GOOD_HEADER}\n1,1.0,2.0,3.0\n2,inf,2.0,3.0\n3,1.5,2.5,3.5\n",
    "missing-columns": "label,area\n1,2\n2,3\n",
    "header-only": f"{GOOD_HEADER}\n",
    "empty-file": "",
    "ragged-rows": f"{GOOD_HEADER}\n1,1.0,2.0\n2,1,2,3,4,5,6\n",
    "binary": "\x00\x01\x02\x03" * 64,
}


@pytest.mark.parametrize("kind", TABLES, ids=str)
def test_density_refuses_a_bad_table(tmp_path: Path, kind: str) -> None:
    (tmp_path / "t.csv").write_text(TABLES[kind])
    why = check_clean(run_cli(["density", "t.csv", "--out", "d.csv"], tmp_path))
    assert why is None, why


def test_density_refuses_a_junk_parquet(tmp_path: Path) -> None:
    (tmp_path / "t.parquet").write_bytes(b"PAR1" + b"junk" * 64)
    why = check_clean(run_cli(["density", "t.parquet", "--out", "d.csv"], tmp_path))
    assert why is None, why


# --------------------------------------------------------------------------- tracks

SPOTS_HEADER = "track_id,t,z,y,x"

SPOT_TABLES: dict[str, str] = {
    "text-column": f"{SPOTS_HEADER}\n1,0,1,2,3\n1,one,1,2,3\n",
    "nan-time": f"{SPOTS_HEADER}\n1,0,1,2,3\n1,nan,1,2,3\n",
    "inf-position": f"{SPOTS_HEADER}\n1,0,1,2,3\n1,1,inf,2,3\n",
    "huge-id": f"{SPOTS_HEADER}\n{2**70},0,1,2,3\n",
    "missing-columns": "a,b\n1,2\n",
    "header-only": f"{SPOTS_HEADER}\n",
    "empty-file": "",
    "binary": "\x00\xff\x01" * 100,
}


def _spots(tmp: Path, kind: str) -> str:
    (tmp / "spots.csv").write_text(SPOT_TABLES[kind])
    return "spots.csv"


def _good_ctc(tmp: Path) -> Path:
    import tifffile

    folder = tmp / "ctc"
    folder.mkdir()
    for t in range(2):
        mask = np.zeros((8, 16, 16), np.uint16)
        mask[2:5, 3:7, 3 + t : 7 + t] = 1
        tifffile.imwrite(folder / f"man_track{t:03d}.tif", mask)
    (folder / "man_track.txt").write_text("1 0 1 0\n")
    return folder


def _ctc_text(tmp: Path) -> str:
    folder = _good_ctc(tmp)
    (folder / "man_track.txt").write_text("1 zero one 0\n")
    return "ctc"


def _ctc_short_rows(tmp: Path) -> str:
    folder = _good_ctc(tmp)
    (folder / "man_track.txt").write_text("1 0\n2\n")
    return "ctc"


def _ctc_parent_loop(tmp: Path) -> str:
    folder = _good_ctc(tmp)
    (folder / "man_track.txt").write_text("1 0 1 2\n2 0 1 1\n")
    return "ctc"


def _ctc_negative(tmp: Path) -> str:
    folder = _good_ctc(tmp)
    (folder / "man_track.txt").write_text("-1 0 1 0\n")
    return "ctc"


def _ctc_truncated_mask(tmp: Path) -> str:
    folder = _good_ctc(tmp)
    mask = folder / "man_track001.tif"
    mask.write_bytes(mask.read_bytes()[:100])
    return "ctc"


def _ctc_end_before_start(tmp: Path) -> str:
    folder = _good_ctc(tmp)
    (folder / "man_track.txt").write_text("1 5 1 0\n")
    return "ctc"


def _good_geff(tmp: Path) -> Path:
    from analysis.io import write_geff
    from analysis.tracks import TrackGraph

    g = TrackGraph()
    a = g.add_node(0, (1.0, 2.0, 3.0))
    b = g.add_node(1, (1.0, 2.5, 3.0))
    g.add_edge(a, b)
    write_geff(g, tmp / "t.geff")
    return tmp / "t.geff"


def _geff_edit(change: Callable[[Path], None]) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        change(_good_geff(tmp))
        return "t.geff"

    return make


def _geff_truncate_attrs(store: Path) -> None:
    for meta in [store / ".zattrs", store / "zarr.json"]:
        if meta.is_file():
            meta.write_bytes(meta.read_bytes()[:20])


def _geff_remove_nodes(store: Path) -> None:
    shutil.rmtree(store / "nodes")


def _geff_truncate_ids(store: Path) -> None:
    for meta in (store / "nodes" / "ids").glob("*"):
        if meta.name in (".zarray", "zarr.json"):
            meta.write_bytes(meta.read_bytes()[:10])


def _geff_junk_chunks(store: Path) -> None:
    for chunk in (store / "edges").rglob("*"):
        if chunk.is_file() and not chunk.name.startswith((".", "zarr.json")):
            chunk.write_bytes(b"junk")


def _geff_ids_dtype(store: Path) -> None:
    for meta in (store / "nodes" / "ids").glob("*"):
        if meta.name in (".zarray", "zarr.json"):
            doc = json.loads(meta.read_text())
            doc["data_type" if meta.name == "zarr.json" else "dtype"] = "<q17"
            meta.write_text(json.dumps(doc))


def _geff_edges_2d_wrong(store: Path) -> None:
    for meta in (store / "edges" / "ids").glob("*"):
        if meta.name in (".zarray", "zarr.json"):
            doc = json.loads(meta.read_text())
            doc["shape"] = [int(doc["shape"][0]), 7]
            meta.write_text(json.dumps(doc))


TRACK_INPUTS: dict[str, Callable[[Path], str]] = {
    **{f"csv-{k}": (lambda tmp, k=k: _spots(tmp, k)) for k in SPOT_TABLES},
    "ctc-text": _ctc_text,
    "ctc-short-rows": _ctc_short_rows,
    "ctc-parent-loop": _ctc_parent_loop,
    "ctc-negative-id": _ctc_negative,
    "ctc-truncated-mask": _ctc_truncated_mask,
    "ctc-end-before-start": _ctc_end_before_start,
    "geff-truncated-attrs": _geff_edit(_geff_truncate_attrs),
    "geff-no-nodes": _geff_edit(_geff_remove_nodes),
    "geff-truncated-ids": _geff_edit(_geff_truncate_ids),
    "geff-junk-edge-chunks": _geff_edit(_geff_junk_chunks),
    "geff-ids-dtype": _geff_edit(_geff_ids_dtype),
    "geff-edges-shape": _geff_edit(_geff_edges_2d_wrong),
    "geff-empty-folder": _an_empty_folder,
    "symlink-loop": _symlink_loop,
}


@pytest.mark.parametrize("kind", TRACK_INPUTS, ids=str)
@pytest.mark.parametrize("action", ["convert", "stats"])
def test_tracks_refuses_a_bad_tracks_file(tmp_path: Path, kind: str, action: str) -> None:
    spec = TRACK_INPUTS[kind](tmp_path)
    if action == "convert":
        argv = ["tracks", "convert", spec, "out.csv" if not spec.endswith(".csv") else "o.geff"]
    else:
        argv = ["tracks", "stats", spec, "--out", "stats.csv"]
    why = check_clean(run_cli(argv, tmp_path))
    assert why is None, why


# --------------------------------------------------------------------------- models


def _junk(name: str, data: bytes) -> Callable[[Path], str]:
    def make(tmp: Path) -> str:
        (tmp / name).write_bytes(data)
        return name

    return make


def _junk_zip_pt(tmp: Path) -> str:
    import zipfile

    with zipfile.ZipFile(tmp / "m.pt", "w") as zf:
        zf.writestr("m/code/__torch__.py", "def forward(self):\n  return junk(\n")
        zf.writestr("m/constants.pkl", b"\x80\x02junk")
    return "m.pt"


def _yaml_not_a_mapping(tmp: Path) -> str:
    (tmp / "rdf.yaml").write_text("- a\n- b\n")
    return "rdf.yaml"


def _yaml_broken(tmp: Path) -> str:
    (tmp / "rdf.yaml").write_text("format_version: 0.5.3\ninputs: [\n")
    return "rdf.yaml"


def _yaml_missing_weights(tmp: Path) -> str:
    (tmp / "rdf.yaml").write_text(
        "format_version: 0.5.3\ntype: model\nname: x\n"
        "weights:\n  onnx:\n    source: missing.onnx\n    sha256: " + "0" * 64 + "\n"
    )
    return "rdf.yaml"


def _yaml_billion_laughs(tmp: Path) -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    (tmp / "rdf.yaml").write_text("\n".join(lines) + "\n")
    return "rdf.yaml"


def _empty_model_folder(tmp: Path) -> str:
    (tmp / "model").mkdir()
    return "model"


def _safetensors_header_lies(tmp: Path) -> str:
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4]}})
    data = header.encode()
    (tmp / "m.safetensors").write_bytes(struct.pack("<Q", len(data)) + data + b"\x00" * 4)
    return "m.safetensors"


def _safetensors_no_description(tmp: Path) -> str:
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp / "m.safetensors"))
    return "m.safetensors"


MODELS: dict[str, Callable[[Path], str]] = {
    "junk-pt": _junk("m.pt", b"junk" * 100),
    "junk-onnx": _junk("m.onnx", b"\x08\x07junk" * 100),
    "empty-onnx": _junk("m.onnx", b""),
    "junk-safetensors": _junk("m.safetensors", b"\xff" * 64),
    "junk-torchscript": _junk("m.ts", b"PK\x03\x04junk"),
    "torchscript-bad-code": _junk_zip_pt,
    "junk-yaml": _junk("m.yaml", b"\x00\xff\xfe"),
    "yaml-not-a-mapping": _yaml_not_a_mapping,
    "yaml-broken": _yaml_broken,
    "yaml-missing-weights": _yaml_missing_weights,
    "yaml-billion-laughs": _yaml_billion_laughs,
    "empty-folder": _empty_model_folder,
    "safetensors-header-lies": _safetensors_header_lies,
    "safetensors-no-description": _safetensors_no_description,
    "unknown-suffix": _junk("m.bin", b"junk"),
}


@pytest.mark.parametrize("kind", MODELS, ids=str)
@pytest.mark.parametrize("command", ["infer", "export-model"])
def test_a_junk_model_file_is_one_line(tmp_path: Path, kind: str, command: str) -> None:
    spec = MODELS[kind](tmp_path)
    if command == "infer":
        np.save(tmp_path / "v.npy", np.zeros((4, 16, 16), np.float32))
        argv = ["infer", "v.npy", "--model", spec, "--out", "p.npy"]
    else:
        argv = ["export-model", spec, "--format", "onnx", "--out", "e.onnx"]
    why = check_clean(run_cli(argv, tmp_path))
    assert why is None, why


# --------------------------------------------------------------------------- serve, info, projects


PROJECT_INPUTS: dict[str, Callable[[Path], str]] = {
    "symlink-loop": _symlink_loop,
    "symlink-cycle": _symlink_cycle,
    "plain-file": _a_plain_file,
}


def _project_with(tmp: Path, change: Callable[[Path], None]) -> str:
    from analysis.project import Project

    folder = tmp / "proj"
    Project.create(folder).close()
    change(folder)
    return "proj"


@pytest.mark.parametrize("kind", PROJECT_INPUTS, ids=str)
@pytest.mark.parametrize(
    "command",
    ["serve", "info", "export", "labels-undo", "render", "measure", "profile", "train"],
)
def test_a_symlink_loop_or_a_file_is_one_line(tmp_path: Path, kind: str, command: str) -> None:
    spec = PROJECT_INPUTS[kind](tmp_path)
    argv = {
        "serve": ["serve", spec, "--port", "0", "--duration", "5"],
        "info": ["info", spec],
        "export": ["export", spec, "--out", "x.geff"],
        "labels-undo": ["labels", "undo", spec],
        "render": ["render", spec, "--out", "a.png"],
        "measure": ["measure", spec, "--labels", "x", "--out", "m.csv"],
        "profile": ["profile", spec, "--out", "rep"],
        "train": ["train", spec, "--labels", "x", "--out", "model"],
    }[command]
    why = check_clean(run_cli(argv, tmp_path))
    assert why is None, why


@pytest.mark.parametrize("command", ["render", "convert"])
def test_no_progress_bars_outside_a_terminal(
    base: dict[str, Path], tmp_path: Path, command: str
) -> None:
    """Bars are for a terminal: in a log or a pipe, stderr keeps to errors (one line)."""
    shutil.copytree(base["v3"], tmp_path / "s.zarr")
    argv = _store_commands("s.zarr")[command]
    outcome = run_cli(argv, tmp_path)
    assert outcome.code == 0, outcome.err
    assert outcome.err == []


def test_the_generator_makes_at_least_300_cases() -> None:
    n = (
        len(STORE_CASES)
        + 2 * len(CONVERT_INPUTS)
        + len(LOOKUPS)
        + len(TABLES)
        + 1
        + 2 * len(TRACK_INPUTS)
        + 2 * len(MODELS)
        + 8 * len(PROJECT_INPUTS)
    )
    assert n >= 300, n  # the issue asks for 300 generated bad inputs in the suite
