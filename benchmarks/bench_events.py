"""The event log's cost: one recording (what every container start, stop and removal pays, per
event) and how long a follower in another process takes to see a new event.

    python benchmarks/bench_events.py [--runs 500]

A recording commits without its own fsync (see ``EventStore._lazy_sync``); a follower polls the
database every ``POLL_SECONDS`` (0.2 s), so its latency is about half that on average.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import median, timed
from containerkit.engine.events import EventLog
from containerkit.storage.metadata import Database

_FOLLOWER = """
import sys, time
from pathlib import Path
from containerkit.engine.events import EventLog
from containerkit.storage.metadata import Database
log = EventLog(Database(Path(sys.argv[1])))
print("ready", flush=True)
for n, event in enumerate(log.events()):
    print((time.time_ns() - event.time_nano) / 1e6, flush=True)
    if n + 1 == int(sys.argv[2]):
        break
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--latency-samples", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ck-bench-events-") as tmp:
        path = Path(tmp) / "metadata.db"
        log = EventLog(Database(path))
        attributes = {"name": "web", "image": "busybox:latest", "com.example.tier": "front"}
        samples = timed(lambda: log.record("container", "start", "c" * 64, attributes), args.runs)
        print(f"record one event: median {median(samples):.3f} ms over {args.runs}")
        durable = Database(Path(tmp) / "durable.db")
        samples = timed(lambda: _durable_insert(durable), args.runs)
        print(f"  (a durable metadata commit on the same disk: median {median(samples):.3f} ms)")
        follower = subprocess.Popen(
            [sys.executable, "-c", _FOLLOWER, str(path), str(args.latency_samples)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        for n in range(args.latency_samples):
            time.sleep(random.uniform(0.05, 0.3))
            log.record("volume", "create", f"v{n}")
        latencies = [float(line) for line in follower.stdout]
        follower.wait(30)
        print(
            f"follower in another process sees it after: median {median(latencies):.1f} ms,"
            f" max {max(latencies):.1f} ms ({len(latencies)} events)"
        )


def _durable_insert(db: Database) -> None:
    with db.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench (n INTEGER)")
        conn.execute("INSERT INTO bench VALUES (1)")


if __name__ == "__main__":
    main()
