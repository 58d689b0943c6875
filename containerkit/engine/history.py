"""``docker history``: an image's steps, newest first, with the size each layer adds and the
ids of the local images each step made."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from containerkit.errors import InvalidArgument
from containerkit.images.manifest import _parse_time as parse_time
from containerkit.spec import HistoryEntry, Image

if TYPE_CHECKING:
    from containerkit.engine.images import ImageCollection

__all__ = ["history"]


def _history_of(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(h) for h in raw.get("history") or () if isinstance(h, Mapping)]


def history(images: ImageCollection, ref: str) -> list[HistoryEntry]:
    """``docker history``: newest first, each step with the size its layer adds. The image's own
    step carries its id and tags; a step older than that carries the id of a local image that
    is exactly the image up to that step (same history and layers), else ``<missing>``."""
    image = images.get(ref)
    record = images._record(image.id)
    raw = json.loads(record.config_json)
    steps = _history_of(raw)
    layer_sizes = []
    for layer in record.layers:
        stored = images.metadata.layers.get(layer.chain_id)
        layer_sizes.append(stored.size if stored is not None else 0)
    entries: list[HistoryEntry] = []
    n_layer = 0
    for step in steps:
        empty = bool(step.get("empty_layer"))
        size = 0
        if not empty:
            if n_layer >= len(layer_sizes):
                raise InvalidArgument(f"image {image.id}: too many non-empty layers in its history")
            size = layer_sizes[n_layer]
            n_layer += 1
        created = parse_time(step.get("created"))
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)  # written in UTC ("Z")
        entries.append(
            HistoryEntry(
                id="<missing>",
                created=created,
                created_by=str(step.get("created_by") or ""),
                comment=str(step.get("comment") or ""),
                author=str(step.get("author") or ""),
                empty_layer=empty,
                size=size,
            )
        )
    ids = _ancestors(images, image, steps, record.diff_ids)
    out = []
    for index in range(len(entries) - 1, -1, -1):
        found = ids.get(index)
        if found is None:
            out.append(entries[index])
            continue
        out.append(attrs.evolve(entries[index], id=found, tags=images.get(found).tags))
    return out


def _ancestors(
    images: ImageCollection, image: Image, steps: Sequence[Mapping[str, Any]], diff_ids: Sequence[str]
) -> dict[int, str]:
    """Which history step each known image is: the image at its last step, then, walking down
    as dockerd follows ``Parent``, the local image that has exactly the steps and layers up to
    the one before, until one is not found."""
    ids = {len(steps) - 1: image.id} if steps else {}
    candidates: dict[int, list[tuple[str, list[dict[str, Any]], tuple[str, ...]]]] = {}
    for other_id in images.metadata.images.ids():
        if other_id == image.id:
            continue
        other = images.metadata.images.get(other_id)
        if other is None:
            continue
        other_steps = _history_of(json.loads(other.config_json))
        if 0 < len(other_steps) < len(steps):
            candidates.setdefault(len(other_steps), []).append((other_id, other_steps, other.diff_ids))
    for count in range(len(steps) - 1, 0, -1):
        match = next(
            (
                other_id
                for other_id, other_steps, other_diffs in candidates.get(count, [])
                if other_steps == list(steps[:count])
                and tuple(diff_ids[: len(other_diffs)]) == other_diffs
                and len(other_diffs) == sum(1 for s in steps[:count] if not s.get("empty_layer"))
            ),
            None,
        )
        if match is None:
            break
        ids[count - 1] = match
    return ids
