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
from containerkit.spec import label_matches, normalise_filters

__all__ = ["filters_from_query", "filters_to_query", "label_matches", "labels_match", "normalise"]


def normalise(filters: Mapping[str, Any] | None, known: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Filters as Python callers write them -> ``{"key": ["value", ...]}``; a key outside
    ``known`` (when given) is refused as dockerd refuses it."""
    return normalise_filters(filters, known if known is not None else (filters or {}).keys())


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
