"""What unpacking a layer yields, apart from the unpacker: a snapshot store reads it back for
each layer of a container's image, without loading tar, zstd and the extractor."""

from __future__ import annotations

from containerkit._model import model

__all__ = ["DEFAULT_MAX_BYTES", "UnpackResult"]

DEFAULT_MAX_BYTES = 32 << 30
"""Default cap on a layer's uncompressed size: far above any sane layer, far below a full disk."""


@model
class UnpackResult:
    """What unpacking one layer found: its diff_id, uncompressed size, and the whiteouts it held."""

    diff_id: str
    size: int
    whiteouts: tuple[str, ...] = ()
    """Paths (relative to the layer root) this layer deletes from the layers below."""
    opaque_dirs: tuple[str, ...] = ()
    """Directories (relative, ``""`` for the root) whose lower content this layer hides."""
