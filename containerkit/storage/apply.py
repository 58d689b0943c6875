"""The diff applier: a layer blob into the snapshot store (containerd's ``Applier``).

The store only keeps trees (prepare / commit); reading the tar is the unpacker's job
(:mod:`containerkit.images.unpack`, with its threat model). This module puts the two together:
prepare a staging dir, unpack into it (overlay whiteouts or applied ones, as the store's driver
needs), commit it by one rename, and remove whatever is left in every case, so a bad or hostile
layer leaves nothing behind. A layer already in the store (or committed by another process
meanwhile) is not unpacked again; its stored result is checked against ``expected_diff_id``.

While unpacking, the tar's split is recorded (:mod:`containerkit.storage.tarsplit`), so the
layer tar can be written again from the layer dir and the blob need not be kept.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from containerkit.images.unpack import UnpackResult, unpack_layer
from containerkit.storage.snapshots import SnapshotStore
from containerkit.storage.tarsplit import Recorder, TeeReader

__all__ = ["apply_layer"]


def apply_layer(
    store: SnapshotStore, chain_id: str, blob: Path | BinaryIO, *, expected_diff_id: str | None = None
) -> UnpackResult:
    """Unpack ``blob`` as layer ``chain_id`` of ``store`` (verified against ``expected_diff_id``), once."""
    if store.has_layer(chain_id):
        return store.check_layer(chain_id, expected_diff_id)
    stage = store.prepare_layer(chain_id)
    split = stage.path.parent / "tar-split.gz"
    published = False
    try:
        with contextlib.ExitStack() as stack:
            raw: BinaryIO = stack.enter_context(open(blob, "rb")) if isinstance(blob, Path) else blob
            recorder = Recorder(split)
            stack.callback(recorder.close)
            result = unpack_layer(
                TeeReader(raw, recorder),  # type: ignore[arg-type]  # read() is all it uses
                stage.path,
                whiteouts=stage.whiteouts,
                max_bytes=store.max_layer_bytes,
                expected_diff_id=expected_diff_id,
            )
        if recorder.complete:
            # before the layer appears: a layer without its split only keeps its blob longer
            os.replace(split, store.tarsplit_path(chain_id))
            published = True
        return store.commit_layer(stage, result, expected_diff_id=expected_diff_id)
    except BaseException:
        if published and not store.has_layer(chain_id):
            store.tarsplit_path(chain_id).unlink(missing_ok=True)
        raise
    finally:
        store.abort_layer(stage)
