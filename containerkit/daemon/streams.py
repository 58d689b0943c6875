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


DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
"""dockerd's default detach sequence (``detachKeys`` in a request replaces it)."""

_CTRL_KEYS = [f"ctrl-{c}" for c in "@abcdefghijklmnopqrstuvwxyz[\\]^_"]
"""moby's ``term.ASCII``: ``ctrl-@`` is 0, ``ctrl-a`` 1, ... ``ctrl-_`` 31."""


def detach_key_bytes(keys: str) -> bytes:
    """moby's ``term.ToBytes``: a comma list of single characters, ``ctrl-<x>`` and ``DEL``.

    :class:`ValueError` names the key it does not know (the routes turn it into docker's 400).
    """
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1 and key.isascii():
            codes.append(ord(key))
        elif key in _CTRL_KEYS:
            codes.append(_CTRL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: {key!r}")
    return bytes(codes)


class DetachMatcher:
    """Finds the detach sequence in stdin as it streams by (split across reads or not).

    Bytes that may start the sequence are held back; if the sequence breaks they go on to the
    process, and once it is complete nothing of it reaches the process (as moby's escape proxy).
    """

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._held = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """``(bytes for the process, detached)``."""
        keys = self._keys
        if not keys or (self._held == 0 and keys[0] not in data):
            return data, False
        out = bytearray()
        for byte in data:
            if byte == keys[self._held]:
                self._held += 1
                if self._held == len(keys):
                    self._held = 0
                    return bytes(out), True
                continue
            out += keys[: self._held]
            self._held = 0
            if byte == keys[0]:
                self._held = 1
                if len(keys) == 1:
                    self._held = 0
                    return bytes(out), True
            else:
                out.append(byte)
        return bytes(out), False


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
