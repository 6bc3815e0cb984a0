"""The wire protocol: documented schema in sync, validation refuses bad frames."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from analysis.edits import Cut, command_to_json
from viewer.collab import protocol_schema
from viewer.collab.__main__ import BEGIN, END, render
from viewer.collab._protocol import (
    CommandBody,
    Hello,
    OpMsg,
    Pose,
    Presence,
    parse_client,
    parse_server,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "collab-protocol.md"


def test_documented_schema_matches_the_models() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, "docs/collab-protocol.md is stale: run python -m viewer.collab"
    block = text.split(BEGIN)[1].split(END)[0].strip().removeprefix("```json").removesuffix("```")
    assert json.loads(block) == json.loads(json.dumps(protocol_schema()))


def test_valid_frames_validate_against_the_published_json_schema() -> None:
    """jsonschema (independent of pydantic) accepts what the models produce."""
    schema = protocol_schema()["client_to_server"]
    for msg in (
        Hello(client_id="c1", name="PI", role="presenter", last_seq=3),
        OpMsg(op_id="c1.1", cmd=CommandBody(**command_to_json(Cut(4)))),
        Presence(ts=1.0, head=Pose(position_um=(1.0, 2.0, 3.0))),
    ):
        jsonschema.validate(json.loads(msg.model_dump_json()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "presence", "ts": 1.0, "extra": 1}, schema)


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"type": "shell", "cmd": "rm -rf /"}',
        '{"type": "presence"}',  # missing ts
        '{"type": "presence", "ts": 1, "head": {"position_um": [1, 2]}}',  # not a 3-vector
        '{"type": "presence", "ts": 1, "head": {"position_um": [1, 2, NaN]}}',
        '{"type": "presence", "ts": 1, "extra": true}',
        '{"type": "op", "op_id": "a b", "cmd": {"kind": "cut", "args": {}}}',  # bad id chars
        '{"type": "op", "op_id": "x", "cmd": {"kind": "__import__", "args": {}}}',
        '{"type": "hello", "client_id": "c", "name": "n", "role": "admin"}',
        '{"type": "view", "ts": 1, "clip_planes": '
        + json.dumps([{"origin_um": [0, 0, 0], "normal": [0, 0, 1]}] * 7)
        + "}",
    ],
)
def test_bad_client_frames_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        parse_client(raw)


def test_server_frames_round_trip() -> None:
    text = '{"type":"rejected","op_id":"a.1","reason":"node 3 does not exist"}'
    msg = parse_server(text)
    assert msg.reason == "node 3 does not exist"
    assert parse_server(msg.model_dump_json()) == msg
