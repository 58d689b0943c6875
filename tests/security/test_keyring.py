"""Finding 5: a container does not share the host's session keyring.

A helper process plays the host login: it joins a session keyring of its own, links root's user
keyring into it (as ``pam_keyinit`` does) and puts a canary key in each. Then it starts a
container (``seccomp=unconfined``, so the keyring isolation itself is tested, not the filter)
whose probe searches its session and user keyrings for the canaries and plants a key in its
session keyring. Neither canary may reach the container, and the plant must not land in the
helper's session keyring. The helper keeps the test process's own keyrings out of it, and
invalidates its keys at the end; the test invalidates them again should the helper die.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE, probe_mount

PROBE_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* argv[1], argv[2]: canary descriptions; argv[3]: the description to plant in @s */
static void try_read(const char *ring_name, long ring, const char *desc) {
    long key = syscall(SYS_keyctl, 10 /*KEYCTL_SEARCH*/, ring, "user", desc, 0);
    if (key < 0) { printf("%s %s search errno=%s\n", ring_name, desc, strerrorname_np(errno)); return; }
    char buf[256] = {0};
    long n = syscall(SYS_keyctl, 11 /*KEYCTL_READ*/, key, buf, sizeof buf - 1);
    if (n < 0) { printf("%s %s read errno=%s\n", ring_name, desc, strerrorname_np(errno)); return; }
    printf("%s %s payload=%s\n", ring_name, desc, buf);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && !strcmp(argv[1], "id")) {  /* the session keyring's serial, not made here */
        printf("session id=%ld\n", syscall(SYS_keyctl, 0 /*GET_KEYRING_ID*/, -3, 0));
        return 0;
    }
    if (argc < 4) return 2;
    for (int i = 1; i <= 2; i++) {
        try_read("session", -3, argv[i]);
        try_read("user", -4, argv[i]);
    }
    long planted = syscall(SYS_add_key, "user", argv[3], "planted", 7, -3);
    printf(planted < 0 ? "plant errno=%s\n" : "plant ok%s\n", planted < 0 ? strerrorname_np(errno) : "");
    return 0;
}
"""

HELPER = r"""
import ctypes, json, sys
import containerkit as ck

root, tar, probe, runtime, tag = sys.argv[1:6]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
KEYCTL, ADD_KEY = 250, 248
SESSION, USER = -3, -4


def keyctl(*args):
    rc = libc.syscall(KEYCTL, *[ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args])
    return rc if rc >= 0 else -ctypes.get_errno()


def add_key(desc, payload, ring):
    rc = libc.syscall(ADD_KEY, b"user", desc.encode(), payload.encode(), len(payload), ctypes.c_long(ring))
    assert rc >= 0, f"add_key {desc}: errno {ctypes.get_errno()}"
    return rc


def read(key):
    buf = ctypes.create_string_buffer(256)
    n = keyctl(11, key, ctypes.addressof(buf), 255)
    return buf.raw[:n].decode() if n >= 0 else None


keyctl(1, f"ck-test-host-{tag}".encode())  # KEYCTL_JOIN_SESSION_KEYRING: the host login's
keyctl(8, USER, SESSION)  # KEYCTL_LINK @u into @s, as pam_keyinit does
keys = [
    add_key(f"ck-canary-s-{tag}", f"canary-session-{tag}", SESSION),
    add_key(f"ck-canary-u-{tag}", f"canary-user-{tag}", USER),
]
result = {"host_reads": [read(k) for k in keys]}
try:
    with ck.Engine(root=root) as engine:
        engine.images.import_rootfs(tar, "ck/keyring:latest", config={"Cmd": ["sh"]})
        c = engine.containers.run(
            "ck/keyring:latest",
            ["/probe", f"ck-canary-s-{tag}", f"ck-canary-u-{tag}", f"ck-planted-{tag}"],
            runtime=runtime,
            security_opt=["seccomp=unconfined"],
            mounts=[ck.Mount(target="/probe", source=probe, type="bind", read_only=True)],
        )
        try:
            result["exit_code"] = c.wait(timeout=60)
            result["output"] = c.logs().decode(errors="replace")
        finally:
            c.remove(force=True)
    planted = keyctl(10, SESSION, b"user", f"ck-planted-{tag}".encode(), 0)  # KEYCTL_SEARCH
    result["planted_in_host_session"] = planted >= 0
    if planted >= 0:
        keys.append(planted)
finally:
    for key in keys:
        keyctl(21, key)  # KEYCTL_INVALIDATE
print(json.dumps(result))
"""


def _keyctl(*args: int | bytes) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return int(
        libc.syscall(250, *[ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args])
    )


@pytest.fixture
def tag() -> Iterator[str]:
    """A unique key name part; afterwards any key of that name left in root's user keyring goes."""
    value = uuid.uuid4().hex[:12]
    yield value
    for name in (f"ck-canary-u-{value}", f"ck-planted-{value}"):
        key = _keyctl(10, -4, b"user", name.encode(), 0)
        if key >= 0:
            _keyctl(21, key)


def test_container_gets_a_fresh_session_keyring(
    runtime: str,
    tag: str,
    tmp_path: Path,
    busybox_rootfs_tar: Path,
    compile_probe: Callable[[str, str], Path],
) -> None:
    if not Path("/proc/sys/kernel/keys").exists():
        pytest.skip("the kernel has no keyrings")
    probe = compile_probe("keyring_probe", PROBE_SOURCE)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            HELPER,
            str(tmp_path / "root"),
            str(busybox_rootfs_tar),
            str(probe),
            runtime,
            tag,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    # the canaries are there to be read by whoever holds the session keyring
    assert result["host_reads"] == [f"canary-session-{tag}", f"canary-user-{tag}"]
    output = result["output"]
    assert result["exit_code"] == 0, output
    assert f"canary-session-{tag}" not in output
    assert f"canary-user-{tag}" not in output
    assert "plant ok" in output  # the container's own session keyring takes it...
    assert not result["planted_in_host_session"]  # ...and it is not the host's


def test_exec_joins_the_containers_keyring(
    engine: ck.Engine, runtime: str, compile_probe: Callable[[str, str], Path]
) -> None:
    """An exec joins the container's own session keyring (runc's ``_ses.<id>``), not a new one
    and not the host's."""
    probe = compile_probe("keyring_probe", PROBE_SOURCE)
    c = engine.containers.run(
        IMAGE,
        ["sh", "-c", "/probe id; exec sleep 60"],
        runtime=runtime,
        security_opt=["seccomp=unconfined"],
        mounts=[probe_mount(probe)],
    )
    try:
        first = wait_for_logs(c, "session id=")
        ids = {c.exec(["/probe", "id"]).stdout.decode().strip() for _ in range(2)}
        assert ids == {first}, (first, ids)
        host = subprocess.run([str(probe), "id"], capture_output=True, text=True, check=True).stdout.strip()
        assert host != first
    finally:
        c.remove(force=True)


def wait_for_logs(container: ck.Container, prefix: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in (container.logs() or b"").decode().splitlines():
            if line.startswith(prefix):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {prefix!r} line in {container.logs()!r}")
