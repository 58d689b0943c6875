"""docker's ``filters``: the query JSON both ways, and the ``label`` rule (one implementation,
``spec.label_matches``, shared with the engine, which sits below this package).

On the wire a filter is ``{"key": ["value", ...]}``; older clients send ``{"key": {"value": true}}``.
In Python code callers also write a single value (``{"status": "running"}``) or a bool.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from containerkit.errors import InvalidArgument
from containerkit.spec import label_matches

__all__ = ["filters_from_query", "filters_to_query", "label_matches", "labels_match", "normalise"]


def _values(value: Any) -> list[str]:
    if isinstance(value, Mapping):  # docker's older wire form {"label": {"a=1": true}}
        return [str(k) for k, on in value.items() if on]
    if isinstance(value, bool):
        return [str(value).lower()]
    if isinstance(value, (str, int, float)) or not isinstance(value, Iterable):
        return [str(value)]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in value]


def normalise(filters: Mapping[str, Any] | None, known: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Filters as Python callers write them -> ``{"key": ["value", ...]}``; a key outside
    ``known`` (when given) is refused as dockerd refuses it."""
    allowed = None if known is None else set(known)
    result: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if allowed is not None and key not in allowed:
            raise InvalidArgument(f"invalid filter {key!r}")
        result[str(key)] = _values(value)
    return result


def filters_to_query(filters: Mapping[str, Any] | None) -> str | None:
    """The ``filters`` query parameter (JSON), or None when there is nothing to filter on."""
    if not filters:
        return None
    return json.dumps(normalise(filters))


def filters_from_query(value: Any) -> dict[str, list[str]]:
    """The decoded ``filters`` JSON: ``{"k": ["v"]}`` or the older ``{"k": {"v": true}}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument("filters: expected a JSON object")
    result: dict[str, list[str]] = {}
    for key, entry in value.items():
        if isinstance(entry, Mapping):
            result[str(key)] = [str(k) for k, on in entry.items() if on]
        elif isinstance(entry, list):
            result[str(key)] = [str(v) for v in entry]
        elif isinstance(entry, str):
            result[str(key)] = [entry]
        else:
            raise InvalidArgument(f"filters.{key}: expected an array of strings")
    return result


def labels_match(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    """Every ``label`` filter value matches (docker ANDs them)."""
    return all(label_matches(labels, w) for w in wanted)
