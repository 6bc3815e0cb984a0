"""``python -m viewer.scene``: rewrite ``scene-schema.json`` from the pydantic models."""

from __future__ import annotations

import json

from ._state import SCHEMA_PATH, scene_json_schema

if __name__ == "__main__":
    SCHEMA_PATH.write_text(json.dumps(scene_json_schema(), indent=2, ensure_ascii=False) + "\n")
