"""docker ``ps --filter`` semantics for container lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from containerkit.errors import InvalidArgument, NotFound
from containerkit.spec import label_matches, normalise_filters

if TYPE_CHECKING:
    from containerkit.engine.containers import Container
    from containerkit.engine.images import ImageCollection

__all__ = ["matches", "normalise"]

_KNOWN = {"status", "name", "id", "label", "ancestor", "exited", "health"}
_HEALTH = ("starting", "healthy", "unhealthy", "none")
"""docker's ``health`` filter values; ``none``: a container without a health check."""


def normalise(filters: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """``{"status": "running"}`` or ``{"label": ["a=1", "b"]}`` -> lists of strings."""
    result = normalise_filters(filters, _KNOWN)
    for value in result.get("health", []):
        if value not in _HEALTH:
            raise InvalidArgument(f"invalid filter 'health={value}': expected one of {', '.join(_HEALTH)}")
    return result


def matches(
    container: Container, status: str, wanted: Mapping[str, list[str]], images: ImageCollection
) -> bool:
    if "status" in wanted and status not in wanted["status"]:
        return False
    if "name" in wanted and not any(n.lstrip("/") in container.name for n in wanted["name"]):
        return False
    if "id" in wanted and not any(container.id.startswith(i) for i in wanted["id"]):
        return False
    if "label" in wanted and not all(label_matches(container.labels, w) for w in wanted["label"]):
        return False
    if "exited" in wanted and str(container.exit_code) not in wanted["exited"]:
        return False
    if "health" in wanted:
        health = container.health
        if (health.status if health is not None else "none") not in wanted["health"]:
            return False
    if "ancestor" in wanted:
        ids = set()
        for ref in wanted["ancestor"]:
            try:
                ids.add(images.get(ref).id)
            except NotFound:
                continue
        if container.image_id not in ids:
            return False
    return True
