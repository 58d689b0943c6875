"""Device rules: parsing, the v1 lines, and enforcement for real, by the v1 ``devices``
controller and by a v2 BPF device program on this host's cgroup2 mount (/sys/fs/cgroup/unified).

On this hybrid host the v1 ``devices`` root allows everything, so a denial in the unified test
can only come from the BPF program.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument
from containerkit.linux import bpf
from containerkit.linux.cgroups import CgroupManager, open_cgroup, probe, remove_if_empty
from containerkit.linux.cgroups.devices import (
    DeviceRule,
    build_device_program,
    effective_rules,
    parse_rules,
)
from containerkit.runtime.bundle import device_rules
from tests.linux._cgroup_procs import Spawner, go

ROOT = Path("/sys/fs/cgroup")
UNIFIED = ROOT / "unified"

DOCKER = parse_rules(device_rules(privileged=False))
PRIVILEGED = parse_rules(device_rules(privileged=True))

# opens each target (read-write, or read-only with a ":r" suffix) once released; prints
# "<target> ok" or "<target> <errno name>"
OPENER = """
import errno, os, sys
sys.stdin.readline()
for target in TARGETS:
    path, _, mode = target.partition(":")
    try:
        os.close(os.open(path, os.O_RDONLY if mode == "r" else os.O_RDWR))
        print(target, "ok")
    except OSError as exc:
        print(target, errno.errorcode[exc.errno])
"""


# -- parsing and the v1 text -----------------------------------------------------------------


def test_docker_rules_as_v1_lines() -> None:
    assert [(r.allow, r.v1_line()) for r in DOCKER] == [
        (False, "a"),
        (True, "c *:* m"),
        (True, "b *:* m"),
        (True, "c 1:3 rwm"),
        (True, "c 1:5 rwm"),
        (True, "c 1:7 rwm"),
        (True, "c 1:8 rwm"),
        (True, "c 1:9 rwm"),
        (True, "c 5:0 rwm"),
        (True, "c 5:1 rwm"),
        (True, "c 5:2 rwm"),
        (True, "c 136:* rwm"),
        (True, "c 10:200 rwm"),
    ]
    assert [(r.allow, r.v1_line()) for r in PRIVILEGED] == [(True, "a")]


def test_parse_oci_spellings() -> None:
    rule = DeviceRule.from_oci({"allow": True, "type": "b", "major": 7, "minor": -1, "access": "wr"})
    assert rule == DeviceRule(allow=True, type="b", major=7, minor=None, access="rw")
    assert DeviceRule.from_oci({"allow": False}).is_wildcard
    assert not DeviceRule.from_oci({"allow": False, "access": "m"}).is_wildcard


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"type": "c"}, "allow"),
        ({"allow": "yes"}, "allow"),
        ({"allow": True, "type": "x"}, "type"),
        ({"allow": True, "type": ["c"]}, "type"),
        ({"allow": True, "access": "rwx"}, "access"),
        ({"allow": True, "major": -2}, "major"),
        ({"allow": True, "minor": "3"}, "minor"),
        ({"allow": True, "major": 1 << 31}, "major"),
    ],
)
def test_bad_rules_name_the_field(rule: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument, match=rf"devices\[1\]\.{field}"):
        parse_rules([{"allow": False}, rule])


def test_effective_rules_start_after_the_last_wildcard() -> None:
    rules = parse_rules([{"allow": True}, {"allow": False, "type": "c", "major": 1}, {"allow": False}])
    assert effective_rules(rules) == (False, [])
    assert effective_rules(DOCKER) == (False, DOCKER[1:])
    assert effective_rules(PRIVILEGED) == (True, [])


def test_program_shape() -> None:
    """8-byte instructions, ending in ``r0 = default; exit``; allow-all needs no rule block."""
    program = build_device_program(DOCKER)
    assert len(program) % 8 == 0
    assert program[-16:] == bytes([0xB4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
    allow_all = build_device_program(PRIVILEGED)
    assert len(allow_all) == 8 * 8 and allow_all[-16:-8] == bytes([0xB4, 0, 0, 0, 1, 0, 0, 0])


# -- v1 for real -----------------------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    with Spawner() as spawner:
        yield spawner


def _cgroup(root: Path, mode: str) -> Iterator[CgroupManager]:
    parent = f"cktest-{uuid.uuid4().hex[:12]}"
    cgroup = open_cgroup(f"{parent}/c", root=root, mode=mode)  # type: ignore[arg-type]
    cgroup.create()
    try:
        yield cgroup
    finally:
        cgroup.destroy()
        assert remove_if_empty(parent, root=root, mode=mode)  # type: ignore[arg-type]


@pytest.fixture
def v1() -> Iterator[CgroupManager]:
    if os.geteuid() != 0 or probe() == "unified" or not (ROOT / "devices/cgroup.procs").exists():
        pytest.skip("needs root and a v1 devices hierarchy")
    yield from _cgroup(ROOT, probe())


@pytest.fixture
def v2() -> Iterator[CgroupManager]:
    if os.geteuid() != 0 or not (UNIFIED / "cgroup.procs").exists():
        pytest.skip(f"needs root and a cgroup2 mount at {UNIFIED}")
    yield from _cgroup(UNIFIED, "unified")


def _opens(cgroup: CgroupManager, spawn: Spawner, *paths: str) -> dict[str, str]:
    proc = spawn(python=OPENER.replace("TARGETS", repr(list(paths))), stdin=True)
    cgroup.add_process(proc.pid)
    go(proc)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_real_v1_denies_all_but_the_list(v1: CgroupManager, spawn: Spawner) -> None:
    v1.apply_devices(DOCKER)
    devices = v1.paths["devices"]
    listed = (devices / "devices.list").read_text().split("\n")
    assert "c 1:3 rwm" in listed and "b *:* m" in listed and "a *:* rwm" not in listed
    assert _opens(v1, spawn, "/dev/null", "/dev/full", "/dev/kmsg", "/dev/loop-control") == {
        "/dev/null": "ok",
        "/dev/full": "ok",
        "/dev/kmsg": "EPERM",
        "/dev/loop-control": "EPERM",
    }


def test_real_v1_privileged_allows_all(v1: CgroupManager, spawn: Spawner) -> None:
    v1.apply_devices(DOCKER)
    v1.apply_devices(PRIVILEGED)  # applied again: the later list replaces the earlier one
    assert (v1.paths["devices"] / "devices.list").read_text().strip() == "a *:* rwm"
    assert _opens(v1, spawn, "/dev/kmsg")["/dev/kmsg"] == "ok"


def test_real_v2_bpf_program_denies_what_v1_allows(v2: CgroupManager, spawn: Spawner) -> None:
    path = v2.paths["unified"]
    v2.apply_devices(DOCKER)
    assert len(_attached(path)) == 1
    assert _opens(v2, spawn, "/dev/null", "/dev/zero", "/dev/urandom", "/dev/kmsg", "/dev/loop-control") == {
        "/dev/null": "ok",
        "/dev/zero": "ok",
        "/dev/urandom": "ok",
        "/dev/kmsg": "EPERM",
        "/dev/loop-control": "EPERM",
    }


def test_real_v2_reapply_replaces_the_program(v2: CgroupManager, spawn: Spawner) -> None:
    path = v2.paths["unified"]
    v2.apply_devices(DOCKER)
    first = _attached(path)
    v2.apply_devices(PRIVILEGED)
    second = _attached(path)
    assert len(second) == 1 and second != first
    assert _opens(v2, spawn, "/dev/kmsg")["/dev/kmsg"] == "ok"


def test_real_v2_access_and_type_are_checked(v2: CgroupManager, spawn: Spawner) -> None:
    """Read-only access to /dev/null: O_RDONLY opens, O_RDWR is refused; a block rule does not
    open a char node; of two rules for one device the later decides."""
    v2.apply_devices(
        parse_rules(
            [
                {"allow": False},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
                {"allow": True, "type": "b", "major": 1, "minor": 5},
                {"allow": True, "type": "c", "major": 1, "minor": 9},
                {"allow": False, "type": "c", "major": 1, "minor": 9},  # the later rule wins
            ]
        )
    )
    assert _opens(v2, spawn, "/dev/null:r", "/dev/null", "/dev/zero", "/dev/urandom") == {
        "/dev/null:r": "ok",
        "/dev/null": "EPERM",
        "/dev/zero": "EPERM",
        "/dev/urandom": "EPERM",
    }


def _attached(cgroup_dir: Path) -> list[int]:
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return bpf.attached_program_ids(fd, bpf.BPF_CGROUP_DEVICE)
    finally:
        os.close(fd)
