"""Which repositories a blob was pulled from, so a push to the same registry mounts it
(``POST .../uploads/?mount=<digest>&from=<repo>``) instead of uploading it again (docker's V2Metadata).

One small JSON file per blob under ``root``, replaced atomically. It is a hint: a lost entry only
costs an upload, and an entry whose blob is gone is never used (the push checks the store first).
Its temp file is held (:mod:`containerkit.linux.staging`) while written: one a killed writer left
is removed by recovery (:meth:`BlobSources.reap`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from containerkit.images.content import check_digest
from containerkit.linux import staging

__all__ = ["BlobSources"]

_MAX_SOURCES = 8
_TMP = ".tmp-"


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
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=_TMP + staging.owner_tag()[1:])
        try:
            staging.hold(fd)
            with os.fdopen(fd, "w") as out:
                json.dump(entries[:_MAX_SOURCES], out)
            os.replace(tmp, self._path(digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def reap(self) -> list[str]:
        """Remove the temp files whose writer is gone (a pull killed mid-write); the names removed."""
        return staging.reap(self.root, prefix=_TMP)

    def forget(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(digest).unlink()
