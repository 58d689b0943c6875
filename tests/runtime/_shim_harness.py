"""Bundles for shim, spawner and exec tests: a busybox overlay per container, checked for leaks.

Each :class:`Boxes` hands out container requests rooted on an overlay over the shared busybox
tree (mounted by the shim for runc, by the container itself for the builtin runtime) and, at
teardown, kills what is still running and asserts nothing is left: no process, no mount under
its temp dir, no cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from containerkit.linux import proc
from containerkit.runtime import state
from containerkit.runtime.bundle import ROOTFS_MOUNT_ANNOTATION, build_oci_config, write_config
from containerkit.runtime.shim import ShimRequest
from containerkit.spec import ContainerSpec, ImageConfig, Resources
from tests.conftest import require_binary, require_root

CGROUP_ROOT = Path("/sys/fs/cgroup")


RUNTIMES = ["builtin", "runc"]
"""Every backend a test runs against (runc tests skip where it is not installed)."""


class Boxes:
    def __init__(self, base: Path, lower: Path) -> None:
        self.base = base
        self.lower = lower
        self.requests: list[ShimRequest] = []

    def request(
        self,
        command: Sequence[str],
        *,
        runtime: str = "builtin",
        tty: bool = False,
        stdin_open: bool = False,
        stdin_once: bool = False,
        resources: Resources | None = None,
        cgroup: bool = True,
    ) -> ShimRequest:
        if runtime != "builtin":
            require_binary(runtime)
        cid = f"ck-test-{uuid.uuid4().hex[:10]}"
        box = self.base / cid
        for sub in ("upper", "work", "bundle/rootfs", "state"):
            (box / sub).mkdir(parents=True)
        rootfs = {
            "type": "overlay",
            "source": "overlay",
            "options": [f"lowerdir={self.lower}", f"upperdir={box / 'upper'}", f"workdir={box / 'work'}"],
        }
        cgroup_name = f"containerkit/{cid}" if cgroup else None
        config = build_oci_config(
            ContainerSpec(image="busybox", command=list(command), tty=tty, stdin_open=stdin_open),
            ImageConfig(),
            user=(0, 0, []),
            hostname="box",
            etc_files={},
            mounts=[],
            cgroups_path=cgroup_name,
            annotations={ROOTFS_MOUNT_ANNOTATION: json.dumps(rootfs)},
        )
        config["process"].pop("rlimits", None)  # the 1048576 nofile default exceeds this host's hard limit
        write_config(box / "bundle", config)
        request = ShimRequest(
            container_id=cid,
            bundle=box / "bundle",
            state_dir=box / "state",
            runtime=runtime,  # type: ignore[arg-type]
            tty=tty,
            stdin_open=stdin_open,
            stdin_once=stdin_once,
            cgroup_name=cgroup_name,
            resources=resources,
            runc_root=self.base / "runc-root",
        )
        self.requests.append(request)
        return request

    def teardown(self) -> None:
        for request in self.requests:
            record = state.read_json(request.state_dir / state.STATE_FILE) or {}
            for pid_key in ("pid", "shim_pid"):
                with contextlib.suppress(Exception):
                    proc.send_signal(record[pid_key], signal.SIGKILL, record[f"{pid_key}_start_time"])
        problems: list[str] = []
        for request in self.requests:
            record = state.read_json(request.state_dir / state.STATE_FILE) or {}
            if record.get("shim_pid"):
                _wait_gone(record["shim_pid"], record["shim_start_time"])
            for pid_key in ("pid", "shim_pid"):
                if proc.is_alive(record.get(pid_key), record.get(f"{pid_key}_start_time")):
                    problems.append(f"{request.container_id}: {pid_key} {record[pid_key]} still running")
            if request.cgroup_name:
                left = [p for p in CGROUP_ROOT.glob(f"*/{request.cgroup_name}") if p.is_dir()]
                if left:
                    problems.append(f"{request.container_id}: cgroups left {left}")
        mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if str(self.base) in line]
        for line in mounts:
            with contextlib.suppress(OSError):
                os.system(f"umount -l {line.split()[1]}")
        if mounts:
            problems.append(f"mounts left: {mounts}")
        assert not problems, problems


def _wait_gone(pid: int, start: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while proc.is_alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture(name="boxes")
def boxes_fixture(tmp_path: Path, busybox_rootfs_dir: Path) -> Iterator[Boxes]:
    require_root()
    made = Boxes(tmp_path, busybox_rootfs_dir)
    yield made
    made.teardown()
