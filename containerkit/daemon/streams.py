"""Docker's stream formats and the I/O of a hijacked connection.

Without a TTY every chunk is a frame: an 8-byte header ``[stream, 0, 0, 0, size (uint32 BE)]``
and the payload; with a TTY the bytes go out raw. The client writes stdin raw on the same
socket and half-closes it at EOF; the daemon half-closes its side when the output has ended.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import BinaryIO

from containerkit.engine.attach import DEFAULT_DETACH_KEYS, DetachMatcher, detach_key_bytes

__all__ = [
    "DEFAULT_DETACH_KEYS",
    "STDERR",
    "STDOUT",
    "SYSERR",
    "DetachMatcher",
    "content_type",
    "detach_key_bytes",
    "finish",
    "frame",
    "pump_stdin",
    "stream_number",
]

STDOUT = 1
STDERR = 2
SYSERR = 3

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def stream_number(name: str) -> int:
    return STDERR if name == "stderr" else STDOUT


def content_type(tty: bool, api_version: tuple[int, int]) -> str:
    """The multiplexed media type exists from API 1.42; older clients are told raw-stream."""
    return RAW if tty or api_version < (1, 42) else MULTIPLEXED


def pump_stdin(
    rfile: BinaryIO,
    write: Callable[[bytes], None],
    close: Callable[[], None],
    *,
    detach_keys: bytes = b"",
    on_detach: Callable[[], None] | None = None,
) -> threading.Thread:
    """Copy what the client sends into ``write`` until it half-closes (or drops), then ``close``.

    With ``detach_keys`` (a tty's stream, as in moby), the sequence ends the copy without
    ``close``: the process keeps its stdin and runs on, and ``on_detach`` ends the client's stream.
    """
    matcher = DetachMatcher(detach_keys)

    def run() -> None:
        detached = False
        try:
            while True:
                read1 = getattr(rfile, "read1", None)
                data = read1(65536) if read1 is not None else rfile.read(65536)
                if not data:
                    break
                data, detached = matcher.feed(data)
                if data:
                    write(data)
                if detached:
                    break
        except Exception:
            pass
        finally:
            if detached:
                if on_detach is not None:
                    on_detach()
            else:
                with contextlib.suppress(OSError):
                    close()

    thread = threading.Thread(target=run, name="stdin-pump", daemon=True)
    thread.start()
    return thread


def finish(sock: socket.socket) -> None:
    """End the stream: half-close (the client reads to EOF), then release the socket."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        sock.close()
