"""Capability names and masks, and applying sets to a real (forked, then discarded) process."""

from __future__ import annotations

import json
import os

import pytest

from containerkit.errors import InvalidArgument
from containerkit.linux import capabilities as caps
from tests.conftest import require_root


def test_names_and_numbers_match_the_kernel_header() -> None:
    assert caps.capability_number("CAP_CHOWN") == 0
    assert caps.capability_number("net_admin") == 12
    assert caps.capability_number(" sys_admin ") == 21
    assert caps.capability_number("CAP_CHECKPOINT_RESTORE") == 40
    assert caps.normalize_capability("audit_write") == "CAP_AUDIT_WRITE"
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_NOPE"'):
        caps.normalize_capability("nope")


def test_known_capabilities_follow_cap_last_cap() -> None:
    known = caps.known_capabilities()
    assert known[0] == "CAP_CHOWN" and len(known) == min(caps.last_cap(), 40) + 1


def test_mask() -> None:
    assert caps.capability_mask(["CHOWN", "CAP_KILL", "kill"]) == (1 << 0) | (1 << 5)
    assert caps.capability_mask([]) == 0


def test_current_capabilities_reads_proc() -> None:
    current = caps.current_capabilities()
    assert set(current) >= {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}


def _in_child(fn: object) -> dict[str, int]:
    """Run ``fn`` in a forked child and return that child's capability sets from /proc."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()  # type: ignore[operator]
            os.write(write_fd, json.dumps(caps.current_capabilities()).encode())
        except BaseException as exc:
            os.write(write_fd, json.dumps({"error": str(exc)}).encode())
            code = 1
        os._exit(code)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 4096):
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    result: dict[str, int] = json.loads(data)
    return result


def test_drop_bounding_and_apply_sets() -> None:
    require_root()
    keep = caps.capability_mask(["CHOWN", "KILL", "SETPCAP", "NET_BIND_SERVICE"])

    def apply() -> None:
        caps.drop_bounding(keep)
        caps.apply_capabilities(
            effective=keep,
            permitted=keep,
            inheritable=caps.capability_mask(["NET_BIND_SERVICE"]),
            ambient=caps.capability_mask(["NET_BIND_SERVICE"]),
        )

    sets = _in_child(apply)
    assert "error" not in sets, sets
    assert sets["CapBnd"] == keep and sets["CapEff"] == keep and sets["CapPrm"] == keep
    assert sets["CapInh"] == sets["CapAmb"] == caps.capability_mask(["NET_BIND_SERVICE"])


def test_ambient_needs_inheritable() -> None:
    require_root()
    keep = caps.capability_mask(["KILL"])
    sets = _in_child(
        lambda: caps.apply_capabilities(effective=keep, permitted=keep, inheritable=0, ambient=keep)
    )
    assert "raise ambient CAP_KILL" in str(sets.get("error"))
