"""The command line: ``containerkit run --rm IMG true`` beside the docker CLI, same run, interleaved.

Each invocation is a new process, as a user types it: interpreter start, imports, engine open,
create + start + wait + remove, exit. Python byte-code caching matters a lot for that; the
package is byte-compiled first, as pip does when it installs one. The console script is the one
pip wrote next to this interpreter (not a version manager's shim found on PATH).

Rows: the interpreter alone (``python -c pass``, with and without ``site``: what the host's
``.pth`` files cost before any containerkit code runs), ``containerkit --version``,
``containerkit run --rm`` (network none and the default bridge), the docker CLI against a
containerkitd on the same root, and ``docker run --rm`` when a dockerd answers.

``--python`` times another interpreter's install instead (its ``python`` and the ``containerkit``
script beside it), e.g. a venv of Debian's /usr/bin/python3 with this checkout installed, which
is what a Debian user runs; the engine, the image and the daemon stay this interpreter's.

    python3 benchmarks/bench_cli.py [--runs 20] [--python /tmp/venv-deb/bin/python]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import (
    IMAGE,
    containerkit_command,
    ensure_image,
    interleaved_samples,
    median,
    peer_available,
    report,
)
from _peers import containerkitd

import containerkit as ck


def _shell(argv: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python", help="the interpreter whose install to time (default: this one)")
    args = parser.parse_args()
    python = args.python or sys.executable
    found = str(Path(python).parent / "containerkit") if args.python else containerkit_command()
    if not found or not Path(found).is_file():
        sys.exit(f"no containerkit command beside {python} (pip install -e .)")
    cli = found
    print(f"command: {cli}")
    # An installed package ships compiled byte-code (pip compiles at install); an editable
    # checkout under PYTHONDONTWRITEBYTECODE would otherwise compile every module every run.
    package = Path(ck.__file__).parent
    subprocess.run([python, "-m", "compileall", "-q", str(package)], check=True)
    print(f"byte-code compiled for {package}")
    with tempfile.TemporaryDirectory(prefix="ck-bench-cli-") as tmp:
        root = Path(tmp) / "root"
        with ck.Engine(root=root) as engine:
            ensure_image(engine, Path(tmp))
            engine.images.tag(IMAGE, "busybox:latest")
        contenders: dict[str, Callable[[], object]] = {
            "python -c pass": _shell([python, "-c", "pass"]),
            "python -S -c pass (no site)": _shell([python, "-S", "-c", "pass"]),
            "containerkit --version": _shell([cli, "--version"]),
        }
        for network in ("none", "bridge"):
            argv = [cli, "--root", str(root), "run", "--rm", "--network", network, IMAGE, "true"]
            contenders[f"containerkit run --rm --network {network}"] = _shell(argv)
        docker = peer_available("docker", ["docker", "info"])
        with containerkitd(root, Path(tmp)) as sock:
            argv = ["docker", "-H", f"unix://{sock}", "run", "--rm", "--network", "none", "busybox", "true"]
            contenders["docker CLI -> containerkitd, --network none"] = _shell(argv)
            if docker:
                argv = ["docker", "run", "--rm", "--network", "none", "busybox", "true"]
                contenders["docker run --rm --network none (dockerd)"] = _shell(argv)
            samples = interleaved_samples(contenders, args.runs)
        rows = [(name, median(values), "") for name, values in samples.items()]
        if not docker:
            recorded = ("docker run --rm --network none (dockerd)", 220.0, "no dockerd here: recorded")
            rows.append(recorded)
        report(
            "CLI start-to-exit of `true` (median ms, interleaved)",
            rows,
            reference="docker CLI -> containerkitd, --network none",
        )
        with ck.Engine(root=root):  # takes the default bridge down again
            pass


if __name__ == "__main__":
    main()
