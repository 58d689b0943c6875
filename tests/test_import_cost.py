"""What a process that only starts containers imports: not the HTTP stack of the registry client.

The command line (``containerkit run``), each container's exit command and the fork server open
an Engine in a fresh interpreter; every module they import is paid on every one of those starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit

HTTP_STACK = ("requests", "urllib3", "charset_normalizer", "containerkit.images.registry.transport")
BUILD_ONLY = ("containerkit.dockerfile", "containerkit.engine.builder.executor", "urllib.request")
# docker commit / cp / export / save / load / history and registries: loaded by the verbs using them
IMAGE_WRITING = (
    "containerkit.engine.commit",
    "containerkit.engine.export",
    "containerkit.engine._archive",
    "containerkit.engine.history",
    "containerkit.engine.registries",
    "containerkit.images.archive",
    "containerkit.images.registry.auth",
    "containerkit.images.registry.sources",
    "containerkit.storage.apply",
    "containerkit.engine._layerblobs",  # layer blobs kept, released, rebuilt: pulls, saves, prunes
    "gzip",
)


def _imported_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_the_engine_loads_no_registry_http_stack() -> None:
    loaded = _imported_after("from containerkit.engine.engine import Engine")
    assert "containerkit.engine.container_service" in loaded  # the statement did load the engine
    assert not loaded & set(HTTP_STACK)
    assert not loaded & set(BUILD_ONLY)  # the builder's recovery needs only its label
    assert not loaded & set(IMAGE_WRITING)


def test_opening_an_engine_loads_no_image_writing_code(tmp_path: Path) -> None:
    # an Engine opens (and recovers) a root with every kind of state a commit or pull leaves
    loaded = _imported_after(
        "from containerkit.engine.engine import Engine\n"
        f"Engine(root={str(tmp_path / 'root')!r}, forkserver=False).close()"
    )
    assert "containerkit.engine.container_service" in loaded
    assert not loaded & set(IMAGE_WRITING)
    assert "containerkit.runtime.spawner" not in loaded  # no fork server asked for


def test_the_command_line_loads_no_engine_before_a_verb_needs_it() -> None:
    loaded = _imported_after("import containerkit.cli.main, containerkit.cli._root")
    assert "containerkit.cli._root" in loaded
    assert not {m for m in loaded if m.startswith(("containerkit.engine.", "containerkit.runtime."))}
    assert not loaded & set(HTTP_STACK)


def test_the_package_and_the_command_line_build_no_models_before_use() -> None:
    # attrs builds every model class when containerkit.spec runs; --version and --help need none
    loaded = _imported_after("import containerkit, containerkit.cli.main")
    assert "containerkit.errors" in loaded  # the exceptions stay eager: they are cheap
    assert "containerkit.spec" not in loaded
    assert "attr" not in loaded
    loaded = _imported_after(
        "import containerkit\nassert containerkit.ContainerSpec.__module__ == 'containerkit.spec'"
    )
    assert "containerkit.spec" in loaded  # a model name loads its module on first use


def test_version_reads_no_installed_metadata() -> None:
    code = (
        "import json, sys\nfrom containerkit.cli.main import cli\n"
        "try:\n    cli.main(['--version'], prog_name='containerkit')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, _, rest = done.stdout.partition("\n")
    assert first == f"containerkit {containerkit.__version__}"
    loaded = set(json.loads(rest))
    assert "importlib.metadata" not in loaded
    assert "containerkit.spec" not in loaded


def _command_line_modules(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The console script's ``main`` run with ``args`` in a fresh interpreter: its result and the
    modules loaded by its exit (listed by an exit handler, which its fast exit runs too)."""
    listing = workdir / "modules.json"
    listing.unlink(missing_ok=True)
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(listing)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "from containerkit.cli.main import main\nmain()"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    return done, set(json.loads(listing.read_text()))


def test_version_alone_loads_no_click(tmp_path: Path) -> None:
    for flag in ("--version", "-v"):
        done, loaded = _command_line_modules(tmp_path, flag)
        assert (done.returncode, done.stdout) == (0, f"containerkit {containerkit.__version__}\n")
        assert "containerkit.cli.main" in loaded
        assert "click" not in loaded
        assert "containerkit.spec" not in loaded
    done, loaded = _command_line_modules(tmp_path, "--version", "--help")  # anything more: click's parsing
    assert done.returncode == 0 and "click" in loaded


@pytest.fixture
def busybox_root(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    root = tmp_path / "root"
    with containerkit.Engine(root=root, forkserver=False) as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, "busybox:latest", config={"Cmd": ["sh"]})
    yield root
    with containerkit.Engine(root=root, forkserver=False) as engine:
        leftover = engine.containers.list(all=True)
        for container in leftover:
            container.remove(force=True)
    assert leftover == []


def test_run_on_network_none_loads_no_network_http_or_image_writing_code(busybox_root: Path) -> None:
    args = ("--root", str(busybox_root), "run", "--rm", "--network", "none", "busybox", "true")
    done, loaded = _command_line_modules(busybox_root.parent, *args)
    assert done.returncode == 0, done.stderr
    assert "containerkit.engine.container_service" in loaded  # it did run a container here
    assert not loaded & set(HTTP_STACK)
    assert not loaded & set(BUILD_ONLY)
    assert not loaded & set(IMAGE_WRITING)
    assert "pyroute2" not in loaded  # no netlink library for a container without a network
    assert not {m for m in loaded if m.startswith(("containerkit.client", "containerkit.dockerapi"))}
    assert "containerkit.runtime.spawner" not in loaded  # one container: no fork server
    assert not loaded & {"logging", "traceback"}  # loaded where a warning or a failure is reported
    assert "containerkit.cli._output" not in loaded  # tables and formats: ps, stats, top
    assert "containerkit.cli.containers" not in loaded  # the other container verbs' options
