"""NGFF format versions: the one place that knows how 0.4 and 0.5 differ.

Like ome-zarr-py's ``format.py`` (``FormatV04``, ``FormatV05``,
``detect_format``), every other module asks a :class:`NgffFormat` where the
metadata lives instead of testing version strings itself.

============  =================  ==========================================
version       zarr format        where the NGFF metadata lives
============  =================  ==========================================
``"0.4"``     2 (``.zattrs``)    top level of the attributes; ``version``
                                 inside each ``multiscales`` entry and
                                 inside ``image-label``
``"0.5"``     3 (``zarr.json``)  under ``attributes["ome"]`` with
                                 ``ome["version"] == "0.5"``
============  =================  ==========================================
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from analysis.errors import FormatError

__all__ = [
    "FORMATS",
    "FormatV04",
    "FormatV05",
    "NgffFormat",
    "NgffVersion",
    "detect_format",
    "format_for",
]

NgffVersion = Literal["0.4", "0.5"]


@dataclass(frozen=True)
class NgffFormat:
    """How one NGFF version stores its metadata.

    Attributes
    ----------
    version : {"0.4", "0.5"}
    zarr_format : {2, 3}
        The zarr format the spec requires for this version.
    """

    version: NgffVersion
    zarr_format: Literal[2, 3]

    def ome(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The NGFF namespace of a node's ``attrs`` (a copy; ``{}`` when absent)."""
        if self.zarr_format == 3:
            ome = attrs.get("ome", {})
            return dict(ome) if isinstance(ome, Mapping) else {}
        return dict(attrs)

    def wrap(self, ome: Mapping[str, Any]) -> dict[str, Any]:
        """Node attributes holding the NGFF namespace ``ome`` (deep-copied).

        Version fields are added where this version puts them.
        """
        body = copy.deepcopy(dict(ome))
        if self.zarr_format == 3:
            return {"ome": {"version": self.version, **body}}
        for ms in body.get("multiscales", []):
            ms.setdefault("version", self.version)
        if "image-label" in body:
            body["image-label"].setdefault("version", self.version)
        return body


FormatV04 = NgffFormat("0.4", 2)
FormatV05 = NgffFormat("0.5", 3)
FORMATS: dict[str, NgffFormat] = {"0.4": FormatV04, "0.5": FormatV05}


def format_for(version: str) -> NgffFormat:
    """The :class:`NgffFormat` for ``version``; :class:`FormatError` when unsupported."""
    try:
        return FORMATS[version]
    except KeyError:
        raise FormatError(
            f"unsupported NGFF version {version!r} (vrscope reads and writes 0.4 and 0.5)"
        ) from None


def detect_format(attrs: Mapping[str, Any], zarr_format: int | None = None) -> NgffFormat:
    """Decide the NGFF version of a node from its attributes.

    An ``"ome"`` key with a ``version`` means 0.5 (or later); otherwise the node is
    0.4-style: its version, if any, is in ``multiscales[0]["version"]`` or
    ``image-label["version"]``. Versions other than 0.4 and 0.5 raise
    :class:`FormatError`. ``zarr_format`` is only used for the message.
    """
    ome = attrs.get("ome")
    if isinstance(ome, Mapping):
        version = ome.get("version")
        if version is None:
            # ome-zarr-py writes the 0.5 ``labels`` group without a version.
            return FormatV05
        return format_for(str(version))
    found: str | None = None
    multiscales = attrs.get("multiscales")
    if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], Mapping):
        v = multiscales[0].get("version")
        found = None if v is None else str(v)
    label = attrs.get("image-label")
    if found is None and isinstance(label, Mapping) and label.get("version") is not None:
        found = str(label["version"])
    if found is None or found == "0.4":
        return FormatV04
    where = f" in a zarr v{zarr_format} node" if zarr_format else ""
    raise FormatError(
        f"unsupported NGFF version {found!r} at multiscales[0].version{where} "
        "(vrscope reads 0.4 and 0.5)"
    )
