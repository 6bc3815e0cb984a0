"""vrscope OpenXR mode: session, input actions and hand/controller tools.

The package is called ``xrmode`` rather than ``xr`` because pyopenxr owns the
import name ``xr`` (and imports itself as ``import xr``); see
``docs/design/0001-xr-package-name.md``. Reuses ``viewer.scene`` and
``viewer.render``; builds the shared edit commands from ``analysis.edits``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import XrApp, XrOptions, run_xr

__all__ = ["XrApp", "XrOptions", "run_xr"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: importing ``xrmode.tools`` (or the CLI) needs no renderer.
    if name in __all__:
        from . import _app

        return getattr(_app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
