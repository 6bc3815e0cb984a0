"""XR input: actions bound to many controller profiles, and bare hands, as plain values.

Tools see only :class:`Pose`, :class:`Ray`, :class:`Button`, :class:`HandInput`
and :class:`InputFrame` (frozen dataclasses, stage metres). The runtime side
(:class:`XrActions`, imported lazily because it needs pyopenxr) declares the
actions of :data:`ACTIONS`, suggests the bindings of :data:`PROFILES` and turns
action states (or ``XR_EXT_hand_tracking`` joints through :class:`HandGestures`)
into an :class:`InputFrame` per frame.

To support another controller: add its profile and component paths to
``PROFILES`` in ``_bindings.py``; the runtime test checks that Monado accepts
every suggested binding.
"""

from ._bindings import ACTIONS, PROFILES, ActionSpec, bindings_for
from ._hands import JOINT, HandGestures, finger_extension, hand_input_from_joints, palm_up
from ._types import (
    Button,
    HandInput,
    InputFrame,
    Pose,
    Ray,
    Side,
    quat_from_matrix,
    quat_matrix,
    quat_multiply,
    quat_rotate,
)

__all__ = [
    "ACTIONS",
    "JOINT",
    "PROFILES",
    "ActionSpec",
    "Button",
    "HandGestures",
    "finger_extension",
    "palm_up",
    "HandInput",
    "InputFrame",
    "Pose",
    "Ray",
    "Side",
    "bindings_for",
    "hand_input_from_joints",
    "quat_from_matrix",
    "quat_matrix",
    "quat_multiply",
    "quat_rotate",
]
