"""Decoding the daemon's streams: docker's multiplexed stdout/stderr frames, and JSON sequences.

Multiplexed frames (logs, attach and exec without a tty) are an 8-byte header
``[stream, 0, 0, 0, size (uint32 big-endian)]`` and ``size`` bytes; a tty stream is raw bytes.
JSON streams (events, load and import progress) are concatenated objects, usually one a line.
"""

from __future__ import annotations

import codecs
import json
import struct
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from containerkit.errors import DaemonUnavailable, RuntimeFailure

__all__ = ["Stream", "demux", "json_objects", "raw"]

Stream = Literal["stdout", "stderr"]

_HEADER = struct.Struct(">BxxxL")
_STREAMS: dict[int, Stream] = {0: "stdout", 1: "stdout", 2: "stderr"}
_SYSTEM_ERROR = 3


def demux(chunks: Iterable[bytes]) -> Iterator[tuple[Stream, bytes]]:
    """``(stream, payload)`` per frame; frame 3 (an in-band daemon error) raises."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(buffer)
            end = _HEADER.size + size
            if len(buffer) < end:
                break
            payload = bytes(buffer[_HEADER.size : end])
            del buffer[:end]
            if kind == _SYSTEM_ERROR:
                raise RuntimeFailure(
                    payload.decode("utf-8", "replace").strip() or "error in the output stream"
                )
            if kind not in _STREAMS:
                raise DaemonUnavailable(f"not a multiplexed stream: frame header names stream {kind}")
            if payload:
                yield _STREAMS[kind], payload
    if buffer:
        raise DaemonUnavailable(f"stream ended inside a frame ({len(buffer)} bytes left over)")


def raw(chunks: Iterable[bytes]) -> Iterator[tuple[Stream, bytes]]:
    """A tty stream: everything is stdout."""
    for chunk in chunks:
        if chunk:
            yield "stdout", chunk


def json_objects(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Each JSON object of a stream of concatenated (or newline separated) objects."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span two chunks
    text = ""
    for chunk in chunks:
        text += utf8.decode(chunk)
        while True:
            text = text.lstrip()
            if not text:
                break
            try:
                value, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                break
            text = text[end:]
            if isinstance(value, dict):
                yield value
    if text.strip():
        raise DaemonUnavailable(f"stream ended inside a JSON object: {text[:200]!r}")
