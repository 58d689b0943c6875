"""libseccomp through ctypes (linux/seccomp.py) and Docker's profile semantics (seccomp_profile.py).

Filters are loaded for real, in a forked child that sets no_new_privs first, so the test
process itself stays unfiltered.
"""

from __future__ import annotations

import errno
import json
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from containerkit.errors import InvalidArgument
from containerkit.linux import _libc, seccomp
from containerkit.runtime import seccomp_profile as sp
from containerkit.runtime.bundle import DEFAULT_CAPABILITIES

pytestmark = pytest.mark.skipif(not seccomp.available(), reason="libseccomp.so.2 is not installed")


def _in_filtered_child(install: Callable[[], None], action: Callable[[], Any]) -> str:
    """Run ``action`` in a child under the filter ``install`` loads; ``ok`` or the errno name."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        outcome = "ok"
        try:
            _libc.libc.prctl(_libc.PR_SET_NO_NEW_PRIVS, 1)
            install()
            try:
                action()
            except OSError as exc:
                outcome = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        except BaseException as exc:
            outcome = f"setup failed: {exc!r}"
        os.write(write_fd, outcome.encode())
        os._exit(0)
    os.close(write_fd)
    try:
        return os.read(read_fd, 4096).decode()
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)


def _kill_filter(**extra: Any) -> dict[str, Any]:
    """Allow all, but kill(pid, 0) or kill(pid, SIGWINCH) fail with EACCES (two conditions on
    one argument: runc makes them one rule each, an OR)."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["kill", "no_such_syscall_here"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EACCES,
                "args": [
                    {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": int(signal.SIGWINCH), "op": "SCMP_CMP_EQ"},
                ],
            }
        ],
        **extra,
    }


def _load(filter_: Mapping[str, Any]) -> Callable[[], None]:
    def install() -> None:
        with seccomp.compile_filter(filter_) as compiled:
            compiled.load()

    return install


def test_filter_with_argument_conditions() -> None:
    f = _kill_filter(architectures=[seccomp.native_arch()])
    assert _in_filtered_child(_load(f), lambda: os.kill(os.getpid(), 0)) == "EACCES"
    assert _in_filtered_child(_load(f), lambda: os.kill(os.getpid(), signal.SIGWINCH)) == "EACCES"
    assert _in_filtered_child(_load(f), lambda: os.kill(os.getpid(), signal.SIGCONT)) == "ok"
    assert _in_filtered_child(lambda: None, lambda: os.kill(os.getpid(), 0)) == "ok"


def test_default_errno_and_exported_program(tmp_path: Path) -> None:
    """An errno default (EPERM unless defaultErrnoRet); the exported program behaves the same."""
    f = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]}
    allowed = {"names": sorted(_NEEDED), "action": "SCMP_ACT_ALLOW"}
    f["syscalls"].append(allowed)
    program = seccomp.program(f, cache_dir=None)
    target = tmp_path / "made"
    assert _in_filtered_child(lambda: seccomp.load_bpf(program), lambda: os.rmdir(tmp_path)) == "EPERM"
    assert _in_filtered_child(lambda: seccomp.load_bpf(program), lambda: os.mkdir(target)) == "ok"
    assert target.is_dir()
    f["defaultErrnoRet"] = errno.EROFS
    assert _in_filtered_child(_load(f), lambda: os.rmdir(target)) == "EROFS"


# what the child needs to report back and exit under a deny-by-default filter
_NEEDED = {"write", "exit_group", "exit", "rt_sigreturn", "rt_sigaction", "rt_sigprocmask", "close"}
_NEEDED |= {"brk", "mmap", "munmap", "mremap", "madvise"}


def test_program_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    program = seccomp.program(_kill_filter(), cache_dir=cache)
    (cached,) = cache.iterdir()
    assert cached.read_bytes() == program and cached.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    # a hit is read, not rebuilt (a stand-in program shows which one came back)
    cached.write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # one instruction: return ALLOW
    assert seccomp.program(_kill_filter(), cache_dir=cache) == cached.read_bytes()
    # a cache others may write is not trusted
    cache.chmod(0o777)
    assert seccomp.program(_kill_filter(), cache_dir=cache) == program
    # another filter, another entry
    cache.chmod(0o700)
    seccomp.program(_kill_filter(flags=["SECCOMP_FILTER_FLAG_LOG"]), cache_dir=cache)
    assert len([p for p in cache.iterdir() if p.suffix == ".bpf"]) == 2


@pytest.mark.parametrize(
    ("filter_", "message"),
    [
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "defaultAction: unknown action 'SCMP_ACT_BOGUS'"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_NOPE"}]},
            "rule for syscall kill: unknown action",
        ),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}, "SCMP_ARCH_VAX"),
        (
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {
                        "names": ["kill"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_ABOUT"}],
                    }
                ],
            },
            "seccomp rule for kill: unknown comparison 'SCMP_CMP_ABOUT'",
        ),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}, "unknown flag"),
    ],
)
def test_bad_filters_name_what_failed(filter_: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        seccomp.compile_filter(filter_).close()


# -- Docker's profile semantics ---------------------------------------------------------------


def _rules_for(oci: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in oci["syscalls"] if name in rule["names"]]


def test_default_profile_for_default_caps() -> None:
    oci = sp.to_oci(sp.default_profile(), list(DEFAULT_CAPABILITIES), arch="amd64", kernel=(6, 1))
    assert oci is not None
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO" and oci["defaultErrnoRet"] == 1
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    for blocked in ("keyctl", "add_key", "mount", "bpf", "open_by_handle_at", "unshare", "setns"):
        assert not _rules_for(oci, blocked), blocked
    assert _rules_for(oci, "arch_prctl")  # amd64 only
    assert not _rules_for(oci, "arm_fadvise64_64")
    ptrace = {"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW"}
    assert _rules_for(oci, "ptrace") == [ptrace]  # kernel >= 4.8
    (clone,) = _rules_for(oci, "clone")
    assert clone["args"] == [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]
    assert _rules_for(oci, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert "archMap" not in oci


def test_capabilities_kernel_and_arch_decide() -> None:
    caps = [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH"]
    oci = sp.to_oci(sp.default_profile(), caps, arch="arm64", kernel=(4, 4))
    assert oci is not None
    assert oci["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert _rules_for(oci, "open_by_handle_at") and _rules_for(oci, "mount")
    # with CAP_SYS_ADMIN: clone without an argument filter, and clone3 allowed
    assert _rules_for(oci, "clone") and all("args" not in r for r in _rules_for(oci, "clone"))
    assert not [r for r in _rules_for(oci, "clone3") if r["action"] != "SCMP_ACT_ALLOW"]
    assert not _rules_for(oci, "arch_prctl")
    # ptrace before 4.8 only with CAP_SYS_PTRACE
    assert not _rules_for(oci, "ptrace")


def test_profile_errors() -> None:
    with pytest.raises(InvalidArgument, match="both 'name' and 'names'"):
        sp.to_oci({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"]}]}, [])
    with pytest.raises(InvalidArgument, match="both 'architectures' and 'archMap'"):
        sp.to_oci({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["x"], "archMap": [{}]}, [])
    with pytest.raises(InvalidArgument, match="invalid kernel version"):
        sp.to_oci(
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["a"], "includes": {"minKernel": "4"}}],
            },
            [],
        )
    assert sp.to_oci({}, []) is None  # moby: no default action and no syscalls is no filter
    legacy = sp.to_oci(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "kill", "action": "SCMP_ACT_ERRNO"}]}, []
    )
    assert legacy is not None and legacy["syscalls"] == [{"names": ["kill"], "action": "SCMP_ACT_ERRNO"}]


def test_parse_security_opt() -> None:
    parsed = sp.parse_security_opt(
        [
            "seccomp=unconfined",
            "no-new-privileges",
            "apparmor=docker-default",
            "label=disable",
            "label:type:x",
        ]
    )
    assert parsed == sp.SecurityOptions("unconfined", True, "docker-default", ("disable", "type:x"))
    assert sp.parse_security_opt(["no-new-privileges=false"]).no_new_privileges is False
    assert sp.parse_security_opt(["no-new-privileges:true"]).no_new_privileges is True
    assert sp.parse_security_opt([]) == sp.SecurityOptions()
    for bad, text in [
        ("bogus", 'invalid --security-opt 1: "bogus"'),
        ("seccom=x", 'invalid --security-opt 2: "seccom=x"'),
        ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ]:
        with pytest.raises(InvalidArgument, match=text):
            sp.parse_security_opt([bad])


def test_seccomp_for(tmp_path: Path) -> None:
    caps = list(DEFAULT_CAPABILITIES)
    assert sp.seccomp_for(sp.SecurityOptions(), caps, privileged=True) is None
    assert sp.seccomp_for(sp.SecurityOptions("unconfined"), caps, privileged=False) is None
    builtin = sp.seccomp_for(sp.SecurityOptions("builtin"), caps, privileged=False)
    assert builtin == sp.seccomp_for(sp.SecurityOptions(), caps, privileged=False)
    text = json.dumps(_kill_filter())
    path = tmp_path / "p.json"
    path.write_text(text)
    assert sp.seccomp_for(sp.SecurityOptions(text), caps, privileged=False) == sp.seccomp_for(
        sp.SecurityOptions(str(path)), caps, privileged=False
    )
    with pytest.raises(InvalidArgument, match=f"opening seccomp profile \\({tmp_path}/nope.json\\) failed"):
        sp.seccomp_for(sp.SecurityOptions(str(tmp_path / "nope.json")), caps, privileged=False)
    with pytest.raises(InvalidArgument, match="Decoding seccomp profile failed"):
        sp.seccomp_for(sp.SecurityOptions("{oops"), caps, privileged=False)
