"""The child process of :func:`containerkit.storage._assemble_worker.gzip_rebuilt`: one layer's
tar written again and gzipped to stdout, then a report on the status fd. Apart from the parent's
side so that it imports only the rebuild and the gzip (not subprocess): a push starts one per
layer, and its imports are most of its start.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from containerkit.errors import ContainerkitError
from containerkit.images.deflate import Deflater
from containerkit.storage._assemble import assemble

__all__ = ["main"]

_MESSAGE_MAX = 600
"""An error's text in the report is cut here: the parent reads the report only once the child
has exited, so all of it must fit the pipe's buffer (at least one page, even escaped)."""


class _FdWriter:
    """Compressed pieces written whole to ``fd`` (the data pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0

    def put(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.written += len(data)
        return True


def _rebuild(layer_dir: Path, split: Path, diff_id: str) -> dict[str, object]:
    out = _FdWriter(sys.stdout.fileno() if sys.stdout is not None else 1)
    deflater = Deflater(out.put)
    size = assemble(layer_dir, split, deflater, diff_id=diff_id)  # raises unless it hashed to diff_id
    deflater.finish()
    null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    os.dup2(null, out.fd)  # the pipe's end closed: the parent sees the stream end before the report
    os.close(null)
    return {"diff_id": diff_id, "size": size, "compressed": out.written}


def main(argv: list[str]) -> int:
    """The child: ``<status fd> <layer dir> <tar-split> <diff id>``; the gzip goes to stdout."""
    status_fd = int(argv[0])
    code = 1
    try:
        report: dict[str, object] = _rebuild(Path(argv[1]), Path(argv[2]), argv[3])
        code = 0
    except ContainerkitError as err:
        report = {"kind": err.kind, "message": err.message}
    except FileNotFoundError as err:  # the split (a file of the layer is an IntegrityError)
        report = {"kind": "not_found", "message": f"layer {argv[3]}: cannot rebuild its tar: {err}"}
    except Exception as err:
        report = {"kind": "error", "message": f"layer {argv[3]}: rebuilding its tar failed: {err!r}"}
    if len(str(report.get("message", ""))) > _MESSAGE_MAX:  # the whole report fits the pipe
        report["message"] = str(report["message"])[:_MESSAGE_MAX] + "..."
    with contextlib.suppress(OSError):  # the parent went away
        os.write(status_fd, json.dumps(report).encode())
    return code
