"""vrscope OpenXR mode: session, input actions and hand/controller tools.

Reuses ``viewer.scene`` and ``viewer.render``; builds the shared edit commands
from ``analysis.edits``.
"""
