"""vrscope OpenXR mode: session, input actions and hand/controller tools.

The package is called ``xrmode`` rather than ``xr`` because pyopenxr owns the
import name ``xr`` (and imports itself as ``import xr``); see
``docs/design/0001-xr-package-name.md``. Reuses ``viewer.scene`` and
``viewer.render``; builds the shared edit commands from ``analysis.edits``.
"""
