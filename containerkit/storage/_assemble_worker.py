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

from containerkit.errors import RuntimeFailure, error_class_for

__all__ = ["gzip_rebuilt"]

_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20
"""The data pipe's buffer (the kernel's default is 64 KiB): the child writes ahead of the upload."""
_REPORT_MAX = 1 << 16
_ENTRY = """\
import json, os, sys
sys.path[:0] = json.loads(sys.argv[1])
try:
    from containerkit.storage._assemble_child import main
except BaseException as err:
    report = {"kind": "error", "message": "cannot import the worker: %r" % (err,)}
    os.write(int(sys.argv[2]), json.dumps(report).encode())
    raise SystemExit(1)
sys.exit(main(sys.argv[2:]))
"""
"""What the child runs (:mod:`containerkit.storage._assemble_child`, which imports little):
``-I -S`` leaves out site (and an editable install's finder), so the parent hands over the
directories it imports from."""


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
