"""nftables through libnftables, in-process: the library the ``nft`` command is built on.

Running ``nft`` costs a process start (~4-7 ms) per call; publishing and unpublishing a port
takes a few calls, on every container start and removal. The same command language and JSON
output, without the process. ``None`` from :func:`open_nftables` (no ``libnftables.so.1``)
means callers fall back to the ``nft`` command.
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["Nftables", "open_nftables"]

_OUTPUT_HANDLE = 1 << 3
_OUTPUT_JSON = 1 << 4

_LOCK = threading.Lock()
_INSTANCE: Nftables | None = None
_LOADED = False


class Nftables:
    """One libnftables context; calls are serialised (a context is not thread-safe)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        self._lock = threading.Lock()

    def run(self, commands: str, *, json: bool = False, handles: bool = False) -> tuple[int, str, str]:
        """``(status, output, errors)`` of ``commands`` (nft's language; one transaction)."""
        flags = (_OUTPUT_JSON if json else 0) | (_OUTPUT_HANDLE if handles else 0)
        with self._lock:
            self._lib.nft_ctx_output_set_flags(self._ctx, flags)
            status = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
            output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            errors = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        return status, output, errors


def open_nftables() -> Nftables | None:
    """The process's libnftables context, or None where the library is not installed."""
    global _INSTANCE, _LOADED
    with _LOCK:
        if not _LOADED:
            _LOADED = True
            try:
                _INSTANCE = Nftables(ctypes.CDLL("libnftables.so.1", use_errno=True))
            except OSError:
                _INSTANCE = None
        return _INSTANCE
