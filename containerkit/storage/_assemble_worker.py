"""A layer's tar written again and gzipped in a child process that streams it to its parent.

Writing a layer's tar again from its directory and tar-split (:func:`~containerkit.storage.
tarsplit.assemble`) is Python that holds the GIL for about 0.2 s per 100 MB layer: in the
process that pushes (the daemon is threaded) two layers rebuilt at once take turns on one core.
:func:`gzip_rebuilt` rebuilds each layer in a fresh interpreter (``python -I -S``, never a fork
of the threaded parent) that gzips it (the same bytes as
:func:`~containerkit.images.deflate.gzip_chunks`: they depend only on the tar) into a pipe the
parent reads and uploads from. Once the tar has ended and its digest was checked, the child
reports on a second pipe the diff id it verified and the sizes it wrote; the parent raises
after the last chunk unless that report matches what it asked for and what it read, so an
upload fed from here is cancelled, never committed, for a tar that was not verified. The child
is killed and reaped whenever the parent stops reading.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

from containerkit.errors import ContainerkitError, RuntimeFailure, error_class_for
from containerkit.images.deflate import Deflater
from containerkit.storage.tarsplit import assemble

__all__ = ["gzip_rebuilt", "main"]

_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20
"""The data pipe's buffer (the kernel's default is 64 KiB): the child writes ahead of the upload."""
_REPORT_MAX = 1 << 16
_MESSAGE_MAX = 600
"""An error's text in the report is cut here: the parent reads the report only once the child
has exited, so all of it must fit the pipe's buffer (at least one page, even escaped)."""
_ENTRY = """\
import json, os, sys
sys.path[:0] = json.loads(sys.argv[1])
try:
    from containerkit.storage._assemble_worker import main
except BaseException as err:
    report = {"kind": "error", "message": "cannot import the worker: %r" % (err,)}
    os.write(int(sys.argv[2]), json.dumps(report).encode())
    raise SystemExit(1)
sys.exit(main(sys.argv[2:]))
"""
"""What the child runs: ``-I -S`` leaves out site (and an editable install's finder), so the
parent hands over the directories it imports from."""


@functools.cache
def _import_path() -> str:
    """The parent's import directories, as JSON: this package's root first."""
    root = str(Path(__file__).resolve().parents[2])
    dirs = [root] + [p for p in sys.path if p and p != root and os.path.exists(p)]
    return json.dumps(dirs)


def gzip_rebuilt(layer_dir: Path, split: Path, *, diff_id: str) -> Generator[bytes, None, None]:
    """The gzip stream of layer ``layer_dir``'s tar written again from ``split`` in a child
    process, as it is made. After the last chunk: the child's check that the tar hashed to
    ``diff_id`` (its :class:`~containerkit.errors.IntegrityError` otherwise, naming the layer),
    or a :class:`~containerkit.errors.RuntimeFailure` naming the layer if it died or its report
    does not match. Closing the generator early kills the child."""
    label = f"layer {diff_id}"
    if not sys.executable:
        raise RuntimeFailure(f"{label}: no Python interpreter to rebuild its tar with")
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _ENTRY,
                _import_path(),
                str(status_w),
                os.fspath(layer_dir),
                os.fspath(split),
                diff_id,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(status_w,),
            close_fds=True,
        )
    except OSError as err:
        os.close(status_r)
        raise RuntimeFailure(f"{label}: cannot start the process that rebuilds its tar: {err}") from None
    finally:
        os.close(status_w)
    assert proc.stdout is not None
    try:
        with contextlib.suppress(OSError):  # a smaller pipe only costs more switches
            fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        received = 0
        while chunk := proc.stdout.read(_CHUNK):
            received += len(chunk)
            yield chunk
        code = proc.wait()
        _check(_read_report(status_r), code, label, diff_id, received)
    finally:
        os.close(status_r)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def _read_report(fd: int) -> bytes:
    """What the child, which has exited, wrote on ``fd``: read without blocking, so a copy of
    the pipe's write end that a fork elsewhere in this process still holds cannot hang it."""
    os.set_blocking(fd, False)
    parts = []
    size = 0
    with contextlib.suppress(BlockingIOError):
        while size <= _REPORT_MAX and (part := os.read(fd, _REPORT_MAX)):
            parts.append(part)
            size += len(part)
    return b"".join(parts)


def _check(raw: bytes, code: int, label: str, diff_id: str, received: int) -> None:
    """Raise unless the child exited 0 after reporting ``diff_id`` verified and ``received`` bytes."""
    try:
        report = json.loads(raw) if raw else None
    except ValueError:
        report = None
    if isinstance(report, dict) and "kind" in report:
        raise error_class_for(500, str(report.get("kind")))(str(report.get("message")))
    if code < 0:
        raise RuntimeFailure(f"{label}: the process rebuilding its tar was killed by signal {-code}")
    if not isinstance(report, dict) or code != 0:
        raise RuntimeFailure(f"{label}: the process rebuilding its tar exited with {code} without a report")
    if report.get("diff_id") != diff_id or report.get("compressed") != received:
        raise RuntimeFailure(
            f"{label}: the process rebuilding its tar reported {report!r}, "
            f"not {diff_id} in {received} compressed bytes"
        )


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
