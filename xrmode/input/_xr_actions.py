"""The action set at runtime: create actions, suggest bindings, read states each frame.

Needs a live OpenXR session (pyopenxr). Everything it returns is a plain
:class:`InputFrame`; tools never touch OpenXR objects.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np
import xr

from ._bindings import ACTIONS, PROFILE_EXTENSIONS, PROFILES, bindings_for
from ._hands import HandGestures, hand_input_from_joints
from ._types import Button, HandInput, InputFrame, Pose, Side

__all__ = ["XrActions"]

log = logging.getLogger(__name__)

_TYPES = {
    "boolean": xr.ActionType.BOOLEAN_INPUT,
    "float": xr.ActionType.FLOAT_INPUT,
    "vector2": xr.ActionType.VECTOR2F_INPUT,
    "pose": xr.ActionType.POSE_INPUT,
    "vibration": xr.ActionType.VIBRATION_OUTPUT,
}
_SIDES: tuple[Side, Side] = ("left", "right")
_VALID = xr.SPACE_LOCATION_POSITION_VALID_BIT | xr.SPACE_LOCATION_ORIENTATION_VALID_BIT


def pose_from_xr(p: Any) -> Pose:
    """A :class:`Pose` from an ``XrPosef``."""
    o, q = p.position, p.orientation
    return Pose(
        (float(o.x), float(o.y), float(o.z)), (float(q.x), float(q.y), float(q.z), float(q.w))
    )


#: While a hand's interaction profile is unknown, ask for it every this many frames.
PROFILE_POLL_FRAMES = 30


class XrActions:
    """vrscope's action set on one session, plus hand trackers where offered.

    Attributes
    ----------
    accepted_profiles : list of str
        Interaction profiles whose suggested bindings the runtime accepted.
    rejected_profiles : dict str -> str
        Profiles the runtime refused, with the reason.
    """

    def __init__(
        self, instance: Any, session: Any, extensions: set[str], hand_tracking: bool = True
    ) -> None:
        self.instance = instance
        self.session = session
        self.hand_paths = [xr.string_to_path(instance, f"/user/hand/{s}") for s in _SIDES]
        #: The interaction profile per hand, as of the last profile-changed event
        #: (:meth:`current_profiles`): the controller models follow it.
        self.profiles: list[str] = ["" for _ in _SIDES]
        self._syncs = 0
        self.action_set = xr.create_action_set(
            instance,
            xr.ActionSetCreateInfo(
                action_set_name="vrscope", localized_action_set_name="vrscope", priority=0
            ),
        )
        paths = (xr.Path * 2)(*self.hand_paths)
        self.actions: dict[str, Any] = {}
        for spec in ACTIONS:
            self.actions[spec.name] = xr.create_action(
                self.action_set,
                xr.ActionCreateInfo(
                    action_name=spec.name,
                    action_type=_TYPES[spec.kind],
                    count_subaction_paths=2,
                    subaction_paths=paths,
                    localized_action_name=spec.label,
                ),
            )
        self.accepted_profiles: list[str] = []
        self.rejected_profiles: dict[str, str] = {}
        for profile in PROFILES:
            need = PROFILE_EXTENSIONS.get(profile)
            if need and need not in extensions:
                self.rejected_profiles[profile] = f"{need} not enabled"
                continue
            pairs = bindings_for(profile)
            arr = (xr.ActionSuggestedBinding * len(pairs))(
                *[
                    xr.ActionSuggestedBinding(self.actions[a], xr.string_to_path(instance, p))
                    for a, p in pairs
                ]
            )
            try:
                xr.suggest_interaction_profile_bindings(
                    instance,
                    xr.InteractionProfileSuggestedBinding(
                        interaction_profile=xr.string_to_path(instance, profile),
                        count_suggested_bindings=len(pairs),
                        suggested_bindings=arr,
                    ),
                )
                self.accepted_profiles.append(profile)
            except xr.XrException as exc:
                self.rejected_profiles[profile] = type(exc).__name__
                log.info("runtime refused bindings for %s: %s", profile, exc)
        self.spaces: dict[tuple[str, int], Any] = {}
        for name in ("aim_pose", "grip_pose"):
            for i, hp in enumerate(self.hand_paths):
                self.spaces[(name, i)] = xr.create_action_space(
                    session,
                    xr.ActionSpaceCreateInfo(
                        action=self.actions[name],
                        subaction_path=hp,
                        pose_in_action_space=xr.Posef(),
                    ),
                )
        xr.attach_session_action_sets(
            session,
            xr.SessionActionSetsAttachInfo(
                count_action_sets=1, action_sets=(xr.ActionSet * 1)(self.action_set)
            ),
        )
        self._buttons: dict[tuple[str, int], Button] = {}
        self.hand_trackers: list[Any] = []
        self.gestures = [HandGestures(), HandGestures()]
        if hand_tracking and "XR_EXT_hand_tracking" in extensions:
            try:
                for hand in (xr.HandEXT.LEFT, xr.HandEXT.RIGHT):
                    self.hand_trackers.append(
                        xr.create_hand_tracker_ext(
                            session,
                            xr.HandTrackerCreateInfoEXT(
                                hand=hand, hand_joint_set=xr.HandJointSetEXT.DEFAULT
                            ),
                        )
                    )
            except xr.XrException as exc:
                log.info("hand tracking unavailable: %s", exc)
                self.hand_trackers = []

    # -- per frame -----------------------------------------------------------------
    def _info(self, name: str, i: int) -> Any:
        return xr.ActionStateGetInfo(action=self.actions[name], subaction_path=self.hand_paths[i])

    def _bool(self, name: str, i: int) -> Button:
        st = xr.get_action_state_boolean(self.session, self._info(name, i))
        prev = self._buttons.get((name, i), Button())
        pressed = bool(st.current_state) and bool(st.is_active)
        b = prev.next(pressed)
        self._buttons[(name, i)] = b
        return b

    def _locate(self, space: Any, base: Any, time: int) -> Pose | None:
        loc = xr.locate_space(space, base, time)
        if (loc.location_flags & _VALID) != _VALID:
            return None
        return pose_from_xr(loc.pose)

    def _joints(self, i: int, base: Any, time: int) -> np.ndarray[Any, Any] | None:
        if not self.hand_trackers:
            return None
        locs = (xr.HandJointLocationEXT * xr.HAND_JOINT_COUNT_EXT)()
        out = xr.HandJointLocationsEXT(joint_count=xr.HAND_JOINT_COUNT_EXT, joint_locations=locs)
        fxn = ctypes.cast(
            xr.get_instance_proc_addr(self.instance, "xrLocateHandJointsEXT"),
            xr.PFN_xrLocateHandJointsEXT,
        )
        info = xr.HandJointsLocateInfoEXT(base_space=base, time=time)
        res = fxn(self.hand_trackers[i], ctypes.byref(info), ctypes.byref(out))
        if res != 0 or not out.is_active:
            return None
        return np.array([[j.pose.position.x, j.pose.position.y, j.pose.position.z] for j in locs])

    def read(self, base_space: Any, view_space: Any, time: int, focused: bool) -> InputFrame:
        """Sync the actions (only while focused) and read both hands at ``time``."""
        time_s = time * 1e-9
        head = self._locate(view_space, base_space, time)
        if not focused:
            return InputFrame(time_s, head)
        try:
            xr.sync_actions(
                self.session,
                xr.ActionsSyncInfo(
                    count_active_action_sets=1,
                    active_action_sets=(xr.ActiveActionSet * 1)(
                        xr.ActiveActionSet(self.action_set, xr.NULL_PATH)
                    ),
                ),
            )
        except xr.SessionNotFocused:
            # A qualified success (focus lost since the last event poll): no input this frame.
            return InputFrame(time_s, head)
        self._syncs += 1
        if self._syncs % PROFILE_POLL_FRAMES == 1 and not all(self.profiles):
            # Not every runtime sends INTERACTION_PROFILE_CHANGED for the first
            # binding (Monado did not): ask while a hand's profile is unknown.
            self.current_profiles()
        hands = []
        for i, side in enumerate(_SIDES):
            aim = self._locate(self.spaces[("aim_pose", i)], base_space, time)
            grip = self._locate(self.spaces[("grip_pose", i)], base_space, time)
            if aim is None and self.hand_trackers:
                joints = self._joints(i, base_space, time)
                hands.append(hand_input_from_joints(side, joints, self.gestures[i]))
                continue
            value = xr.get_action_state_float(self.session, self._info("select_value", i))
            stick = xr.get_action_state_vector2f(self.session, self._info("thumbstick", i))
            select = self._bool("select", i)
            hands.append(
                HandInput(
                    side,
                    aim=aim,
                    grip=grip,
                    select=Button(
                        select.pressed,
                        float(value.current_state) if value.is_active else select.value,
                        select.just_pressed,
                        select.just_released,
                    ),
                    squeeze=self._bool("squeeze", i),
                    primary=self._bool("primary", i),
                    secondary=self._bool("secondary", i),
                    menu=self._bool("menu", i),
                    thumbstick_click=self._bool("thumbstick_click", i),
                    thumbstick=(
                        (float(stick.current_state.x), float(stick.current_state.y))
                        if stick.is_active
                        else (0.0, 0.0)
                    ),
                    source="controller" if aim is not None else "none",
                    profile=self.profiles[i] if i < len(self.profiles) else "",
                )
            )
        return InputFrame(time_s, head, hands[0], hands[1])

    def current_profiles(self) -> list[str]:
        """The interaction profile in use per hand ("" when none); kept in :attr:`profiles`."""
        out = []
        for hp in self.hand_paths:
            try:
                st = xr.get_current_interaction_profile(self.session, hp)
                p = st.interaction_profile
                out.append(xr.path_to_string(self.instance, p) if p else "")
            except xr.XrException:
                out.append("")
        self.profiles = out
        return out

    def destroy(self) -> None:
        for ht in self.hand_trackers:
            xr.destroy_hand_tracker_ext(ht)
        self.hand_trackers = []
        for sp in self.spaces.values():
            xr.destroy_space(sp)
        self.spaces.clear()
        xr.destroy_action_set(self.action_set)
