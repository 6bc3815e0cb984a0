"""Axis units of OME-NGFF, converted to vrscope's units (µm for space, s for time).

NGFF restricts axis units to a fixed list of UDUNITS-2 names (spec section
"axes"), so a lookup table is exact and complete; a units library such as pint
would add a dependency for no gain. A few spellings that real files use but the
spec does not list (``"micron"``, ``"um"``, ``"µm"``, ``"nm"``) are accepted as
aliases because the 0.4 and 0.5 suites count such files as valid.
"""

from __future__ import annotations

import logging

from analysis.errors import FormatError

log = logging.getLogger(__name__)

__all__ = [
    "SPACE_UNITS_UM",
    "TIME_UNITS_S",
    "space_unit_to_um",
    "time_unit_to_s",
    "unit_factor",
]

_SI_PREFIX = {
    "yocto": 1e-24,
    "zepto": 1e-21,
    "atto": 1e-18,
    "femto": 1e-15,
    "pico": 1e-12,
    "nano": 1e-9,
    "micro": 1e-6,
    "milli": 1e-3,
    "centi": 1e-2,
    "deci": 1e-1,
    "": 1.0,
    "hecto": 1e2,
    "kilo": 1e3,
    "mega": 1e6,
    "giga": 1e9,
    "tera": 1e12,
    "peta": 1e15,
    "exa": 1e18,
    "zetta": 1e21,
    "yotta": 1e24,
}

#: micrometres per one NGFF space unit.
SPACE_UNITS_UM: dict[str, float] = {
    f"{prefix}meter": factor * 1e6 for prefix, factor in _SI_PREFIX.items()
}
SPACE_UNITS_UM.update(
    {
        "angstrom": 1e-4,
        "inch": 25_400.0,
        "foot": 304_800.0,
        "yard": 914_400.0,
        "mile": 1_609_344_000.0,
        "parsec": 3.0856775814913673e22,
    }
)
_SPACE_ALIASES = {
    "micron": "micrometer",
    "microns": "micrometer",
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",  # Greek mu, not the micro sign
    "nm": "nanometer",
    "mm": "millimeter",
    "m": "meter",
    "a": "angstrom",
    "Å": "angstrom",
}

#: seconds per one NGFF time unit.
TIME_UNITS_S: dict[str, float] = {
    f"{prefix}second": factor for prefix, factor in _SI_PREFIX.items()
}
TIME_UNITS_S.update({"minute": 60.0, "hour": 3600.0, "day": 86400.0})
_TIME_ALIASES = {"s": "second", "ms": "millisecond", "min": "minute", "h": "hour"}


def space_unit_to_um(unit: str, axis: str = "?") -> float:
    """Micrometres per one ``unit``; raises :class:`FormatError` for an unknown unit."""
    key = _SPACE_ALIASES.get(unit, _SPACE_ALIASES.get(unit.lower(), unit.lower()))
    try:
        return SPACE_UNITS_UM[key]
    except KeyError:
        raise FormatError(
            f"unknown unit {unit!r} on space axis {axis!r} (expected an NGFF length unit "
            "such as 'micrometer' or 'nanometer')"
        ) from None


def time_unit_to_s(unit: str, axis: str = "?") -> float:
    """Seconds per one ``unit``; raises :class:`FormatError` for an unknown unit."""
    key = _TIME_ALIASES.get(unit, unit.lower())
    try:
        return TIME_UNITS_S[key]
    except KeyError:
        raise FormatError(
            f"unknown unit {unit!r} on time axis {axis!r} (expected an NGFF time unit "
            "such as 'second' or 'minute')"
        ) from None


def unit_factor(unit: str | None, axis_type: str | None, axis: str = "?") -> float:
    """Factor from the store's ``unit`` to vrscope's unit for an axis of ``axis_type``.

    Space axes go to µm, time axes to seconds; channel and custom axes, and axes
    without a unit, are left as they are (factor 1). An unknown space unit raises
    :class:`FormatError` (a wrong voxel size would silently falsify every
    measurement); an unknown time unit only logs a warning, because the NGFF
    suites accept such files and no measurement in space depends on it.
    """
    if unit is None:
        return 1.0
    if axis_type == "space":
        return space_unit_to_um(unit, axis)
    if axis_type == "time":
        try:
            return time_unit_to_s(unit, axis)
        except FormatError as exc:
            log.warning("%s; keeping the values as they are", exc)
            return 1.0
    return 1.0
