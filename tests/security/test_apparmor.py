"""Issue 9, finding 8: AppArmor, as docker applies ``docker-default``.

The profile text is checked everywhere (and parsed by ``apparmor_parser`` where installed); the
load and apply path needs a kernel with AppArmor on and skips, saying why, where it has none.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.errors import InvalidArgument
from containerkit.linux import apparmor

from .conftest import IMAGE, run_to_exit

DOCKER_DEFAULT_RULES = (
    "network,",
    "capability,",
    "file,",
    "umount,",
    "signal (receive) peer=unconfined,",
    "signal (send,receive) peer=containerkit-default,",
    "deny @{PROC}/* w,",
    "deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,",
    "deny @{PROC}/sys/[^k]** w,",
    "deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,",
    "deny @{PROC}/sysrq-trigger rwklx,",
    "deny @{PROC}/kcore rwklx,",
    "deny mount,",
    "deny /sys/[^f]*/** wklx,",
    "deny /sys/f[^s]*/** wklx,",
    "deny /sys/fs/[^c]*/** wklx,",
    "deny /sys/fs/c[^g]*/** wklx,",
    "deny /sys/fs/cg[^r]*/** wklx,",
    "deny /sys/firmware/** rwklx,",
    "deny /sys/kernel/security/** rwklx,",
    "ptrace (trace,read,tracedby,readby) peer=containerkit-default,",
)


def _rules(text: str) -> list[str]:
    return [
        line.split("#", 1)[0].strip() if not line.strip().startswith("#include") else line.strip()
        for line in text.splitlines()
    ]


def test_default_profile_has_docker_default_rules() -> None:
    text = apparmor.default_profile_text()
    rules = _rules(text)
    assert "profile containerkit-default flags=(attach_disconnected,mediate_deleted) {" in rules
    for rule in DOCKER_DEFAULT_RULES:
        assert rule in rules, rule
    assert rules[-1] == "}" and text.count("{") == text.count("}")
    # nothing grants what docker-default denies
    assert not [r for r in rules if r.startswith("mount") or r.startswith("allow mount")]


def test_profile_name_and_daemon_peer_are_filled_in() -> None:
    rules = _rules(apparmor.default_profile_text("ck-test", daemon_profile="containerkitd"))
    assert "profile ck-test flags=(attach_disconnected,mediate_deleted) {" in rules
    assert "signal (receive) peer=containerkitd," in rules
    assert "signal (send,receive) peer=ck-test," in rules
    assert "ptrace (trace,read,tracedby,readby) peer=ck-test," in rules


def test_apparmor_parser_accepts_the_profile(tmp_path: Path) -> None:
    if shutil.which("apparmor_parser") is None:
        pytest.skip("apparmor_parser is not installed (Debian's apparmor package)")
    profile = tmp_path / "containerkit-default"
    profile.write_text(apparmor.default_profile_text())
    # -Q: compile only, never load (works without AppArmor in the kernel)
    result = subprocess.run(["apparmor_parser", "-Q", "-K", str(profile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken"
    broken.write_text(apparmor.default_profile_text().replace("deny mount,", "deny mount"))
    result = subprocess.run(["apparmor_parser", "-Q", "-K", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0  # the check above can fail


def _config(engine: ck.Engine, container: ck.Container) -> dict[str, object]:
    path = engine.containers.state_dir(container.id) / "bundle" / "config.json"
    return dict(json.loads(path.read_text()))


def _process(engine: ck.Engine, container: ck.Container) -> dict[str, object]:
    process = _config(engine, container)["process"]
    assert isinstance(process, dict)
    return process


# -- where the kernel has no AppArmor (this machine) ----------------------------------------------

needs_no_apparmor = pytest.mark.skipif(apparmor.enabled(), reason="AppArmor is enabled in this kernel")


@needs_no_apparmor
def test_without_apparmor_containers_get_no_profile(engine: ck.Engine) -> None:
    c = engine.containers.create(image=IMAGE, command=["true"])
    try:
        assert "apparmorProfile" not in _process(engine, c)
    finally:
        c.remove(force=True)


@needs_no_apparmor
def test_without_apparmor_a_named_profile_is_an_error(engine: ck.Engine) -> None:
    with pytest.raises(InvalidArgument, match=r"apparmor=my-profile: this kernel has no AppArmor"):
        engine.containers.create(image=IMAGE, command=["true"], security_opt=["apparmor=my-profile"])
    assert not [c for c in engine.containers.list(all=True) if c.status == "created"]


@needs_no_apparmor
def test_without_apparmor_unconfined_runs(engine: ck.Engine, runtime: str) -> None:
    code, out = run_to_exit(engine, runtime, ["true"], security_opt=["apparmor=unconfined"], network="none")
    assert code == 0, out


# -- where the kernel has AppArmor on ---------------------------------------------------------------


@pytest.fixture
def apparmor_on() -> None:
    reason = apparmor.unavailable_reason()
    if reason is not None:
        pytest.skip(f"load/apply path not testable: {reason}")


@pytest.mark.usefixtures("apparmor_on")
def test_default_container_runs_confined(engine: ck.Engine, runtime: str) -> None:
    code, out = run_to_exit(engine, runtime, ["cat", "/proc/self/attr/current"], network="none")
    assert code == 0 and out.strip() == "containerkit-default (enforce)", out
    assert apparmor.is_loaded(apparmor.DEFAULT_PROFILE)


@pytest.mark.usefixtures("apparmor_on")
def test_profile_denies_mount_and_sysrq_even_with_sys_admin(engine: ck.Engine, runtime: str) -> None:
    """With SYS_ADMIN and no seccomp filter only AppArmor is left to refuse these."""
    script = (
        "if mount -t tmpfs none /mnt; then echo MOUNT-OK; else echo MOUNT-DENIED; fi; "
        "if echo h > /proc/sysrq-trigger; then echo SYSRQ-OK; else echo SYSRQ-DENIED; fi"
    )
    _code, out = run_to_exit(
        engine,
        runtime,
        ["sh", "-c", script],
        network="none",
        cap_add=["SYS_ADMIN"],
        security_opt=["seccomp=unconfined"],
    )
    assert "MOUNT-DENIED" in out and "SYSRQ-DENIED" in out, out


@pytest.mark.usefixtures("apparmor_on")
def test_exec_runs_confined_and_unconfined_opts_out(engine: ck.Engine, runtime: str) -> None:
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, network="none")
    try:
        result = c.exec(["cat", "/proc/self/attr/current"])
        assert result.stdout.decode().strip() == "containerkit-default (enforce)"
    finally:
        c.remove(force=True)
    _code, out = run_to_exit(
        engine,
        runtime,
        ["cat", "/proc/self/attr/current"],
        network="none",
        security_opt=["apparmor=unconfined"],
    )
    assert out.strip() == "unconfined", out
