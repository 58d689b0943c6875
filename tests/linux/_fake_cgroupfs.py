"""A cgroupfs look-alike in a temp dir, for the controller files this kernel cannot show.

Plain files do not react like kernel ones: a write replaces the content with exactly what was
written (which is what the tests assert), and mkdir creates no control files, so tests make
each cgroup with :meth:`FakeCgroupfs.cgroup` before the manager touches it.
"""

from __future__ import annotations

from pathlib import Path

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")

V2_FILES = {
    "cgroup.procs": "",
    "cgroup.type": "domain",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.kill": "",
    "cgroup.subtree_control": "",
}
V2_CONTROLLER_FILES = {
    "memory": {
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.current": "0",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    },
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
}
V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.usage_in_bytes": "0",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1", "cpu.shares": "1024"},
    "cpuacct": {"cpuacct.usage": "0"},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "freezer": {"freezer.state": "THAWED"},
    "cpuset": {"cpuset.cpus": "0-1", "cpuset.mems": "0"},
}


def _fill(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)


class FakeCgroupfs:
    """``root`` laid out as a v2 mount (``v2``) or as v1 hierarchies (``v1``)."""

    def __init__(self, root: Path, version: int, controllers: tuple[str, ...]) -> None:
        self.root = root
        self.version = version
        self.controllers = controllers

    @classmethod
    def v2(cls, root: Path, controllers: tuple[str, ...] = ("cpu", "memory", "pids")) -> FakeCgroupfs:
        _fill(root, {"cgroup.procs": "", "cgroup.subtree_control": "", "cpu.stat": "usage_usec 0\n"})
        (root / "cgroup.controllers").write_text(" ".join(controllers))
        return cls(root, 2, controllers)

    @classmethod
    def v1(
        cls, root: Path, controllers: tuple[str, ...] = V1_CONTROLLERS, *, unified: bool = False
    ) -> FakeCgroupfs:
        for controller in controllers:
            _fill(root / controller, {"cgroup.procs": ""})
        if unified:
            _fill(
                root / "unified", {"cgroup.procs": "", "cgroup.controllers": "", "cgroup.subtree_control": ""}
            )
        return cls(root, 1, controllers)

    def cgroup(self, name: str, *, controllers: tuple[str, ...] | None = None, memsw: bool = True) -> None:
        """What the kernel would create on mkdir (v2: with ``controllers`` enabled by the parent)."""
        wanted = self.controllers if controllers is None else controllers
        if self.version == 2:
            files = dict(V2_FILES, **{"cgroup.controllers": " ".join(wanted), "cpu.stat": "usage_usec 0\n"})
            for controller in wanted:
                files.update(V2_CONTROLLER_FILES.get(controller, {}))
            _fill(self.root / name, files)
            return
        for controller in wanted:
            files = dict(V1_FILES[controller], **{"cgroup.procs": "", "tasks": ""})
            if controller == "memory" and not memsw:
                del files["memory.memsw.limit_in_bytes"]
            _fill(self.root / controller / name, files)

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()

    def write(self, relative: str, content: str) -> None:
        (self.root / relative).write_text(content)
