"""The classic builder's cache key and look-up, ``cache_from`` included.

A step's key is the sha256 of its parent image id, its history line (which names the
instruction, its build args, and for COPY/ADD the hash of what is copied) and the config the
step leaves: two steps with one key make the same image. A hit is a row of the
``build_cache`` table whose image is still there.

``cache_from`` (moby ``image/cache``): with source images given, a local hit counts only if it
is one of theirs or an ancestor (in the cache's parent chain) of one; else a source whose
history and layers up to the parent match, and whose next history line is this step's, gives
the hit: the source itself when that was its last step, or an image restored from its steps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from containerkit.spec import ImageConfig

if TYPE_CHECKING:
    from containerkit.engine.images import ImageCollection
    from containerkit.storage.build_cache import BuildCacheStore

__all__ = ["lookup", "step_key"]


def step_key(parent_id: str | None, created_by: str, config: ImageConfig) -> str:
    text = json.dumps([parent_id or "", created_by, config.to_oci()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _ancestors(cache: BuildCacheStore, image_id: str) -> set[str]:
    seen = {image_id}
    current = image_id
    for _ in range(10_000):
        rows = cache._db.query("SELECT parent_id FROM build_cache WHERE image_id = ? LIMIT 1", (current,))
        if not rows or not rows[0][0] or rows[0][0] in seen:
            break
        current = str(rows[0][0])
        seen.add(current)
    return seen


def _history(images: ImageCollection, image_id: str) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    record = images._record(image_id)
    raw = json.loads(record.config_json)
    return [dict(h) for h in raw.get("history") or ()], tuple(record.diff_ids)


def lookup(
    images: ImageCollection,
    cache: BuildCacheStore,
    key: str,
    parent_id: str | None,
    created_by: str,
    config: ImageConfig,
    sources: Sequence[str],
) -> str | None:
    """The image for this step, if the cache (or a ``cache_from`` source) has it."""
    found = cache.get(key)
    if not sources:
        return found
    if found is not None and any(found in _ancestors(cache, source) for source in sources):
        return found
    parent_history: list[dict[str, Any]] = []
    parent_diffs: tuple[str, ...] = ()
    if parent_id is not None:
        parent_history, parent_diffs = _history(images, parent_id)
    n = len(parent_history)
    for source in sources:
        history, diffs = _history(images, source)
        if len(history) <= n or diffs[: len(parent_diffs)] != parent_diffs:
            continue
        if [h.get("created_by") for h in history[:n]] != [h.get("created_by") for h in parent_history]:
            continue
        if history[n].get("created_by") != created_by:
            continue
        if len(history) == n + 1 and ImageConfig.from_oci(_config(images, source)) == config:
            cache.put(key, source, parent_id)
            return source
        return _restore(images, cache, key, parent_id, source, history, n, config)
    return None


def _config(images: ImageCollection, image_id: str) -> dict[str, Any]:
    raw = json.loads(images._record(image_id).config_json)
    return dict(raw.get("config") or {})


def _restore(
    images: ImageCollection,
    cache: BuildCacheStore,
    key: str,
    parent_id: str | None,
    source: str,
    history: list[dict[str, Any]],
    n: int,
    config: ImageConfig,
) -> str:
    """An image of ``source``'s first ``n + 1`` steps (its layers up to there) with ``config``."""
    from containerkit.engine import commit as _commit
    from containerkit.engine.builder.layers import add_layer

    step = history[n]
    created_by = str(step.get("created_by") or "")
    if step.get("empty_layer"):
        image = _commit.derive(images, parent_id, config, created_by=created_by)
    else:
        layer_index = sum(1 for h in history[:n] if not h.get("empty_layer"))
        layer = images._record(source).layers[layer_index]
        image = add_layer(images, parent_id, layer, config, created_by=created_by)
    cache.put(key, image.id, parent_id)
    return image.id
