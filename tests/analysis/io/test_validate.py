"""NGFF metadata validation against the official OME-NGFF JSON-schema test suites.

Every case of ``ngff/{0.4,0.5}/tests/{image,label}_suite.json`` from the shared
external test data must be accepted or rejected exactly as the suite says, and
a rejection must name the offending field: the JSON path in the message must
exist in the case's data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from analysis.errors import FormatError
from analysis.io import open_labels, open_volume, validate_ngff, write_labels, write_ngff
from tests.conftest import TESTDATA

ROOT = Path(__file__).resolve().parents[3]


def _suite_cases() -> list[Any]:
    cases = []
    for version in ("0.4", "0.5"):
        for kind in ("image", "label"):
            path = TESTDATA / "ngff" / version / "tests" / f"{kind}_suite.json"
            if not path.is_file():
                # A missing suite must fail, not silently shrink the parametrization.
                cases.append(pytest.param(version, kind, None, id=f"{version}-{kind}-MISSING"))
                continue
            suite = json.loads(path.read_text())
            for i, case in enumerate(suite["tests"]):
                label = case.get("formerly") or case.get("description") or str(i)
                label = label.removesuffix(".json")
                cases.append(pytest.param(version, kind, case, id=f"{version}-{kind}-{label}"))
    return cases


def _resolve(data: Any, path: str) -> Any:
    """Follow ``a.b[0].c`` through ``data``; raise KeyError/IndexError when absent."""
    node = data
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        node = node[int(index)] if index else node[name]
    return node


@pytest.mark.parametrize(("version", "kind", "case"), _suite_cases())
def test_ngff_suite(version: str, kind: str, case: dict[str, Any] | None) -> None:
    if case is None:
        pytest.fail(f"NGFF {version} {kind} suite not found under {TESTDATA}")
    if case["valid"]:
        validate_ngff(case["data"], kind, version)  # type: ignore[arg-type]
        return
    with pytest.raises(FormatError) as info:
        validate_ngff(case["data"], kind, version)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    match = re.search(r" at (\S+): ", message)
    assert match, message
    field = match.group(1)
    assert field.startswith("ome." if version == "0.5" else "")
    top = {"image": ("multiscales", "omero"), "label": ("image-label",)}[kind]
    assert any(t in field for t in top), message
    # The named field exists in the offending document (or is its missing property's parent).
    _resolve(case["data"], field)


# Cases whose offending field is unambiguous from the suite's file name.
_EXPECTED_FIELD = {
    "invalid/invalid_path.json": "datasets[0].path",
    "invalid/invalid_version.json": "multiscales[0].version",
    "invalid/duplicate_scale.json": "datasets[0].coordinateTransformations",
    "invalid/invalid_channels_color.json": "omero.channels[0].color",
    "invalid/invalid_channels_window.json": "omero.channels[0].window",
    "invalid/no_axes.json": "multiscales[0].axes",
    "invalid/missing_axes.json": "multiscales[0]",
    "invalid/too_many_space_axes.json": "multiscales[0].axes",
}


@pytest.mark.parametrize(
    ("version", "formerly"),
    [
        (v, f)
        for v in ("0.4", "0.5")
        for f in sorted(_EXPECTED_FIELD)
        if not (v == "0.5" and f == "invalid/invalid_version.json")  # not in the 0.5 suite
    ],
)
def test_rejection_names_the_specific_field(testdata: Path, version: str, formerly: str) -> None:
    suite = json.loads((testdata / "ngff" / version / "tests" / "image_suite.json").read_text())
    case = next(c for c in suite["tests"] if c.get("formerly") == formerly)
    with pytest.raises(FormatError, match=re.escape(_EXPECTED_FIELD[formerly])):
        validate_ngff(case["data"], "image", version)


def test_version_is_detected(testdata: Path) -> None:
    for version in ("0.4", "0.5"):
        suite = json.loads((testdata / "ngff" / version / "tests" / "image_suite.json").read_text())
        bad = next(c for c in suite["tests"] if c.get("formerly") == "invalid/no_axes.json")
        with pytest.raises(FormatError, match=f"NGFF {version} "):
            validate_ngff(bad["data"])
    with pytest.raises(FormatError, match="unsupported NGFF version '0.6'"):
        validate_ngff({"ome": {"version": "0.6", "multiscales": []}})
    with pytest.raises(FormatError, match="unknown NGFF metadata kind"):
        validate_ngff({}, "plate")  # type: ignore[arg-type]


def test_vendored_schemas_equal_the_official_ones(testdata: Path) -> None:
    for version in ("0.4", "0.5"):
        official = sorted((testdata / "ngff" / version / "schemas").glob("*.schema"))
        assert official
        for path in official:
            ours = ROOT / "analysis" / "io" / "schemas" / version / path.name
            assert json.loads(ours.read_text()) == json.loads(path.read_text()), path.name


def _zarr_json_attrs(path: Path) -> tuple[Path, dict[str, Any]]:
    meta = path / "zarr.json"
    if meta.exists():
        return meta, json.loads(meta.read_text())
    return path / ".zattrs", json.loads((path / ".zattrs").read_text())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_invalid_store_metadata_is_rejected_on_read(tmp_path: Path, version: str) -> None:
    store = tmp_path / "img.zarr"
    write_ngff(np.zeros((4, 8, 8), np.uint8), store, version=version, scale_um=(1, 1, 1))  # type: ignore[arg-type]
    meta, doc = _zarr_json_attrs(store)
    ms = doc["attributes"]["ome"]["multiscales"][0] if version == "0.5" else doc["multiscales"][0]
    ms["datasets"][0]["path"] = 0
    meta.write_text(json.dumps(doc))
    prefix = "ome." if version == "0.5" else ""
    with pytest.raises(FormatError, match=re.escape(f"{prefix}multiscales[0].datasets[0].path")):
        open_volume(store)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_invalid_label_metadata_is_rejected_on_read(tmp_path: Path, version: str) -> None:
    store = tmp_path / "img.zarr"
    write_ngff(np.zeros((4, 8, 8), np.uint8), store, version=version, scale_um=(1, 1, 1))  # type: ignore[arg-type]
    write_labels(store, "cells", np.zeros((4, 8, 8), np.uint8), colors={1: (1, 2, 3, 4)})
    group = zarr.open_group(str(store / "labels" / "cells"), mode="r+")
    attrs = dict(group.attrs)
    body = attrs["ome"] if version == "0.5" else attrs
    body["image-label"]["colors"][0]["rgba"] = [1, 2, 3]
    group.attrs.put(attrs)
    with pytest.raises(FormatError, match=re.escape("image-label.colors[0].rgba")):
        open_labels(store, "cells")
