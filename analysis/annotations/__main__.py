"""``python -m analysis.annotations``: rewrite ``annotations-schema.json`` from the models."""

from __future__ import annotations

import json

from analysis.annotations._models import ANNOTATIONS_SCHEMA_PATH, annotations_json_schema

if __name__ == "__main__":
    ANNOTATIONS_SCHEMA_PATH.write_text(
        json.dumps(annotations_json_schema(), indent=2, ensure_ascii=False) + "\n"
    )
