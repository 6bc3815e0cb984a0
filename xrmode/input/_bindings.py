"""Actions and their suggested bindings for the common interaction profiles.

OpenXR apps declare *actions* (select, squeeze, ...) and suggest, per
interaction profile, which controller component drives each one; the runtime
picks the profile of the device in hand (pyopenxr's ``track_controller.py``
example does the same with one profile). Every profile the runtime does not
know is skipped with a log line, so one table serves SteamVR, Meta, WMR and
Monado. Component paths follow the OpenXR 1.0 spec, section 6.4
("Interaction Profiles") and ``XR_EXT_hand_interaction``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ACTIONS", "PROFILES", "ActionSpec", "bindings_for"]

ActionKind = Literal["boolean", "float", "vector2", "pose", "vibration"]
Hand = Literal["left", "right"]


@dataclass(frozen=True)
class ActionSpec:
    """One action: its OpenXR name, kind and a localized name for runtime UIs."""

    name: str
    kind: ActionKind
    label: str


#: The vrscope action set (every action is per hand: subaction paths left/right).
ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("aim_pose", "pose", "Aim pose"),
    ActionSpec("grip_pose", "pose", "Grip pose"),
    ActionSpec("select", "boolean", "Select / place (trigger, pinch)"),
    ActionSpec("select_value", "float", "Trigger value"),
    ActionSpec("squeeze", "boolean", "Grab (grip, grasp)"),
    ActionSpec("primary", "boolean", "Primary (A / X)"),
    ActionSpec("secondary", "boolean", "Secondary (B / Y)"),
    ActionSpec("menu", "boolean", "Menu"),
    ActionSpec("thumbstick", "vector2", "Thumbstick / trackpad"),
    ActionSpec("thumbstick_click", "boolean", "Thumbstick click"),
    ActionSpec("haptic", "vibration", "Haptic pulse"),
)

_BOTH: tuple[Hand, ...] = ("left", "right")

# (action, hands, component) per profile.
_Entry = tuple[str, tuple[Hand, ...], str]
_POSES: list[_Entry] = [
    ("aim_pose", _BOTH, "input/aim/pose"),
    ("grip_pose", _BOTH, "input/grip/pose"),
    ("haptic", _BOTH, "output/haptic"),
]

PROFILES: dict[str, list[_Entry]] = {
    "/interaction_profiles/khr/simple_controller": [
        *_POSES,
        ("select", _BOTH, "input/select/click"),
        ("select_value", _BOTH, "input/select/click"),
        ("menu", _BOTH, "input/menu/click"),
    ],
    "/interaction_profiles/oculus/touch_controller": [
        *_POSES,
        ("select", _BOTH, "input/trigger/value"),
        ("select_value", _BOTH, "input/trigger/value"),
        ("squeeze", _BOTH, "input/squeeze/value"),
        ("primary", ("left",), "input/x/click"),
        ("secondary", ("left",), "input/y/click"),
        ("primary", ("right",), "input/a/click"),
        ("secondary", ("right",), "input/b/click"),
        # The right system button is reserved for the runtime.
        ("menu", ("left",), "input/menu/click"),
        ("thumbstick", _BOTH, "input/thumbstick"),
        ("thumbstick_click", _BOTH, "input/thumbstick/click"),
    ],
    "/interaction_profiles/valve/index_controller": [
        *_POSES,
        ("select", _BOTH, "input/trigger/click"),
        ("select_value", _BOTH, "input/trigger/value"),
        ("squeeze", _BOTH, "input/squeeze/value"),
        ("primary", _BOTH, "input/a/click"),
        ("secondary", _BOTH, "input/b/click"),
        ("menu", _BOTH, "input/system/click"),
        # SteamVR may keep the system button: a firm press on the trackpad opens it too.
        ("menu", _BOTH, "input/trackpad/force"),
        ("thumbstick", _BOTH, "input/thumbstick"),
        ("thumbstick_click", _BOTH, "input/thumbstick/click"),
    ],
    "/interaction_profiles/htc/vive_controller": [
        *_POSES,
        ("select", _BOTH, "input/trigger/click"),
        ("select_value", _BOTH, "input/trigger/value"),
        ("squeeze", _BOTH, "input/squeeze/click"),
        ("primary", _BOTH, "input/trackpad/click"),
        ("menu", _BOTH, "input/menu/click"),
        ("thumbstick", _BOTH, "input/trackpad"),
    ],
    "/interaction_profiles/microsoft/motion_controller": [
        *_POSES,
        ("select", _BOTH, "input/trigger/value"),
        ("select_value", _BOTH, "input/trigger/value"),
        ("squeeze", _BOTH, "input/squeeze/click"),
        ("primary", _BOTH, "input/trackpad/click"),
        ("menu", _BOTH, "input/menu/click"),
        ("thumbstick", _BOTH, "input/thumbstick"),
        ("thumbstick_click", _BOTH, "input/thumbstick/click"),
    ],
    # Bare hands where the runtime offers XR_EXT_hand_interaction.
    "/interaction_profiles/ext/hand_interaction_ext": [
        ("aim_pose", _BOTH, "input/aim/pose"),
        ("grip_pose", _BOTH, "input/grip/pose"),
        ("select", _BOTH, "input/pinch_ext/value"),
        ("select_value", _BOTH, "input/pinch_ext/value"),
        ("squeeze", _BOTH, "input/grasp_ext/value"),
    ],
}

#: Profiles that need an instance extension enabled first.
PROFILE_EXTENSIONS: dict[str, str] = {
    "/interaction_profiles/ext/hand_interaction_ext": "XR_EXT_hand_interaction",
}


def bindings_for(profile: str) -> list[tuple[str, str]]:
    """``(action name, full binding path)`` pairs suggested for ``profile``."""
    out = []
    for action, hands, component in PROFILES[profile]:
        for hand in hands:
            out.append((action, f"/user/hand/{hand}/{component}"))
    return out
