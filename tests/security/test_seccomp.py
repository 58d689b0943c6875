"""Finding 6: a default container runs under Docker's default seccomp profile.

A static probe makes each call the profile is about and prints the errno it got. The calls use
arguments the kernel rejects early with its own errno (EFAULT, EBADF, ENOSYS) or accepts, so a
container without a filter never sees EPERM from them: EPERM can only come from the filter.
Each attack runs under the built-in runtime and runc (``runtime`` fixture).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.errors import InvalidArgument

from .conftest import IMAGE, probe_mount, run_to_exit

PROBE_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Each line: "<call> ok" or "<call> errno=<name>"; the call's errno decides, not a message. */
static void report(const char *name, long rc) {
    if (rc >= 0) printf("%s ok\n", name);
    else printf("%s errno=%s\n", name, strerrorname_np(errno));
}

static long in_child(int (*fn)(void)) {
    /* run fn in a child so that a namespace or persona change stays there */
    int pipefd[2]; if (pipe(pipefd)) return -1;
    pid_t pid = fork();
    if (pid == 0) { int e = 0; if (fn() < 0) e = errno; write(pipefd[1], &e, sizeof e); _exit(0); }
    close(pipefd[1]); int e = -1; read(pipefd[0], &e, sizeof e); waitpid(pid, NULL, 0);
    if (e) { errno = e; return -1; } return 0;
}
static int do_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static int do_personality_odd(void) { return personality(READ_IMPLIES_EXEC) < 0 ? -1 : 0; }

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *c = argv[i];
        if (!strcmp(c, "keyctl")) report(c, syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -3 /*session*/, 0));
        else if (!strcmp(c, "add_key")) report(c, syscall(SYS_add_key, "user", "ck-probe", "x", 1, -2));
        else if (!strcmp(c, "request_key")) report(c, syscall(SYS_request_key, "user", "none", NULL, -2));
        else if (!strcmp(c, "unshare_user")) report(c, in_child(do_unshare_user));
        else if (!strcmp(c, "clone_user")) {
            long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
            if (pid == 0) _exit(0);
            if (pid > 0) waitpid(pid, NULL, 0);
            report(c, pid);
        }
        /* bad pointers: without a filter the kernel answers EFAULT/EBADF before any permission check */
        else if (!strcmp(c, "mount")) report(c, syscall(SYS_mount, (void *)1, (void *)1, (void *)1, 0, 0));
        else if (!strcmp(c, "bpf")) report(c, syscall(SYS_bpf, 0, (void *)1, 64));
        else if (!strcmp(c, "perf_event_open"))
            report(c, syscall(SYS_perf_event_open, (void *)1, 0, -1, -1, 0));
        else if (!strcmp(c, "userfaultfd")) report(c, syscall(SYS_userfaultfd, 1 /*UFFD_USER_MODE_ONLY*/));
        else if (!strcmp(c, "kexec_load")) report(c, syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL));
        else if (!strcmp(c, "open_by_handle_at"))
            report(c, syscall(SYS_open_by_handle_at, -999, (void *)1, 0));
        else if (!strcmp(c, "ptrace_child")) {
            pid_t pid = fork();
            if (pid == 0) { pause(); _exit(0); }
            long rc = ptrace(PTRACE_ATTACH, pid, 0, 0);
            int e = errno;
            if (rc == 0) { waitpid(pid, NULL, 0); ptrace(PTRACE_DETACH, pid, 0, 0); }
            kill(pid, SIGKILL); waitpid(pid, NULL, 0);
            errno = e; report(c, rc);
        }
        else if (!strcmp(c, "personality_query")) report(c, personality(0xffffffff));
        else if (!strcmp(c, "personality_linux")) report(c, personality(PER_LINUX));
        else if (!strcmp(c, "personality_odd")) report(c, in_child(do_personality_odd));
        else if (!strcmp(c, "mkdir")) report(c, mkdir("/tmp/ck-probe-dir", 0755));
        else printf("%s unknown\n", c);
    }
    return 0;
}
"""

BLOCKED = (
    "keyctl",
    "add_key",
    "request_key",
    "unshare_user",
    "clone_user",
    "mount",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "open_by_handle_at",
    "personality_odd",
)
"""Calls Docker's default profile answers with EPERM in a default container (kernel >= 4.8)."""
ALLOWED = ("ptrace_child", "personality_query", "personality_linux")
"""Calls it lets through: ptrace (of its own child) since 4.8, PER_LINUX and the persona query."""


@pytest.fixture(scope="module")
def probe(compile_probe: Callable[[str, str], Path]) -> Path:
    return compile_probe("seccomp_probe", PROBE_SOURCE)


def _results(output: str) -> dict[str, str]:
    """``{"keyctl": "errno=EPERM", "ptrace_child": "ok", ...}`` from the probe's lines."""
    results = {}
    for line in output.splitlines():
        name, _, outcome = line.partition(" ")
        if name in BLOCKED + ALLOWED + ("mkdir",):
            results[name] = outcome
    return results


def _probe(
    engine: ck.Engine, runtime: str, probe: Path, calls: tuple[str, ...], **fields: object
) -> dict[str, str]:
    code, out = run_to_exit(engine, runtime, ["/probe", *calls], mounts=[probe_mount(probe)], **fields)
    assert code == 0, out
    results = _results(out)
    assert set(results) == set(calls), out
    return results


def test_default_profile_blocks_what_docker_blocks(engine: ck.Engine, runtime: str, probe: Path) -> None:
    results = _probe(engine, runtime, probe, BLOCKED + ALLOWED)
    assert {c: results[c] for c in BLOCKED} == dict.fromkeys(BLOCKED, "errno=EPERM")
    assert {c: results[c] for c in ALLOWED} == dict.fromkeys(ALLOWED, "ok")


def test_unconfined_reaches_the_kernel(engine: ck.Engine, runtime: str, probe: Path) -> None:
    """The control: without a filter none of the calls gets EPERM (so the test above can fail)."""
    results = _probe(engine, runtime, probe, BLOCKED + ALLOWED, security_opt=["seccomp=unconfined"])
    assert not [c for c, outcome in results.items() if outcome == "errno=EPERM"], results
    assert results["keyctl"] == "ok"


def _host_withholds_capabilities() -> bool:
    """Whether this process lacks a capability the kernel knows (runc then refuses privileged)."""
    with open("/proc/self/status") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return bounding != (1 << (last_cap + 1)) - 1


def test_privileged_is_unconfined(engine: ck.Engine, runtime: str, probe: Path) -> None:
    if runtime == "runc" and _host_withholds_capabilities():
        pytest.skip("runc cannot give a privileged container every capability: this host withholds some")
    results = _probe(engine, runtime, probe, BLOCKED, privileged=True)
    assert not [c for c, outcome in results.items() if outcome == "errno=EPERM"], results


def test_init_and_exec_are_filtered(engine: ck.Engine, runtime: str, probe: Path) -> None:
    """With ``--init`` the Python PID 1 keeps working, and an exec gets the same filter."""
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, init=True, mounts=[probe_mount(probe)])
    try:
        result = c.exec(["/probe", "keyctl", "unshare_user", "personality_linux"])
        assert result.exit_code == 0, result
        assert _results(result.stdout.decode()) == {
            "keyctl": "errno=EPERM",
            "unshare_user": "errno=EPERM",
            "personality_linux": "ok",
        }
        status = c.exec(["grep", "^Seccomp:", "/proc/1/status"]).stdout.decode()
        assert status.split() == ["Seccomp:", "2"], status
    finally:
        c.remove(force=True)


def test_custom_profile_from_a_file(engine: ck.Engine, runtime: str, probe: Path, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
            }
        )
    )
    assert _probe(engine, runtime, probe, ("mkdir", "keyctl"), security_opt=[f"seccomp={profile}"]) == {
        "mkdir": "errno=EACCES",
        "keyctl": "ok",  # the profile allows everything else
    }
    assert _probe(engine, runtime, probe, ("mkdir",)) == {"mkdir": "ok"}


def test_profile_errors_name_the_path_or_option(engine: ck.Engine, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(InvalidArgument, match=f"opening seccomp profile \\({missing}\\) failed"):
        engine.containers.create(image=IMAGE, security_opt=[f"seccomp={missing}"])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidArgument, match=f"Decoding seccomp profile \\({broken}\\) failed"):
        engine.containers.create(image=IMAGE, security_opt=[f"seccomp={broken}"])
    with pytest.raises(InvalidArgument, match='invalid --security-opt 2: "seccom=unconfined"'):
        engine.containers.create(image=IMAGE, security_opt=["seccom=unconfined"])
    with pytest.raises(InvalidArgument, match='invalid --security-opt 1: "bogus"'):
        engine.containers.create(image=IMAGE, security_opt=["bogus"])
    assert not [c for c in engine.containers.list(all=True) if c.spec.security_opt]


# -- through the Docker API: the docker CLI and docker-py against containerkitd -----------------


@pytest.fixture(scope="module")
def docker_cli(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Any]:
    """``docker_cli(*args)`` -> CompletedProcess, against a containerkitd of this module."""
    from tests.daemon.conftest import DOCKER, serve

    binary = shutil.which("docker") or (DOCKER if os.path.exists(DOCKER) else None)
    if binary is None:
        pytest.skip("the docker CLI is not installed")
    base = tmp_path_factory.mktemp("ckd-seccomp")
    with serve(base, busybox_rootfs_tar, image=IMAGE) as daemon:
        env = {**os.environ, "DOCKER_HOST": daemon.url, "DOCKER_CONFIG": str(base / "docker-config")}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=60)

        run.url = daemon.url  # type: ignore[attr-defined]
        yield run


def test_docker_cli_security_opt(docker_cli: Any, tmp_path: Path) -> None:
    status = docker_cli("run", "--rm", IMAGE, "grep", "^Seccomp:", "/proc/self/status")
    assert status.stdout.split() == ["Seccomp:", "2"], status.stderr
    status = docker_cli(
        "run", "--rm", "--security-opt", "seccomp=unconfined", IMAGE, "grep", "^Seccomp:", "/proc/self/status"
    )
    assert status.stdout.split() == ["Seccomp:", "0"], status.stderr
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )
    made = docker_cli("run", "--rm", "--security-opt", f"seccomp={profile}", IMAGE, "mkdir", "/tmp/x")
    assert made.returncode == 1 and "Operation not permitted" in made.stderr, made
    created = docker_cli(
        "create", "--security-opt", f"seccomp={profile}", "--security-opt", "no-new-privileges", IMAGE
    )
    assert created.returncode == 0, created.stderr
    try:
        shown = json.loads(
            docker_cli(
                "inspect", "--format", "{{json .HostConfig.SecurityOpt}}", created.stdout.strip()
            ).stdout
        )
    finally:
        docker_cli("rm", "-f", created.stdout.strip())
    # as dockerd shows it: the CLI sent the profile's JSON, not the path
    assert shown == [
        "seccomp=" + json.dumps(json.loads(profile.read_text()), separators=(",", ":")),
        "no-new-privileges",
    ]
    bad = docker_cli("create", "--security-opt", "seccom=unconfined", IMAGE)
    assert bad.returncode != 0 and 'invalid --security-opt 2: "seccom=unconfined"' in bad.stderr, bad.stderr


def test_docker_py_security_opt(docker_cli: Any) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=docker_cli.url, timeout=60)
    try:
        c = client.containers.create(
            IMAGE, ["true"], security_opt=["seccomp=unconfined", "apparmor=unconfined"]
        )
        try:
            assert c.attrs["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined", "apparmor=unconfined"]
        finally:
            c.remove(force=True)
        with pytest.raises(docker.errors.APIError, match='invalid --security-opt 1: "bogus"') as info:
            client.containers.create(IMAGE, ["true"], security_opt=["bogus"])
        assert info.value.status_code == 400
    finally:
        client.close()


def test_containerkit_cli_security_opt(engine: ck.Engine, security_root: Path, tmp_path: Path) -> None:
    """``containerkit run --security-opt``: a profile file, and docker's errors for bad options."""
    # This interpreter's own package (a containerkit on PATH may belong to another install).
    command = [sys.executable, "-m", "containerkit.cli"]
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [*command, "--root", str(security_root), "run", "--rm", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    made = run("--security-opt", f"seccomp={profile}", IMAGE, "mkdir", "/tmp/x")
    assert made.returncode == 1 and "Operation not permitted" in made.stderr, made
    assert run(IMAGE, "mkdir", "/tmp/x").returncode == 0
    missing = run("--security-opt", f"seccomp={tmp_path}/none.json", IMAGE, "true")
    assert (
        missing.returncode == 125
        and f"opening seccomp profile ({tmp_path}/none.json) failed" in missing.stderr
    )
    assert 'Invalid --security-opt: "bogus"' in run("--security-opt", "bogus", IMAGE, "true").stderr
    assert 'invalid --security-opt 2: "foo=bar"' in run("--security-opt", "foo=bar", IMAGE, "true").stderr
