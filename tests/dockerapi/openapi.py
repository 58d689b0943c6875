"""The Docker Engine API v1.50 definitions (``/work/shared/specs``) as JSON Schema.

Swagger 2.0 marks nullable fields with ``x-nullable``; Go's encoding/json also writes ``null``
for every nil slice and map whatever the swagger says (dockerd's own answers do), so arrays
and objects accept null too. Everything else is checked as written.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC = Path("/work/shared/specs/docker-engine-api-v1.50.yaml")


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable(value) for key, value in node.items()}
    kind = out.get("type")
    if isinstance(kind, str) and (out.get("x-nullable") or kind in ("array", "object")):
        out["type"] = [kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    elif "$ref" in out and out.get("x-nullable"):
        return {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
    return out


@functools.cache
def _definitions() -> dict[str, Any]:
    with SPEC.open() as f:
        document = yaml.safe_load(f)
    definitions: dict[str, Any] = _nullable(document["definitions"])
    return definitions


def validate(document: Any, definition: str) -> None:
    """Raise ``jsonschema.ValidationError`` when ``document`` is not a ``definition``."""
    schema = {"$ref": f"#/definitions/{definition}", "definitions": _definitions()}
    jsonschema.validate(document, schema, cls=jsonschema.Draft4Validator)


def available() -> bool:
    return SPEC.exists()
