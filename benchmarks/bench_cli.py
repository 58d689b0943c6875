"""The command line: ``containerkit run --rm IMG true`` against ``docker run --rm``, same run.

Each invocation is a new process, as a user types it: interpreter start, imports, engine open,
create + start + wait + remove, exit. Python byte-code caching matters a lot for that; the
package is byte-compiled first, as pip does when it installs one.

    python3 benchmarks/bench_cli.py [--runs 20]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import IMAGE, ensure_image, median, peer_available, report, timed

import containerkit as ck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    cli = shutil.which("containerkit") or sys.exit(
        "the containerkit command is not installed (pip install -e .)"
    )
    # An installed package ships compiled byte-code (pip compiles at install); an editable
    # checkout under PYTHONDONTWRITEBYTECODE would otherwise compile every module every run.
    package = Path(ck.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    print(f"byte-code compiled for {package}")
    with tempfile.TemporaryDirectory(prefix="ck-bench-cli-") as tmp:
        root = Path(tmp) / "root"
        with ck.Engine(root=root) as engine:
            ensure_image(engine, Path(tmp))
        rows: list[tuple[str, float | None, str]] = []
        for network in ("none", "bridge"):
            argv = [cli, "--root", str(root), "run", "--rm", "--network", network, IMAGE, "true"]
            samples = timed(lambda a=argv: subprocess.run(a, check=True, capture_output=True), args.runs)
            rows.append((f"containerkit run --rm --network {network}", median(samples), ""))
        for network in ("none", "bridge"):
            name = f"docker run --rm --network {network}"
            if peer_available("docker", ["docker", "info"]):
                argv = ["docker", "run", "--rm", "--network", network, "busybox", "true"]
                samples = timed(lambda a=argv: subprocess.run(a, check=True, capture_output=True), args.runs)
                rows.append((name, median(samples), ""))
            else:
                recorded = {"none": 220.0, "bridge": 303.0}[network]
                rows.append((name, recorded, "no dockerd here: DESIGN.md's recorded figure"))
        report("CLI start-to-exit of `true` (median)", rows, reference="docker run --rm --network none")
        with ck.Engine(root=root) as engine:  # takes the default bridge down again
            pass


if __name__ == "__main__":
    main()
