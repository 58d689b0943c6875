"""Attack tests: each one performs a real attack from inside a container, with canary files only.

Every attack runs under the built-in runtime and under runc (the same test, parametrised through
the ``runtime`` fixture). Probes are busybox commands or small static C programs compiled here
(``compile_probe``) and bind-mounted read-only into the container at ``/probe``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.runtime import runc

IMAGE = "example/busybox:latest"
RUNTIMES = ["builtin", "runc"]


@pytest.fixture(scope="session")
def security_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root: the attacks use real namespaces, mounts and cgroups")
    return tmp_path_factory.mktemp("security-root")


@pytest.fixture(scope="session")
def engine(security_root: Path, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=security_root) as eng:
        eng.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        yield eng
        for container in eng.containers.list(all=True):
            container.remove(force=True)


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Each attack under every runtime that must hold it off."""
    name = str(request.param)
    if name != "builtin" and not runc.available(name):
        pytest.skip(f"{name}: {runc.unavailable_reason(name)}")
    return name


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A host file an attack tries to read or overwrite; its content must stay as written."""
    path = tmp_path / "canary.txt"
    path.write_text("canary: untouched\n")
    path.chmod(0o644)
    return path


@pytest.fixture(scope="session")
def compile_probe(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``compile_probe(name, c_source)`` -> a static binary (cached per name for the session)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (gcc) to build the attack probes")
    out_dir = tmp_path_factory.mktemp("probes")
    built: dict[str, Path] = {}

    def compile_(name: str, source: str) -> Path:
        if name in built:
            return built[name]
        src = out_dir / f"{name}.c"
        src.write_text(source)
        binary = out_dir / name
        result = subprocess.run(
            [cc, "-static", "-O1", "-o", str(binary), str(src)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise AssertionError(f"probe {name} did not compile:\n{result.stderr}")
        built[name] = binary
        return binary

    return compile_


def probe_mount(binary: Path) -> ck.Mount:
    """Mount a compiled probe read-only at ``/probe`` in the container."""
    return ck.Mount(target="/probe", source=str(binary), type="bind", read_only=True)


def run_to_exit(
    engine: ck.Engine, runtime: str, command: list[str] | str, **fields: object
) -> tuple[int, str]:
    """Run ``command`` to its end; its exit code and combined output. The container is removed."""
    c = engine.containers.run(IMAGE, command, runtime=runtime, **fields)
    try:
        code = c.wait(timeout=60)
        out = (c.logs(stdout=True, stderr=True) or b"").decode(errors="replace")
        return code, out
    finally:
        c.remove(force=True)
