"""Validation of NGFF metadata against the official OME-NGFF JSON schemas.

The schemas are vendored in ``analysis/io/schemas/<version>/`` (see the
``LICENSE.md`` there) and loaded with :mod:`importlib.resources`, so validation
works offline and never depends on the test data. Cross-file ``$ref``\\ s (for
example 0.5's ``_version.schema``) resolve through a :mod:`referencing`
registry built from the same folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

import referencing
import referencing.jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from analysis.errors import FormatError
from analysis.io._format import detect_format, format_for

__all__ = ["format_json_path", "validate_ngff"]

_SCHEMA_FILES = {"image": "image.schema", "label": "label.schema"}


@cache
def _registry(version: str) -> referencing.Registry[Any]:
    folder = resources.files("analysis.io").joinpath("schemas", version)
    res = []
    for entry in folder.iterdir():
        if entry.name.endswith(".schema"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            res.append(
                (
                    contents["$id"],
                    referencing.Resource.from_contents(
                        contents, default_specification=referencing.jsonschema.DRAFT202012
                    ),
                )
            )
    return referencing.Registry().with_resources(res)


@cache
def _validator(version: str, kind: str) -> Draft202012Validator:
    registry = _registry(version)
    uri = f"https://ngff.openmicroscopy.org/{version}/schemas/{_SCHEMA_FILES[kind]}"
    schema = registry.contents(uri)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def format_json_path(path: Iterable[str | int]) -> str:
    """``["multiscales", 0, "axes"]`` -> ``"multiscales[0].axes"`` (``"<root>"`` if empty)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _contains_hint(schema: Any) -> str:
    """``{"contains": {"properties": {"type": {"enum": ["space"]}}}}`` -> ``"type 'space'"``."""
    contains = schema.get("contains") if isinstance(schema, Mapping) else None
    props = contains.get("properties", {}) if isinstance(contains, Mapping) else {}
    for name, rule in props.items():
        if isinstance(rule, Mapping) and rule.get("enum"):
            return f"{name} {rule['enum'][0]!r}"
    return "the required form"


def _reason(error: ValidationError) -> str:
    message = error.message
    if error.validator == "contains":
        message = f"no item with {_contains_hint(error.schema)}"
    elif error.validator in ("minContains", "maxContains"):
        much = "few" if error.validator == "minContains" else "many"
        detail = message[message.find("(") :] if "(" in message else ""
        message = f"too {much} items with {_contains_hint(error.schema)} {detail}"
    else:
        # jsonschema starts many messages with the repr of the offending value, which
        # can be a whole axes list; the path already names it, so keep the reason only.
        instance = repr(error.instance)
        if message.startswith(instance) and len(instance) > 20:
            message = message[len(instance) :].strip()
    message = " ".join(message.split())
    return message if len(message) <= 200 else message[:197] + "..."


def validate_ngff(
    attrs: Mapping[str, Any],
    kind: Literal["image", "label"] = "image",
    version: str | None = None,
) -> None:
    """Validate a node's NGFF attributes against the official JSON schema.

    Parameters
    ----------
    attrs : mapping
        The node's attributes as stored: the ``.zattrs`` content for 0.4, the
        ``attributes`` of ``zarr.json`` (holding ``"ome"``) for 0.5.
    kind : {"image", "label"}, default: "image"
        ``"image"`` checks ``multiscales`` (and ``omero``); ``"label"`` checks
        ``image-label``. A label image needs both checks.
    version : {"0.4", "0.5"}, optional
        Default: detected from ``attrs`` (``ome.version`` or
        ``multiscales[0].version``).

    Raises
    ------
    FormatError
        When the metadata is invalid; the message names the offending field as
        a JSON path (``ome.multiscales[0].axes``) and the reason.
    """
    if kind not in _SCHEMA_FILES:
        raise FormatError(f"unknown NGFF metadata kind {kind!r} (expected 'image' or 'label')")
    if not isinstance(attrs, Mapping):
        raise FormatError(f"NGFF attributes must be a JSON object, got {type(attrs).__name__}")
    fmt = format_for(version) if version is not None else detect_format(attrs)
    validator = _validator(fmt.version, kind)
    error = best_match(validator.iter_errors(dict(attrs)))
    if error is not None:
        where = format_json_path(error.absolute_path)
        raise FormatError(
            f"invalid NGFF {fmt.version} {kind} metadata at {where}: {_reason(error)}"
        )
