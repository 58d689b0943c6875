"""Start-to-exit of ``true`` through ``Engine`` on the default bridge network against
``network="none"`` (create + start + wait + remove, so the veth, netns and addresses are made
and undone each time), and with one published port. Medians in milliseconds.

    python3 benchmarks/bench_bridge.py [--runs 30]

Docker and podman on their default bridge took 303 ms and 353 ms on this machine (DESIGN.md).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import IMAGE, ensure_image, median, report, timed

import containerkit as ck


def _cycle(engine: ck.Engine, **fields: object) -> None:
    container = engine.containers.run(IMAGE, ["true"], **fields)
    code = container.wait(timeout=30)
    container.remove()
    if code != 0:
        raise RuntimeError(f"container exited {code}: {container.logs()!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ck.Engine(root=Path(tmp) / "root") as engine:
        ensure_image(engine, Path(tmp))
        rows: list[tuple[str, float | None, str]] = []
        for name, fields in (
            ("none", {"network": "none"}),
            ("bridge", {"network": "bridge"}),
            ("bridge + 1 published port", {"network": "bridge", "ports": {"80/tcp": None}}),
        ):
            samples = timed(lambda f=fields: _cycle(engine, **f), args.runs)  # type: ignore[misc]
            rows.append((f"containerkit run true ({name})", median(samples), f"n={args.runs}"))
        rows.append(("docker run --rm true (default bridge, DESIGN.md)", 303.0, "reference"))
        rows.append(("podman run --rm true (default bridge, DESIGN.md)", 353.0, "reference"))
        report(
            "start-to-exit of true, medians (ms)",
            rows,
            reference="docker run --rm true (default bridge, DESIGN.md)",
        )


if __name__ == "__main__":
    main()
