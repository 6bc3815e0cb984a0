"""File actions the desktop implements (``fn`` None): bringing data into the window.

Registered here so the desktop's File menu, its shortcuts and the docs' key table
come from the registry, like every other user intent.
"""

from __future__ import annotations

# The edit and view actions register first: menus and the docs' tables keep their order.
from . import _actions  # noqa: F401
from ._registry import ACTIONS, Action

__all__: list[str] = []

for _id, _title, _desc, _key in (
    (
        "file.open_store",
        "Open store…",
        "open an OME-Zarr image store folder, with all its label images, in a new window",
        "Ctrl+O",
    ),
    ("file.open_url", "Open URL…", "open an OME-Zarr image by URL (http, https, s3)", None),
    ("file.add_labels", "Add labels…", "add a label image (of the store or a folder)", None),
    ("file.add_tracks", "Add tracks (GEFF)…", "add tracks (GEFF, CSV or CTC) to this window", None),
    (
        "file.new_project",
        "New project…",
        "make a project folder on an image store (every edit journaled there)",
        None,
    ),
):
    ACTIONS.register(Action(_id, _title, _desc, shortcut=_key))
