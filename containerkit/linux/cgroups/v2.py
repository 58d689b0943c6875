"""cgroup v2: one unified tree, controllers enabled top-down through ``cgroup.subtree_control``."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path

from containerkit.errors import ContainerkitError, InvalidArgument, NotFound, Timeout, Unavailable
from containerkit.linux import bpf
from containerkit.spec import Resources

from .base import (
    CgroupManager,
    CgroupStats,
    mkdir_p,
    read,
    read_keyed,
    read_limit,
    read_optional,
    wait_for,
    write,
)
from .devices import DeviceRule, build_device_program

__all__ = ["CPU_PERIOD_US", "CgroupV2Manager", "shares_to_weight", "swap_limit"]

CPU_PERIOD_US = 100_000
# the controllers Resources can drive; others are left as the parent has them
WANTED_CONTROLLERS = ("cpu", "cpuset", "memory", "pids")
_FREEZE_TIMEOUT = 5.0


def shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` (2..262144) -> v2 ``cpu.weight`` (1..10000), the conversion runc uses."""
    return 1 + ((shares - 2) * 9999) // 262142


def swap_limit(resources: Resources) -> int | None:
    """Swap alone (v2 ``memory.swap.max``) from docker's memory+swap total.

    Unset ``memory_swap`` with a memory limit allows as much swap as memory, like docker.
    """
    memory, total = resources.memory, resources.memory_swap
    if memory is None:
        if total is not None:
            raise InvalidArgument("memory_swap: needs a memory limit as well")
        return None
    if total is None:
        return memory
    if total < memory:
        raise InvalidArgument(f"memory_swap: {total} is below memory {memory} (it is memory plus swap)")
    return total - memory


def _enable_controllers(parent: Path) -> None:
    """Let children of ``parent`` use the wanted controllers that ``parent`` itself has."""
    available = set((read_optional(parent / "cgroup.controllers") or "").split())
    enabled = set((read_optional(parent / "cgroup.subtree_control") or "").split())
    missing = [c for c in WANTED_CONTROLLERS if c in available and c not in enabled]
    if missing:
        write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


class CgroupV2Manager(CgroupManager):
    """A cgroup in the unified hierarchy mounted at ``root``."""

    def __init__(self, name: str, root: Path = Path("/sys/fs/cgroup")) -> None:
        super().__init__(name, root)
        self.path = self.root / self.name

    @property
    def paths(self) -> dict[str, Path]:
        return {"unified": self.path}

    def create(self) -> None:
        current = self.root
        for part in self.name.split("/"):
            _enable_controllers(current)
            current = current / part
            mkdir_p(current)
        kind = read_optional(self.path / "cgroup.type")
        if kind == "domain invalid":
            raise Unavailable(f"cgroup {self.path} is 'domain invalid' (below a threaded cgroup)")

    def _require(self, filename: str, controller: str) -> Path:
        path = self.path / filename
        if not path.exists():
            have = read_optional(self.path / "cgroup.controllers")
            raise Unavailable(
                f"cgroup controller {controller!r} is not available for {self.path} "
                f"({filename} missing; enabled controllers: {have or 'none'!s})"
            )
        return path

    def _optional(self, filename: str) -> Path | None:
        path = self.path / filename
        return path if path.exists() else None

    def apply(self, resources: Resources) -> None:
        swap = swap_limit(resources)
        writes: list[tuple[Path | None, str]] = []
        if resources.memory is not None:
            writes.append((self._require("memory.max", "memory"), str(resources.memory)))
            if resources.memory_swap is not None:
                writes.append((self._require("memory.swap.max", "memory"), str(swap)))
            else:
                writes.append((self._optional("memory.swap.max"), str(swap)))
        else:
            writes.append((self._optional("memory.max"), "max"))
            writes.append((self._optional("memory.swap.max"), "max"))
        if resources.cpus is not None:
            quota = round(resources.cpus * CPU_PERIOD_US)
            writes.append((self._require("cpu.max", "cpu"), f"{quota} {CPU_PERIOD_US}"))
        else:
            writes.append((self._optional("cpu.max"), "max"))
        if resources.cpu_shares is not None:
            writes.append((self._require("cpu.weight", "cpu"), str(shares_to_weight(resources.cpu_shares))))
        if resources.pids is not None:
            writes.append((self._require("pids.max", "pids"), str(resources.pids)))
        else:
            writes.append((self._optional("pids.max"), "max"))
        if resources.cpuset_cpus is not None:  # unset: the parent's (the file left as it is)
            writes.append((self._require("cpuset.cpus", "cpuset"), resources.cpuset_cpus))
        if resources.cpuset_mems is not None:
            writes.append((self._require("cpuset.mems", "cpuset"), resources.cpuset_mems))
        # every controller was checked above, so a missing one never leaves half the limits set
        for path, value in writes:
            if path is not None:
                write(path, value)

    def apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        """A device filter program built from ``rules``, attached in place of any earlier one.

        Attached with ``BPF_F_ALLOW_MULTI``: a program a parent has (systemd's) still runs too, so
        a device either one denies stays denied. The cgroup holds the program; it goes with it.
        """
        program = build_device_program(rules)
        try:
            cgroup_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"cgroup {self.path} does not exist") from None
        try:
            try:
                old = bpf.attached_program_ids(cgroup_fd, bpf.BPF_CGROUP_DEVICE)
                prog_fd = bpf.load_program(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, program, name="ck_devices")
            except OSError as exc:
                raise _bpf_error(self.path, exc) from exc
            try:
                bpf.attach_cgroup_program(cgroup_fd, prog_fd, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
            except OSError as exc:
                raise _bpf_error(self.path, exc) from exc
            finally:
                os.close(prog_fd)
            for prog_id in old:  # the new program is in place first: no moment without a filter
                _detach(cgroup_fd, prog_id)
        finally:
            os.close(cgroup_fd)

    def _frozen(self) -> bool:
        return read_keyed(self.path / "cgroup.events").get("frozen") == 1

    def _can_freeze(self) -> bool:
        return (self.path / "cgroup.freeze").exists()

    def freeze(self) -> None:
        control = self._require("cgroup.freeze", "freezer")
        write(control, 1)
        try:
            wait_for(self._frozen, _FREEZE_TIMEOUT, f"{self.path} to freeze (cgroup.events frozen 1)")
        except Timeout:
            write(control, 0)  # a half-frozen cgroup is worse than a running one
            raise

    def thaw(self) -> None:
        write(self._require("cgroup.freeze", "freezer"), 0)
        wait_for(lambda: not self._frozen(), _FREEZE_TIMEOUT, f"{self.path} to thaw")

    def is_frozen(self) -> bool:
        return self._frozen()

    def stats(self) -> CgroupStats:
        current = read_optional(self.path / "pids.current")
        if current is None:
            read(self.path / "cgroup.procs")  # a missing cgroup is NotFound, not zeros
        return CgroupStats(
            memory_usage=int(read_optional(self.path / "memory.current") or 0),
            memory_limit=read_limit(self.path / "memory.max"),
            cpu_usage_ns=read_keyed(self.path / "cpu.stat").get("usage_usec", 0) * 1000,
            pids=int(current) if current is not None else len(self.pids()),
            pids_limit=read_limit(self.path / "pids.max"),
        )

    def oom_kill_count(self) -> int:
        return read_keyed(self.path / "memory.events").get("oom_kill", 0)

    def _kill_file(self) -> Path | None:
        return self.path / "cgroup.kill"


def _detach(cgroup_fd: int, prog_id: int) -> None:
    try:
        prog_fd = bpf.program_fd_by_id(prog_id)
    except FileNotFoundError:
        return  # already gone
    try:
        with contextlib.suppress(FileNotFoundError):
            bpf.detach_cgroup_program(cgroup_fd, prog_fd, bpf.BPF_CGROUP_DEVICE)
    finally:
        os.close(prog_fd)


def _bpf_error(path: Path, exc: OSError) -> ContainerkitError:
    message = f"cannot set the device filter of cgroup {path}: {exc.strerror}"
    if exc.errno == errno.EBADF:
        return Unavailable(f"{message} (not a directory of a cgroup2 mount)")
    if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOSYS, errno.EINVAL):
        return Unavailable(message)
    return ContainerkitError(message)
