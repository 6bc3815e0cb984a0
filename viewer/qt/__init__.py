"""Desktop proofreading app (PySide6 + pyqtgraph) on the scene model and renderer.

- :class:`ProofreadingSession` (no Qt): the scene plus the project being edited;
  the desktop's ``viewer.actions.ActionContext``. Every action (cut, merge,
  prolong, swap, delete, mark reviewed, count, measure, undo/redo) is a registered
  action of :mod:`viewer.actions` that builds a command for the project's one
  ``History``; the headset runs the same actions.
- :class:`QtViewer`: the main window. The 3D view (:class:`QtRenderView`) shows
  frames a render thread draws with ``viewer.render.SceneRenderer``; three
  :class:`QtSliceView` s show XY/XZ/YZ slices with overlays and a shared
  crosshair; docks hold the layer list, the contrast histogram, counting,
  the features table with its linked scatter plot, the track list and jobs.
- :func:`run_viewer`: what ``vrscope view`` calls; :func:`run_joined` for
  ``vrscope view --join URL`` (:mod:`viewer.qt._collab`: a collaborative session).

Extending: a new action goes into the registry (:mod:`viewer.actions`); its menu
entry and shortcut follow from there. A new tool mode is a ``tool.*`` entry in the
registry plus a branch of ``ProofreadingSession.add_point``; a new
panel is a widget that listens to the session's and scene's events. Long work
goes into a :class:`Job` started on ``viewer.jobs`` (never on the GUI thread).
"""

from ._app import SHORTCUTS, QtViewer, run_viewer
from ._collab import DesktopCollab, join_session, run_joined
from ._render_view import QtRenderView, RenderThread
from ._session import ProofreadingSession
from ._slices import QtSliceView
from ._workers import Cancelled, Job, JobsPanel

__all__ = [
    "SHORTCUTS",
    "Cancelled",
    "DesktopCollab",
    "Job",
    "JobsPanel",
    "ProofreadingSession",
    "QtRenderView",
    "QtSliceView",
    "QtViewer",
    "RenderThread",
    "join_session",
    "run_joined",
    "run_viewer",
]
