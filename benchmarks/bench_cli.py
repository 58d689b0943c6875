"""The command line: ``containerkit run --rm IMG true`` beside the docker CLI, same run, interleaved.

Each invocation is a new process, as a user types it: interpreter start, imports, engine open,
create + start + wait + remove, exit. Python byte-code caching matters a lot for that; the
package is byte-compiled first, as pip does when it installs one. The console script is the one
pip wrote next to this interpreter (not a version manager's shim found on PATH).

Rows: the interpreter alone (``python -c pass``, with and without ``site``: what the host's
``.pth`` files cost before any containerkit code runs), a start-to-exit in this process with its
Engine open (with ``python -c pass``, the floor a command line could reach), ``containerkit --version``,
``containerkit run --rm`` (network none and the default bridge), the docker CLI against a
containerkitd on the same root, and ``docker run --rm`` when a dockerd answers.

``--python`` times another interpreter's install instead (its ``python`` and the ``containerkit``
script beside it), e.g. a venv of Debian's /usr/bin/python3 with this checkout installed, which
is what a Debian user runs; the engine, the image and the daemon stay this interpreter's.

``--baseline DIR`` adds the same ``run --rm --network none`` with the ``containerkit`` package of
another tree (``DIR/containerkit``, e.g. ``git archive HEAD~3 containerkit | tar -x -C DIR``) put
first on ``PYTHONPATH``: a change to what the command imports, measured against the code before
it in the same interleaved run (same interpreter, same root and image).

``--phases`` prints where one ``containerkit run --rm --network none`` spends its time instead,
from exec to exit (medians over the runs; see ``_cli_phases.py``), and the ``-X importtime``
self times grouped by package (``-X importtime`` slows imports: read them as shares).

    python3 benchmarks/bench_cli.py [--runs 20] [--python /tmp/venv-deb/bin/python] [--phases]
                                    [--baseline /tmp/before]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
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


def _shell(argv: list[str], env: dict[str, str] | None = None) -> Callable[[], object]:
    return lambda: subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL, env=env)


def _baseline_env(tree: Path, python: str) -> dict[str, str]:
    """The environment that makes the console script import ``tree/containerkit`` (byte-compiled
    first, as this checkout is) instead of the installed package."""
    package = tree / "containerkit"
    if not (package / "__init__.py").is_file():
        sys.exit(f"--baseline: no containerkit package in {tree}")
    subprocess.run([python, "-m", "compileall", "-q", str(package)], check=True)
    return dict(os.environ, PYTHONPATH=str(tree.resolve()))


_IN_PROCESS = "in-process start-to-exit (Engine open)"
_PHASES = Path(__file__).with_name("_cli_phases.py")
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|( +)(\S+)")
_GROUPS = (
    ("site (.pth files)", ("site", "__editable__", "certifi", "_distutils_hack", "importlib.readers")),
    ("click", ("click",)),
    ("attrs", ("attr", "attrs")),
    ("containerkit.spec + _model", ("containerkit.spec", "containerkit._model")),
    ("containerkit.cli", ("containerkit.cli",)),
    ("containerkit.engine", ("containerkit.engine",)),
    ("containerkit.runtime", ("containerkit.runtime",)),
    ("containerkit.network", ("containerkit.network",)),
    ("containerkit.storage", ("containerkit.storage",)),
    ("containerkit.images", ("containerkit.images",)),
    ("containerkit.linux", ("containerkit.linux",)),
    ("containerkit (other)", ("containerkit",)),
)


def _group(module: str) -> str:
    for label, prefixes in _GROUPS:
        if any(module == p or module.startswith(p + ".") or module.startswith(p + "_") for p in prefixes):
            return label
    return "stdlib + other packages"


def phases(python: str, root: Path, runs: int) -> None:
    """Median time of each phase of ``run --rm --network none`` and of each import group."""
    argv = ["--root", str(root), "run", "--rm", "--network", "none", IMAGE, "true"]
    out = root.parent / "phases.jsonl"
    totals: list[float] = []
    for _ in range(runs + 1):  # the first one warms the caches
        env = dict(os.environ, CK_PHASES_OUT=str(out), CK_PHASES_T0=repr(time.time()))
        subprocess.run([python, str(_PHASES), *argv], env=env, check=True, capture_output=True)
        totals.append((time.time() - float(env["CK_PHASES_T0"])) * 1000)
    per_phase: dict[str, list[float]] = {}
    for line, total in list(zip(out.read_text().splitlines(), totals, strict=True))[1:]:
        spent: dict[str, float] = {}
        previous = 0.0
        for phase, at in json.loads(line):
            spent[phase] = spent.get(phase, 0.0) + (at - previous) * 1000
            previous = max(previous, at)
        spent["process exit (after the exit handlers)"] = total - previous * 1000
        for phase, ms in spent.items():
            per_phase.setdefault(phase, []).append(ms)
    rows = [(phase, median(values), "") for phase, values in per_phase.items()]
    rows.append(("total (exec to exit, measured by the parent)", median(totals[1:]), ""))
    report(f"containerkit run --rm --network none, phase by phase ({python})", rows)
    groups: dict[str, list[float]] = {}
    for _ in range(max(3, runs // 4)):
        done = subprocess.run(
            [python, "-X", "importtime", str(_PHASES), *argv],
            env=dict(os.environ, CK_PHASES_OUT=os.devnull, CK_PHASES_T0=repr(time.time())),
            check=True,
            capture_output=True,
            text=True,
        )
        spent = {}
        ancestors: list[str] = []  # read bottom-up, each line's parent comes before it
        for match in reversed(list(_IMPORT_LINE.finditer(done.stderr))):
            depth = (len(match.group(2)) - 1) // 2
            del ancestors[depth:]
            ancestors.append(match.group(3))
            label = _group(ancestors[0]) if ancestors[0] == "site" else _group(match.group(3))
            spent[label] = spent.get(label, 0.0) + int(match.group(1)) / 1000
        for label, ms in spent.items():
            groups.setdefault(label, []).append(ms)
    report(
        "imports of that run, self time by group (-X importtime, median ms)",
        sorted(((label, median(v), "") for label, v in groups.items()), key=lambda r: -(r[1] or 0)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--python", help="the interpreter whose install to time (default: this one)")
    parser.add_argument("--phases", action="store_true", help="where a run spends its time, phase by phase")
    parser.add_argument(
        "--baseline", type=Path, help="a tree whose containerkit package to time beside this one"
    )
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
        if args.phases:
            phases(python, root, args.runs)
            with ck.Engine(root=root):
                pass
            return
        contenders: dict[str, Callable[[], object]] = {
            "python -c pass": _shell([python, "-c", "pass"]),
            "python -S -c pass (no site)": _shell([python, "-S", "-c", "pass"]),
            "containerkit --version": _shell([cli, "--version"]),
        }
        for network in ("none", "bridge"):
            argv = [cli, "--root", str(root), "run", "--rm", "--network", network, IMAGE, "true"]
            contenders[f"containerkit run --rm --network {network}"] = _shell(argv)
        if args.baseline is not None:
            argv = [cli, "--root", str(root), "run", "--rm", "--network", "none", IMAGE, "true"]
            baseline = _shell(argv, _baseline_env(args.baseline, python))
            contenders["containerkit run --rm --network none (base)"] = baseline
        # the floor's second part: start-to-exit in a process whose engine is open already (its
        # own root, so its open database does not change how the commands' ones close)
        floor = ck.Engine(root=Path(tmp) / "floor-root")
        ensure_image(floor, Path(tmp))

        def in_process() -> None:
            container = floor.containers.create(
                image=IMAGE, command=["true"], network_mode="none", auto_remove=True
            )
            container.start()
            container.wait()

        contenders[_IN_PROCESS] = in_process
        docker = peer_available("docker", ["docker", "info"])
        with floor, containerkitd(root, Path(tmp)) as sock:
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
        found_rows = {name: value for name, value, _ in rows}
        floor_ms = (found_rows["python -c pass"] or 0) + (found_rows[_IN_PROCESS] or 0)
        run_ms = found_rows["containerkit run --rm --network none"] or 0
        print(
            f"\nfloor (python -c pass + in-process start-to-exit): {floor_ms:.1f} ms; "
            f"containerkit run --rm --network none: {run_ms:.1f} ms = floor + {run_ms - floor_ms:.1f} ms"
        )
        with ck.Engine(root=root):  # takes the default bridge down again
            pass


if __name__ == "__main__":
    main()
