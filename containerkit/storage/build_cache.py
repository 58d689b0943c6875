"""The classic builder's cache in the metadata database (schema v7's ``build_cache``).

A row says: the step whose key is ``key`` made image ``image_id`` on top of ``parent_id``
(``""`` for scratch). The key is computed by the builder (parent image, instruction, run
config); this store only keeps and finds rows. Rows go with their image (``ON DELETE
CASCADE``), so a cache entry never names an image that is gone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from containerkit.storage.metadata import Database

__all__ = ["BuildCacheStore"]


class BuildCacheStore:
    """``key -> image id`` for build steps, and which images are build steps' parents."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> str | None:
        """The image a step with this key made, if it is still there."""
        rows = self._db.query("SELECT image_id FROM build_cache WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def put(self, key: str, image_id: str, parent_id: str | None) -> None:
        """Remember that the step ``key`` made ``image_id`` (newest wins, as docker's cache)."""
        with self._db.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO build_cache (key, image_id, parent_id, created) VALUES (?, ?, ?, ?)",
                (key, image_id, parent_id or "", time.time()),
            )

    def parents(self) -> set[str]:
        """Images some cached step was built on (docker's images with children)."""
        return {str(r[0]) for r in self._db.query("SELECT DISTINCT parent_id FROM build_cache") if r[0]}

    def step_images(self) -> set[str]:
        """Every image a build step made."""
        return {str(r[0]) for r in self._db.query("SELECT DISTINCT image_id FROM build_cache")}

    def is_step_image(self, image_id: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM build_cache WHERE image_id = ? LIMIT 1", (image_id,)))

    def clear(self) -> int:
        """Forget every entry; the number of rows removed."""
        with self._db.transaction() as db:
            return db.execute("DELETE FROM build_cache").rowcount
