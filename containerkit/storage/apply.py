"""The diff applier: a layer blob into the snapshot store (containerd's ``Applier``).

The store only keeps trees (prepare / commit); reading the tar is the unpacker's job
(:mod:`containerkit.images.unpack`, with its threat model). This module puts the two together:
prepare a staging dir, unpack into it (overlay whiteouts or applied ones, as the store's driver
needs), commit it by one rename, and remove whatever is left in every case, so a bad or hostile
layer leaves nothing behind. A layer already in the store (or committed by another process
meanwhile) is not unpacked again; its stored result is checked against ``expected_diff_id``.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from containerkit.images.unpack import UnpackResult, unpack_layer
from containerkit.storage.snapshots import SnapshotStore

__all__ = ["apply_layer"]


def apply_layer(
    store: SnapshotStore, chain_id: str, blob: Path | BinaryIO, *, expected_diff_id: str | None = None
) -> UnpackResult:
    """Unpack ``blob`` as layer ``chain_id`` of ``store`` (verified against ``expected_diff_id``), once."""
    if store.has_layer(chain_id):
        return store.check_layer(chain_id, expected_diff_id)
    stage = store.prepare_layer(chain_id)
    try:
        result = unpack_layer(
            blob,
            stage.path,
            whiteouts=stage.whiteouts,
            max_bytes=store.max_layer_bytes,
            expected_diff_id=expected_diff_id,
        )
        return store.commit_layer(stage, result, expected_diff_id=expected_diff_id)
    finally:
        store.abort_layer(stage)
