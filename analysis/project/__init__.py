"""Projects: a folder of references, base data, the edit journal and the view state.

- :class:`Workspace`: ``.tracks`` (a :class:`analysis.tracks.TrackGraph` or
  None) and ``.annotations`` (:class:`analysis.annotations.Annotations`); the
  single target of a project's :class:`analysis.edits.History`, so one undo
  stack covers track edits, markers and measurements alike.
- :class:`Project`: :meth:`Project.create` / :meth:`Project.open`,
  ``project.history.apply(cmd)``, :meth:`Project.save_scene` /
  :meth:`Project.load_scene`, CSV/GEFF exports, :meth:`Project.close`.

Folder layout and file formats are in :mod:`analysis.io._project` (the only
module that reads or writes them). The desktop app, the XR mode and the
collaboration server all open the same folder.

Example
-------
>>> import tempfile
>>> from analysis.annotations import AddMarker
>>> folder = tempfile.mkdtemp() + "/p"
>>> with Project.create(folder, classes=["mito"]) as pr:
...     _ = pr.history.apply(AddMarker("mito", (1.0, 2.0, 3.0)))
>>> with Project.open(folder) as pr:
...     pr.annotations.counts()
{'mito': 1}
"""

from analysis.project._project import Project, Workspace

__all__ = ["Project", "Workspace"]
