"""The console script's exit: the command's code and output, every exit handler, no teardown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import IMAGE, invoke

SCRIPT = """
import atexit, sys
from containerkit.cli.main import main
def note(what):
    with open({marks!r}, "a") as f:
        f.write(what + "\\n")
class Torn:
    def __del__(self, open=open, path={marks!r}):  # its own references: module globals are gone by then
        with open(path, "a") as f:
            f.write("torn down\\n")
kept = Torn()  # finalized by the interpreter's teardown, when there is one
if {before}:
    atexit.register(note, "registered before main")
def during():
    atexit.register(note, "registered by the command")
    print("output of the command", end="")  # left in stdout's buffer for the exit to flush
    if {thread}:
        import threading, time
        def late():
            time.sleep(0.2)
            note("thread done")
        threading.Thread(target=late).start()
import containerkit.cli.system as system
real = system.version.callback
def version(**kwargs):
    during()
    return real(**kwargs)
system.version.callback = version
main(sys.argv[1:])
"""


def _run(
    tmp_path: Path, *args: str, before: bool = False, thread: bool = False
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    marks = tmp_path / "marks"
    code = SCRIPT.format(marks=str(marks), before=before, thread=thread)
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    return done, marks.read_text().splitlines() if marks.exists() else []


def test_exit_keeps_code_output_and_handlers(tmp_path: Path) -> None:
    done, marks = _run(tmp_path, "version", "--format", "{{.Client.Version}}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("output of the command")
    assert marks == ["registered by the command"]  # and no teardown: "torn down" is not there


def test_a_failing_command_exits_with_its_code(tmp_path: Path) -> None:
    done, _ = _run(tmp_path, "no-such-verb")
    assert done.returncode == 125
    assert "No such command 'no-such-verb'" in done.stderr


def test_a_handler_registered_before_the_command_runs_too(tmp_path: Path) -> None:
    # e.g. a coverage tool's, registered when the interpreter started
    done, marks = _run(tmp_path, "version", before=True)
    assert done.returncode == 0, done.stderr
    assert marks == ["registered by the command", "registered before main"]


def test_a_thread_still_running_gets_the_usual_exit(tmp_path: Path) -> None:
    done, marks = _run(tmp_path, "version", thread=True)
    assert done.returncode == 0, done.stderr
    assert marks == ["thread done", "registered by the command", "torn down"]


RUN_LOADS = """
import atexit, json, sys
from containerkit.cli.main import main
atexit.register(lambda: open({out!r}, "w").write(json.dumps(sorted(sys.modules))))
main(["--root", {root!r}, "run", "--rm", "--network", "none", {image!r}, "echo", "ran"])
"""
# what `containerkit run --rm --network none IMG CMD` has no use for (tests/test_import_cost.py
# checks the same for importing the engine alone)
NOT_FOR_RUN = (
    "containerkit.dockerapi",
    "containerkit.engine.commit",
    "containerkit.engine.export",
    "containerkit.engine.registries",
    "containerkit.images.registry.auth",
    "containerkit.images.registry.transport",
    "containerkit.storage.apply",
    "containerkit.client",
    "requests",
    "importlib.metadata",
)


# ... nor, on a root without bridge networks, for the network's, exec's and unpacking's code
NOT_FOR_RUN_WITHOUT_NETWORK = (
    "containerkit.network.bridge",
    "containerkit.network.ipam",
    "containerkit.network.nat",
    "containerkit.network.ports",
    "containerkit.network.veth",
    "containerkit.runtime.exec",
    "containerkit.images.unpack",
    "containerkit.linux.ps",
    "containerkit.linux.volume_mounts",
    "tarfile",
    "zstandard",
)


def _modules_of_a_run(root: Path, out: Path) -> set[str]:
    code = RUN_LOADS.format(out=str(out), root=str(root), image=IMAGE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran\n"
    loaded = set(json.loads(out.read_text()))
    assert "containerkit.engine.container_service" in loaded  # it did run a container
    return loaded


def test_run_loads_only_what_it_uses(cli_root: Path, tmp_path: Path) -> None:
    loaded = _modules_of_a_run(cli_root, tmp_path / "modules.json")
    assert not loaded & set(NOT_FOR_RUN)


def test_run_without_a_network_loads_no_network_code(busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    # a root of its own: where a bridge network exists, opening the engine sweeps its rules;
    # the import's engine has reaped what vanished roots left on the host (reaping loads them)
    root = tmp_path / "root"
    imported = invoke(root, "import", "--change", 'CMD ["sh"]', str(busybox_rootfs_tar), IMAGE)
    assert imported.exit_code == 0, imported.output
    loaded = _modules_of_a_run(root, tmp_path / "modules.json")
    assert not loaded & {*NOT_FOR_RUN, *NOT_FOR_RUN_WITHOUT_NETWORK}
