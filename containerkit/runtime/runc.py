"""The runc/crun backend: drive an OCI runtime binary over a bundle the engine wrote.

The shim uses ``create`` + ``start`` rather than a foreground ``run``: ``create`` sets the
container up and returns (the init is then re-parented to the shim, a subreaper), and a
successful ``start`` is the moment the user's process execs, which is what
:func:`~containerkit.runtime.shim.start_container` reports. Errors come from runc's JSON log
(``--log``) and are mapped to containerkit's error kinds with docker's exit codes (127 for a
missing command, 126 for one that cannot be executed).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from containerkit.errors import CommandNotFound, ContainerkitError, RuntimeFailure, Unavailable
from containerkit.runtime import _sync

__all__ = [
    "RUNTIMES",
    "RuncBackend",
    "available",
    "classify_error",
    "find_binary",
    "unavailable_reason",
]

RUNTIMES = ("runc", "crun")

_HYBRID_REFUSAL = "cgroups in hybrid mode not supported"
_RUNTIME_FAILED = 125
"""docker's exit code when the runtime itself failed (not the container's command)."""


def find_binary(name: str) -> str:
    """Absolute path of the runtime binary ``name``; :class:`Unavailable` when not installed."""
    if name not in RUNTIMES:
        raise Unavailable(f"unknown OCI runtime {name!r} (expected one of {', '.join(RUNTIMES)})")
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise Unavailable(f"OCI runtime {name!r} is not installed (not found in PATH)")
    return found


def classify_error(message: str) -> tuple[type[ContainerkitError], int]:
    """The error class and docker exit code for a runtime's failure message."""
    lowered = message.lower()
    if _HYBRID_REFUSAL in lowered:
        return Unavailable, _RUNTIME_FAILED
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return CommandNotFound, _sync.exit_code_for(CommandNotFound)
    if "permission denied" in lowered or "exec format error" in lowered:
        return RuntimeFailure, _sync.exit_code_for(_sync.PermissionDenied)
    return RuntimeFailure, _RUNTIME_FAILED


@functools.cache
def unavailable_reason(name: str) -> str | None:
    """Why ``name`` cannot run containers on this machine, or None when it can.

    crun 1.8 refuses cgroup v1 hybrid layouts (controllers on v1 plus a v2 mount) at the first
    container it runs; a throwaway bundle with no command finds that out in a few milliseconds.
    """
    try:
        binary = find_binary(name)
    except Unavailable as exc:
        return exc.message
    with tempfile.TemporaryDirectory(prefix="containerkit-probe-") as tmp:
        bundle = Path(tmp)
        (bundle / "rootfs").mkdir()
        config = {
            "ociVersion": "1.0.2",
            "process": {"args": ["/containerkit-probe"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "mounts": [],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
        }
        (bundle / "config.json").write_text(json.dumps(config))
        result = subprocess.run(
            [binary, "--root", str(bundle / "state"), "run", "--bundle", str(bundle), "probe"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        subprocess.run(
            [binary, "--root", str(bundle / "state"), "delete", "--force", "probe"],
            capture_output=True,
            timeout=30,
        )
    if _HYBRID_REFUSAL in result.stderr:
        return f"{name}: {result.stderr.strip().splitlines()[-1]} ({binary})"
    return None


def available(name: str) -> bool:
    """True when the runtime ``name`` is installed and can run containers here."""
    return unavailable_reason(name) is None


class RuncBackend:
    """One runtime binary with one state root (``--root``); every call logs JSON to ``log_file``."""

    def __init__(self, name: str, *, root: Path, log_file: Path, binary: str | None = None) -> None:
        self.name = name
        self.binary = binary or find_binary(name)
        self.root = Path(root)
        self.log_file = Path(log_file)

    def _argv(self, *args: str) -> list[str]:
        return [
            self.binary,
            "--root",
            str(self.root),
            "--log",
            str(self.log_file),
            "--log-format",
            "json",
            *args,
        ]

    def last_error(self, default: str) -> str:
        """The last error the runtime logged (its ``msg``), or ``default``."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return default
        for line in reversed(lines):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("level") in ("error", "fatal"):
                return str(record.get("msg") or default)
        return default

    def _check(self, result: subprocess.CompletedProcess[bytes], what: str, container_id: str) -> None:
        if result.returncode == 0:
            return
        stderr = result.stderr.decode(errors="replace").strip() if result.stderr else ""
        message = self.last_error(stderr or f"exit status {result.returncode}")
        cls, _code = classify_error(message)
        raise cls(f"{self.name} {what} {container_id}: {message}")

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path,
        stdio: tuple[int, int, int],
        console_socket: Path | None = None,
    ) -> None:
        """``create``: the container's init waits for :meth:`start`; stdio fds pass through to it."""
        args = ["create", "--bundle", str(bundle), "--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        result = subprocess.run(
            self._argv(*args, container_id),
            stdin=stdio[0],
            stdout=stdio[1],
            stderr=stdio[2],
            check=False,
        )
        if result.returncode != 0:
            message = self.last_error(f"exit status {result.returncode}")
            if _HYBRID_REFUSAL in message:
                raise Unavailable(f"{self.name} cannot run containers here: {message}")
            cls, _code = classify_error(message)
            raise cls(f"{self.name} create {container_id}: {message}")

    def start(self, container_id: str) -> None:
        """Let the created container's process exec."""
        result = subprocess.run(
            self._argv("start", container_id), stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
        self._check(result, "start", container_id)

    def kill(self, container_id: str, sig: int) -> None:
        result = subprocess.run(
            self._argv("kill", container_id, str(sig)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        self._check(result, "kill", container_id)

    def delete(self, container_id: str) -> None:
        """``delete --force``: removes the runtime's state and cgroup; a missing container is fine."""
        result = subprocess.run(
            self._argv("delete", "--force", container_id),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0 and b"does not exist" not in result.stderr:
            self._check(result, "delete", container_id)

    def exec_argv(self, container_id: str, process_file: Path, *, tty: bool = False) -> list[str]:
        """The command line of a foreground ``exec`` (its exit status is the process's)."""
        args = ["exec", "--process", str(process_file)]
        if tty:
            args.append("--tty")
        return self._argv(*args, container_id)
