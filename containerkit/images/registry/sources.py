"""Which repositories a blob was pulled from, so a push to the same registry mounts it
(``POST .../uploads/?mount=<digest>&from=<repo>``) instead of uploading it again (docker's V2Metadata).

One small JSON file per blob under ``root``, replaced atomically. It is a hint: a lost entry only
costs an upload, and an entry whose blob is gone is never used (the push checks the store first).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from containerkit.images.content import check_digest

__all__ = ["BlobSources"]

_MAX_SOURCES = 8


class BlobSources:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        return self.root / check_digest(digest).split(":", 1)[1]

    def get(self, digest: str) -> list[str]:
        """Canonical repository names (``127.0.0.1:5000/team/app``), most recent first."""
        try:
            value = json.loads(self._path(digest).read_text())
        except (OSError, ValueError):
            return []
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def add(self, digest: str, repository: str) -> None:
        entries = [repository] + [r for r in self.get(digest) if r != repository]
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(entries[:_MAX_SOURCES], out)
            os.replace(tmp, self._path(digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def forget(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(digest).unlink()
