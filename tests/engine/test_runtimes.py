"""The same lifecycle through every installed OCI runtime backend (the bundle is the contract)."""

from __future__ import annotations

import time

import pytest

import containerkit as ck
from containerkit.runtime import runc

from .conftest import IMAGE, leftovers

BACKENDS = ["builtin", "runc", "crun"]


def _require(backend: str) -> None:
    if backend == "builtin":
        return
    if not runc.available(backend):
        pytest.skip(f"{backend}: {runc.unavailable_reason(backend)}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifecycle(engine: ck.Engine, backend: str) -> None:
    _require(backend)
    c = engine.containers.run(
        IMAGE,
        ["sh", "-c", "echo out; echo err >&2; hostname; exit 7"],
        runtime=backend,
        hostname="rt",
        resources=ck.Resources(memory="64m", pids=20),
    )
    assert c.wait(timeout=30) == 7
    assert c.logs(stderr=False) == b"out\nrt\n"
    assert c.logs(stdout=False) == b"err\n"
    c.remove()
    assert leftovers(c.id) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_exec_stop_and_cleanup(engine: ck.Engine, backend: str) -> None:
    _require(backend)
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=backend)
    assert c.exec(["sh", "-c", "echo $$; exit 3"]).exit_code == 3
    assert c.stats().pids >= 1
    c.stop(timeout=1)
    assert c.exit_code == 137
    c.remove()
    assert leftovers(c.id) == []


def test_crun_refusal_is_explained() -> None:
    try:
        runc.find_binary("crun")
    except ck.Unavailable:
        pytest.skip("crun is not installed")
    if runc.available("crun"):
        pytest.skip("crun works on this host")
    assert "hybrid" in (runc.unavailable_reason("crun") or "")


@pytest.mark.parametrize("backend", BACKENDS)
def test_tty_resize(engine: ck.Engine, backend: str) -> None:
    """The pty master is the shim's with every backend (runc's comes over the console socket)."""
    _require(backend)
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=backend, tty=True)
    c.resize(33, 77)
    deadline = time.monotonic() + 10
    while c.exec("stty size </dev/console").stdout != b"33 77\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.exec("stty size </dev/console").stdout == b"33 77\n"
    c.remove(force=True)
    assert leftovers(c.id) == []
