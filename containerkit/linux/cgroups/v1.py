"""cgroup v1: one directory per hierarchy, plus the unified tree on hybrid hosts.

The cgroup is made in *every* mounted v1 hierarchy (blkio, cpuset, devices, perf_event,
name=systemd... not only the controllers limits use): a process left in a host root cgroup of
any hierarchy can mount that hierarchy from inside and reach its ``release_agent``, and one left
in the root ``devices`` cgroup may open every host device. On a hybrid host the cgroup is also
made in the controller-less v2 mount: that gives ``cgroup.kill`` (race-free kill of every
process) and ``cgroup.events``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from containerkit.errors import InvalidArgument, Timeout, Unavailable
from containerkit.spec import Resources

from .base import (
    CgroupManager,
    CgroupStats,
    mkdir_p,
    read,
    read_keyed,
    read_limit,
    read_optional,
    validate_name,
    write,
)
from .devices import DeviceRule
from .v2 import CPU_PERIOD_US, CgroupV2Manager, swap_limit

__all__ = ["CONTROLLERS", "CgroupV1Manager"]

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
"""The controllers limits, stats and the freezer use; the cgroup is made in every hierarchy."""
_CPUSET_FILES = ("cpuset.cpus", "cpuset.mems")
_UNLIMITED = -1
_FREEZE_TIMEOUT = 5.0


def _is_hierarchy(path: Path) -> bool:
    return (path / "cgroup.procs").exists()


class CgroupV1Manager(CgroupManager):
    """A cgroup in every v1 hierarchy under ``root`` (and in ``unified``, if given)."""

    def __init__(
        self, name: str, root: Path = Path("/sys/fs/cgroup"), *, unified: Path | None = None
    ) -> None:
        super().__init__(name, root)
        hierarchies = _hierarchies(self.root)
        self._paths = {h.name: h / self.name for h, _mount in hierarchies}
        # co-mounted controllers share a directory; told apart by their mounts alone
        self._distinct = list({mount: h / self.name for h, mount in hierarchies}.values())
        self._unified: CgroupV2Manager | None = None
        if unified is not None and _is_hierarchy(unified):
            self._unified = CgroupV2Manager(name, unified)
            self._paths["unified"] = self._unified.path
            self._distinct.append(self._unified.path)

    @property
    def paths(self) -> dict[str, Path]:
        return dict(self._paths)

    def claim(self, spare: str) -> list[Path]:
        """Rename ``spare`` to this cgroup in every v1 hierarchy where it is this one's sibling
        (the v2 tree of a hybrid host refuses renames: made and joined as usual). A hierarchy
        where the rename fails (no ``spare`` there, this name taken) keeps its ``spare``."""
        validate_name(spare)
        if Path(spare).parent != Path(self.name).parent:
            raise InvalidArgument(f"cgroup {spare} is no sibling of {self.name}: cannot rename it")
        renamed = []
        for path in self._renamable():
            try:
                os.rename(path.with_name(Path(spare).name), path)
            except OSError:
                continue
            renamed.append(path)
        self._claimed.update(renamed)
        return renamed

    def claimed_everywhere(self) -> bool:
        return bool(self._claimed) and self._claimed == set(self._renamable())

    def _renamable(self) -> list[Path]:
        """The distinct v1 directories (the v2 tree of a hybrid host refuses renames)."""
        unified = None if self._unified is None else self._unified.path
        return [path for path in self._distinct if path != unified]

    def _dirs(self) -> list[Path]:
        """Distinct directories, from the scan of the hierarchies (no path walk per call: a
        start moves its init through these, and a realpath of each was a dozen syscalls)."""
        return list(self._distinct)

    def destroy(self, timeout: float = 5.0) -> None:
        if self._rmdir_everywhere():
            return
        super().destroy(timeout)

    def _rmdir_everywhere(self) -> bool:
        """One rmdir of this cgroup in every hierarchy, also one mounted since this manager was
        made: True when it is gone.

        The common end of a container (no process left, no child cgroup) in a dozen syscalls,
        without the stats and walks of the general path, which runs when this says False.
        """
        try:
            tops = [
                Path(entry.path) / self.name for entry in os.scandir(self.root) if entry.name != "unified"
            ]
        except FileNotFoundError:
            return False
        if self._unified is not None:
            tops.append(self._unified.path)
        gone = True
        for path in tops:
            try:
                os.rmdir(path)
            except (FileNotFoundError, NotADirectoryError):
                pass
            except OSError:
                gone = False
        return gone

    def _dir(self, controller: str) -> Path:
        path = self._paths.get(controller)
        if path is None:
            raise Unavailable(
                f"cgroup controller {controller!r} is not available: "
                f"no v1 hierarchy at {self.root / controller}"
            )
        return path

    def create(self) -> None:
        for key, path in self._paths.items():
            if path in self._claimed:  # renamed from a spare: made, set up and joined already
                continue
            mkdir_p(path)
            if "cpuset" in key.split(","):
                _inherit_cpuset(path.parents[len(Path(self.name).parts) - 1], self.name)

    def apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        """``devices.deny``/``devices.allow`` lines in order, as runc writes them.

        A list that does not start from a wildcard gets ``devices.deny a`` first, so the result
        never depends on what the cgroup allowed before (a new cgroup inherits its parent's list).
        """
        directory = self._dir("devices")
        if not any(rule.is_wildcard for rule in rules):
            write(directory / "devices.deny", "a")
        for rule in rules:
            write(directory / ("devices.allow" if rule.allow else "devices.deny"), rule.v1_line())

    def apply(self, resources: Resources) -> None:
        swap = swap_limit(resources)  # validates memory_swap against memory
        memsw = None if resources.memory is None or swap is None else resources.memory + swap
        memory = self._paths.get("memory")
        cpu = self._paths.get("cpu")
        pids = self._paths.get("pids")
        if resources.memory is not None:
            memory = self._dir("memory")
            if resources.memory_swap is not None and not (memory / "memory.memsw.limit_in_bytes").exists():
                raise Unavailable(
                    f"cgroup controller 'memory' has no swap accounting: "
                    f"{memory / 'memory.memsw.limit_in_bytes'} is missing"
                )
        if resources.cpus is not None or resources.cpu_shares is not None:
            cpu = self._dir("cpu")
            if resources.cpus is not None and not (cpu / "cpu.cfs_quota_us").exists():
                raise Unavailable(
                    f"cgroup controller 'cpu' has no CFS bandwidth control: "
                    f"{cpu / 'cpu.cfs_quota_us'} is missing"
                )
        if resources.pids is not None:
            pids = self._dir("pids")
        cpuset = None
        if resources.cpuset_cpus is not None or resources.cpuset_mems is not None:
            cpuset = self._dir("cpuset")
        # every controller was checked above, so a missing one never leaves half the limits set
        if memory is not None:
            _set_memory(memory, resources.memory, memsw)
        if cpu is not None:
            if resources.cpus is not None:
                write(cpu / "cpu.cfs_period_us", CPU_PERIOD_US)
                write(cpu / "cpu.cfs_quota_us", round(resources.cpus * CPU_PERIOD_US))
            elif (cpu / "cpu.cfs_quota_us").exists():
                write(cpu / "cpu.cfs_quota_us", _UNLIMITED)
            if resources.cpu_shares is not None:
                write(cpu / "cpu.shares", resources.cpu_shares)
        if pids is not None and (resources.pids is not None or (pids / "pids.max").exists()):
            write(pids / "pids.max", "max" if resources.pids is None else resources.pids)
        if cpuset is not None:  # unset: as inherited from the parent at create
            for filename, value in (
                ("cpuset.mems", resources.cpuset_mems),
                ("cpuset.cpus", resources.cpuset_cpus),
            ):
                if value is not None:
                    write(cpuset / filename, value)

    def _can_freeze(self) -> bool:
        if "freezer" in self._paths:
            return True
        return self._unified is not None and self._unified._can_freeze()

    def freeze(self) -> None:
        if "freezer" not in self._paths and self._unified is not None and self._unified._can_freeze():
            self._unified.freeze()
            return
        state = self._dir("freezer") / "freezer.state"
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        # the kernel reports FREEZING until every task has stopped; writing again nudges it
        while True:
            write(state, "FROZEN")
            if read(state) == "FROZEN":
                return
            if time.monotonic() >= deadline:
                write(state, "THAWED")
                raise Timeout(f"{state} stayed FREEZING for {_FREEZE_TIMEOUT}s")
            time.sleep(0.005)

    def thaw(self) -> None:
        if "freezer" not in self._paths and self._unified is not None and self._unified._can_freeze():
            self._unified.thaw()
            return
        write(self._dir("freezer") / "freezer.state", "THAWED")

    def is_frozen(self) -> bool:
        if "freezer" not in self._paths and self._unified is not None and self._unified._can_freeze():
            return self._unified.is_frozen()
        return read(self._dir("freezer") / "freezer.state") == "FROZEN"

    def stats(self) -> CgroupStats:
        memory = self._paths.get("memory")
        pids = self._paths.get("pids")
        cpu_ns = 0
        if "cpuacct" in self._paths:
            cpu_ns = int(read(self._paths["cpuacct"] / "cpuacct.usage"))
        elif self._unified is not None:
            cpu_ns = self._unified.stats().cpu_usage_ns
        current = read_optional(pids / "pids.current") if pids is not None else None
        return CgroupStats(
            memory_usage=int(read(memory / "memory.usage_in_bytes")) if memory is not None else 0,
            memory_limit=read_limit(memory / "memory.limit_in_bytes") if memory is not None else None,
            cpu_usage_ns=cpu_ns,
            pids=int(current) if current is not None else len(self.pids()),
            pids_limit=read_limit(pids / "pids.max") if pids is not None else None,
        )

    def oom_kill_count(self) -> int:
        memory = self._paths.get("memory")
        if memory is None:
            return 0
        return read_keyed(memory / "memory.oom_control").get("oom_kill", 0)

    def _kill_file(self) -> Path | None:
        return None if self._unified is None else self._unified._kill_file()


def _set_memory(directory: Path, limit: int | None, memsw: int | None) -> None:
    """Write limit and memory+swap in the order that keeps ``memsw >= limit`` at every step."""
    limit_file = directory / "memory.limit_in_bytes"
    memsw_file = directory / "memory.memsw.limit_in_bytes"
    new_limit = _UNLIMITED if limit is None else limit
    if not memsw_file.exists():
        write(limit_file, new_limit)
        return
    new_memsw = _UNLIMITED if memsw is None else memsw
    current = read_limit(memsw_file)
    raising = memsw is None or (current is not None and memsw >= current)
    if raising:
        write(memsw_file, new_memsw)
        write(limit_file, new_limit)
    else:
        write(limit_file, new_limit)
        write(memsw_file, new_memsw)


def _hierarchies(root: Path) -> list[tuple[Path, str]]:
    """Every v1 hierarchy mounted under ``root`` (``unified`` is the v2 tree, handled apart),
    with the real path of its mount.

    Co-mounted controllers (``cpu,cpuacct`` with ``cpu`` and ``cpuacct`` symlinks) appear under
    each name, with one mount; :meth:`CgroupV1Manager._dirs` folds them into one directory.
    """
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    real_root = os.path.realpath(root)
    return [
        (Path(e.path), os.path.realpath(e.path) if e.is_symlink() else f"{real_root}/{e.name}")
        for e in entries
        if e.name != "unified" and _is_hierarchy(Path(e.path))
    ]


def _inherit_cpuset(hierarchy: Path, name: str) -> None:
    """Copy ``cpuset.cpus``/``cpuset.mems`` down to each new level: a new v1 cpuset starts empty,
    and the kernel refuses to add a process to a cpuset without CPUs or memory nodes."""
    parent = hierarchy
    for part in name.split("/"):
        child = parent / part
        for filename in _CPUSET_FILES:
            if not read_optional(child / filename):
                value = read_optional(parent / filename)
                if value:
                    write(child / filename, value)
        parent = child
