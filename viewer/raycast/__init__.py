"""Single-pass GPU ray casting over a brick atlas and a page tree (no VTK, no Qt).

placeholder docstring (written at the end)
"""

from ._atlas import BrickAtlas, SlotTable, atlas_layout, pad_to_slot, slot_from_level
from ._harness import Harness, ResidentVolume, camera_matrices, standalone_context
from ._raycaster import MODES, DrawStats, VolumeRaycaster
from ._streamed import StreamedVolume, UpdateStats
from ._transfer import TransferFunction
from ._tree import EMPTY, PageTree, TreeLevels, leaf_words, nearest_resident

__all__ = [
    "EMPTY",
    "MODES",
    "BrickAtlas",
    "DrawStats",
    "Harness",
    "PageTree",
    "ResidentVolume",
    "SlotTable",
    "StreamedVolume",
    "TransferFunction",
    "TreeLevels",
    "UpdateStats",
    "VolumeRaycaster",
    "atlas_layout",
    "camera_matrices",
    "leaf_words",
    "nearest_resident",
    "pad_to_slot",
    "slot_from_level",
    "standalone_context",
]
