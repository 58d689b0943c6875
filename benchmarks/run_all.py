"""Every figure of issue 15 in one run and one table: containerkit beside each peer installed here.

    python3 benchmarks/run_all.py [--runs 15] [--many 50] [--running 200] [--json out.json]

Rows: start-to-exit of ``true`` in-process (network none, then the default bridge), from a
shell, through a daemon (the docker CLI, docker-py's ``exec_run``), the first container of a
fresh Engine against the tenth, 50 containers started 4 at a time, listing with 200 running,
a pytest-fixture cycle, bench_build.py's build (cold, cached, one file changed) and
bench_pull.py's pulls from a local registry. Columns: containerkit, then runc, crun, podman (its
own root; its default bridge in a throwaway network namespace), docker (a dockerd
started for the run in a throwaway network namespace), skopeo+umoci and buildah; a peer cell
reads ``ms (containerkit/peer)``. A peer that is missing, or has nothing to compare in a row,
is a blank cell with a note saying why: never a failure.

Single figures are medians; the contenders of a row are sampled in turn (round-robin), so a
load that comes and goes on a shared machine weighs on each of them alike. The per-phase
breakdown of the in-process start comes after the table (``bench_start.py --breakdown-only``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import (
    IMAGE,
    containerkit_command,
    dump_json,
    ensure_image,
    interleaved_samples,
    median,
    plain_bundle,
)
from _peers import containerkitd, crun_times, throwaway_dockerd, throwaway_podman
from bench_fixture import _engine_cycle as _fixture_cycle
from bench_start import _batch, _engine_cycle, _runc_cycle, breakdown, print_breakdown

import containerkit as ck
from containerkit.images.busybox import write_busybox_rootfs

SLEEP = ["sleep", "3600"]
TRUE_NONE = ["run", "--rm", "--network", "none", "busybox", "true"]
PEERS = ["runc", "crun", "podman", "docker", "skopeo+umoci", "buildah"]

Cell = float | str  # milliseconds, or why there is no figure


def interleaved(contenders: dict[str, Callable[[], object]], runs: int, warmup: int = 2) -> dict[str, float]:
    """Median milliseconds of each contender, sampled in turn, the order rotating every round."""
    samples = interleaved_samples(contenders, runs, warmup)
    return {name: median(values) for name, values in samples.items()}


class Table:
    def __init__(self, defaults: dict[str, str]) -> None:
        self.rows: list[tuple[str, Cell, dict[str, Cell]]] = []
        self.notes: list[str] = []
        self.defaults = defaults  # a peer's blank cell where a row says nothing of it

    def add(self, label: str, ours: Cell, peers: dict[str, Cell]) -> None:
        self.rows.append((label, ours, peers))

    def _cell(self, value: Cell, ours: Cell | None = None) -> str:
        if isinstance(value, str):
            if value not in self.notes:
                self.notes.append(value)
            return f"[{self.notes.index(value) + 1}]"
        if isinstance(ours, float) and value > 0:
            return f"{value:.1f} ({ours / value:.2f}x)"
        return f"{value:.1f}"

    def print(self) -> None:
        header = ["", "containerkit", *PEERS]
        lines = [
            [label, self._cell(ours), *(self._cell(peers.get(p, self.defaults[p]), ours) for p in PEERS)]
            for label, ours, peers in self.rows
        ]
        widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
        print("\n## issue 15, one run: milliseconds (median); peer cells: ms (containerkit/peer)")
        for row in [header, *lines]:
            print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        for index, note in enumerate(self.notes, 1):
            print(f"[{index}] {note}")


def _shell(argv: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)


def _many_shell(argv: list[str], count: int, parallel: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: _shell(argv)(), range(count)))
    return (time.perf_counter() - started) * 1000


def first_against_tenth(root: Path, trials: int) -> float:
    """How much more the first container of a fresh Engine costs than its tenth (median, ms)."""
    extra = []
    for _ in range(trials):
        with ck.Engine(root=root) as engine:
            times = []
            for _ in range(10):
                started = time.perf_counter()
                _engine_cycle(engine)
                times.append((time.perf_counter() - started) * 1000)
        extra.append(times[0] - times[9])
    return median(extra)


def listing(engine: ck.Engine, count: int, runs: int, docker_sock: str | None) -> tuple[Cell, Cell]:
    """``containers.list()`` with ``count`` running: (in-process, docker-py's on dockerd)."""
    made = []
    try:
        for _ in range(count):
            made.append(engine.containers.run(IMAGE, SLEEP, network="none"))
        assert len(engine.containers.list()) >= count
        ours = interleaved({"engine": engine.containers.list}, runs)["engine"]
    finally:
        for container in made:
            container.remove(force=True)
    theirs: Cell = "dockerd could not start here"
    if docker_sock is not None:
        import docker

        client = docker.DockerClient(base_url=f"unix://{docker_sock}")
        ids = []
        try:
            for _ in range(count):
                ids.append(client.containers.run("busybox", SLEEP, network_mode="none", detach=True))
            theirs = interleaved({"docker": lambda: client.containers.list(sparse=True)}, runs)["docker"]
        finally:
            for container in ids:
                container.remove(force=True)
            client.close()
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--many", type=int, default=50, help="containers started 4 at a time (50)")
    parser.add_argument("--running", type=int, default=200, help="running containers to list (200)")
    parser.add_argument("--build-mb", type=int, default=10, help="build context size (10 MB)")
    parser.add_argument(
        "--pull-mb", type=int, default=100, help="the pulled 4-layer image, uncompressed (100)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="builds and pulls: runs per figure (3)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runs = args.runs
    na = "nothing to compare in this row"
    table = Table(
        {
            "runc": na,
            "crun": na,
            "podman": na,
            "docker": na,
            "skopeo+umoci": na,
            "buildah": na,
        }
    )
    cli = containerkit_command()  # the console script itself, not a version manager's shim
    with tempfile.TemporaryDirectory(prefix="ck-bench-all-") as tmp:
        work = Path(tmp)
        root = work / "root"
        tar = write_busybox_rootfs(work / "busybox.tar")
        # installed packages ship byte-code; an editable checkout may run without (see bench_cli)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(ck.__file__).parent)], check=True)
        bundle = plain_bundle(work, ["true"])
        with (
            ck.Engine(root=root) as engine,
            throwaway_dockerd(tar) as dockerd,
            throwaway_podman(tar) as podman_peer,
        ):
            ensure_image(engine, work)
            engine.images.tag(IMAGE, "busybox:latest")
            docker = None if isinstance(dockerd, str) else dockerd[1]
            docker_sock = None if isinstance(dockerd, str) else dockerd[0]
            docker_ns = None if isinstance(dockerd, str) else dockerd[2]
            no_docker: str = dockerd if isinstance(dockerd, str) else ""
            print(f"peers: dockerd {'in a throwaway namespace' if docker else no_docker}; runs={runs}")
            podman = None if isinstance(podman_peer, str) else podman_peer[0]
            # podman's default bridge only inside its throwaway namespace (one nsenter exec more)
            podman_ns = (
                [] if isinstance(podman_peer, str) else ["nsenter", f"--net=/run/netns/{podman_peer[1]}"]
            )
            no_podman: str = podman_peer if isinstance(podman_peer, str) else ""
            if podman is None:
                table.defaults["podman"] = no_podman
            failed: dict[str, str] = {}  # a peer whose run failed in a row: why (its cell's note)

            # -- start-to-exit of `true`, network none
            contenders: dict[str, Callable[[], object]] = {
                "containerkit": lambda: _engine_cycle(engine),
                "runc": lambda: _runc_cycle("runc", bundle, work / "runc-state"),
            }
            if docker:
                contenders["docker"] = _shell([*docker, *TRUE_NONE])
            if podman:
                contenders["podman"] = _tolerant("podman", [*podman, *TRUE_NONE], failed)
            figures = interleaved(contenders, runs)
            crun = crun_times(bundle, work / "crun-state", runs)
            peers: dict[str, Cell] = {
                "runc": figures["runc"],
                "crun": crun if isinstance(crun, str) else median(crun),
                "docker": figures.get("docker", no_docker),
                "podman": _peer_cell("podman", figures, failed, no_podman),
            }
            table.add(
                "start-to-exit `true`, network none (Engine / runtime run)", figures["containerkit"], peers
            )

            # -- the default bridge
            contenders = {"containerkit": lambda: _engine_cycle_bridge(engine)}
            if docker:
                contenders["docker"] = _shell([*docker, "run", "--rm", "busybox", "true"])
            if podman:
                bridged = [*podman_ns, *podman, "run", "--rm", "busybox", "true"]
                contenders["podman"] = _tolerant("podman", bridged, failed, "podman's default network")
            figures = interleaved(contenders, runs)
            table.add(
                "start-to-exit `true`, default bridge",
                figures["containerkit"],
                {
                    "docker": figures.get("docker", no_docker),
                    "podman": _peer_cell("podman", figures, failed, no_podman),
                },
            )

            # -- from a shell, and through a daemon
            with containerkitd(root, work) as ckd:
                contenders = {
                    "containerkit": _shell(
                        [
                            cli or "containerkit",
                            "--root",
                            str(root),
                            "run",
                            "--rm",
                            "--network",
                            "none",
                            IMAGE,
                            "true",
                        ]
                    ),
                    "docker->containerkitd": _shell(
                        [
                            "docker",
                            "-H",
                            f"unix://{ckd}",
                            "run",
                            "--rm",
                            "--network",
                            "none",
                            "busybox",
                            "true",
                        ]
                    ),
                }
                if docker:
                    contenders["docker"] = _shell([*docker, *TRUE_NONE])
                if podman:
                    contenders["podman"] = _tolerant("podman", [*podman, *TRUE_NONE], failed)
                figures = interleaved(contenders, runs)
                shell_peers: dict[str, Cell] = {
                    "docker": figures.get("docker", no_docker),
                    "podman": _peer_cell("podman", figures, failed, no_podman),
                }
                table.add(
                    "shell: `containerkit run --rm --network none IMG true`",
                    figures["containerkit"],
                    shell_peers,
                )
                table.add(
                    "shell: the docker CLI against containerkitd",
                    figures["docker->containerkitd"],
                    shell_peers,
                )
                table.notes.append(
                    f"target: `containerkit run` {figures['containerkit']:.1f} ms against the docker CLI on "
                    f"containerkitd {figures['docker->containerkitd']:.1f} ms "
                    f"({figures['containerkit'] / figures['docker->containerkitd']:.2f}x, want <= 1)"
                )
                exec_ours, exec_theirs = _exec_run(ckd, docker_sock, runs)
                table.add(
                    'docker-py exec_run("true") through the daemon',
                    exec_ours,
                    {"docker": exec_theirs if docker else no_docker},
                )

            # -- the first container of a fresh Engine
            extra = first_against_tenth(root, 3)
            table.add("first container of a fresh Engine minus its tenth", extra, {"podman": na})

            # -- many containers
            small = max(4, args.many // 4)
            batch: dict[str, tuple[float, float]] = {}
            batch["containerkit"] = (
                _batch(lambda: _engine_cycle(engine), small, 4),
                _batch(lambda: _engine_cycle(engine), args.many, 4),
            )
            batch["runc"] = (
                _batch(lambda: _runc_cycle("runc", bundle, work / "runc-state"), small, 4),
                _batch(lambda: _runc_cycle("runc", bundle, work / "runc-state"), args.many, 4),
            )
            crun_small = crun_times(bundle, work / "crun-state", small, 4)
            crun_many = crun_times(bundle, work / "crun-state", args.many, 4)
            if docker:
                argv = [*docker, *TRUE_NONE]
                batch["docker"] = (_many_shell(argv, small, 4), _many_shell(argv, args.many, 4))
            podman_many: Cell = no_podman
            if podman:
                argv = [*podman, *TRUE_NONE]
                try:
                    batch["podman"] = (_many_shell(argv, small, 4), _many_shell(argv, args.many, 4))
                    podman_many = batch["podman"][1]
                except subprocess.CalledProcessError as error:
                    podman_many = f"podman failed: {_last_line(error.stderr)}"
            many_peers: dict[str, Cell] = {
                "runc": batch["runc"][1],
                "crun": crun_many if isinstance(crun_many, str) else crun_many[0],
                "docker": batch["docker"][1] if docker else no_docker,
                "podman": podman_many,
            }
            table.add(f"{args.many} containers 4 at a time (total)", batch["containerkit"][1], many_peers)
            scaling = {name: (pair[1] / args.many) / (pair[0] / small) for name, pair in batch.items()}
            if not isinstance(crun_small, str) and not isinstance(crun_many, str):
                scaling["crun"] = (crun_many[0] / args.many) / (crun_small[0] / small)
            table.notes.append(
                f"per-container cost at {args.many} over at {small} (1.0 = linear): "
                + ", ".join(f"{name} {value:.2f}" for name, value in scaling.items())
            )

            # -- listing with many running
            ten = listing(engine, 10, runs, docker_sock)
            full = listing(engine, args.running, runs, docker_sock)
            podman_ten: Cell = no_podman
            podman_full: Cell = no_podman
            if podman:
                podman_ten = _podman_listing(podman, 10, runs)
                podman_full = _podman_listing(podman, args.running, runs)
            table.add(
                f"containers.list() with {args.running} running",
                full[0],
                {"docker": full[1], "podman": podman_full},
            )
            growth = [f"containerkit {_ratio(full[0], ten[0])}", f"docker {_ratio(full[1], ten[1])}"]
            if podman:
                growth.append(f"podman {_ratio(podman_full, podman_ten)} (`podman ps`, a process each)")
            table.notes.append(
                f"list at {args.running} running over at 10 ({args.running // 10}x = linear): "
                + ", ".join(growth)
            )

            # -- a pytest fixture cycle (testcontainers on dockerd runs in dockerd's namespace,
            # where its published ports are)
            fixture_runs = max(5, runs // 2)
            ours_fixture = interleaved({"ck": lambda: _fixture_cycle(engine)}, fixture_runs, warmup=1)["ck"]
            theirs_fixture: Cell = no_docker
            if docker_ns is not None and docker_sock is not None:
                theirs_fixture = _fixture_in_namespace(docker_ns, docker_sock, fixture_runs)
            table.add(
                "fixture cycle: httpd, published port, wait, GET, remove",
                ours_fixture,
                {"docker": theirs_fixture},
            )
            # -- builds and pulls (bench_build.py's and bench_pull.py's own functions)
            _builds(table, work, tar, args.build_mb, args.repeat, docker)
        _pulls(table, work, args.pull_mb, args.repeat)
        _disk(table, work, args.pull_mb)
        table.print()
        rows = breakdown(root, work, runs)
        print_breakdown(rows, runs)
        with ck.Engine(root=root):  # takes the default bridge down again
            pass
        dump_json(
            args.json,
            {
                "rows": [{"row": label, "containerkit": ours, **peers} for label, ours, peers in table.rows],
                "notes": table.notes,
                "breakdown_ms": {mark: delta for mark, _what, delta, _at in rows},
            },
        )


def _builds(
    table: Table, work: Path, busybox: Path, megabytes: int, repeat: int, docker: list[str] | None
) -> None:
    """bench_build.py's 6-step build, cold / cached / one file changed, beside buildah and dockerd."""
    import bench_build

    base = work / "build"
    base.mkdir()
    context = bench_build._context(base, megabytes)
    ours = bench_build.bench_containerkit(base, context, busybox, repeat)
    with ck.Engine(root=base / "ck-root") as engine:
        archive = base / "busybox-archive.tar"
        engine.images.save("busybox:latest", archive)
    theirs = bench_build.bench_buildah(base, context, archive, repeat)
    dockerd: dict[str, float] | str = "dockerd could not start here"
    if docker is not None:
        dockerd = bench_build.bench_docker_cli(docker, context, repeat)
    for key, what in (("cold", "cold"), ("cached", "fully cached"), ("changed", "one file changed")):
        table.add(
            f"build, 6 steps, {megabytes} MB context: {what}",
            ours[key],
            {
                "buildah": theirs if isinstance(theirs, str) else theirs[key],
                "docker": dockerd if isinstance(dockerd, str) else dockerd[key],
            },
        )


def _pulls(table: Table, work: Path, megabytes: int, repeat: int) -> None:
    """bench_pull.py's pulls from a local docker-registry into a fresh store, unpacked, beside
    skopeo copy + umoci unpack (dockerd's pull: bench_pull.py, with a registry in its namespace)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench_pull imports tests/
    import bench_pull

    missing = "" if shutil.which("skopeo") and shutil.which("umoci") else "skopeo or umoci is not installed"
    base = work / "pull"
    base.mkdir()
    layouts = {
        "busybox": bench_pull._busybox_layout(base),
        f"4 layers, {megabytes} MB": bench_pull._big_layout(base, megabytes, 4),
    }
    scratch = base / "scratch"

    def fresh() -> None:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()

    with bench_pull.start_registry(base / "registry") as registry:
        for index, (label, layout) in enumerate(layouts.items()):
            ref = f"{registry.host}/bench/image{index}:1"
            seed = ("copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{ref}")
            bench_pull._skopeo(*seed)

            def ck_pull(_n: int, ref: str = ref) -> None:
                with ck.Engine(root=scratch / "engine", forkserver=False) as engine:
                    engine.images.pull(ref)

            def skopeo_umoci(_n: int, ref: str = ref) -> None:
                oci = f"oci:{scratch / 'oci'}:x"
                bench_pull._skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", oci)
                subprocess.run(
                    ["umoci", "unpack", "--image", f"{scratch / 'oci'}:x", str(scratch / "bundle")],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )

            ours = bench_pull._median(ck_pull, repeat, fresh) * 1000
            theirs: Cell = missing or bench_pull._median(skopeo_umoci, repeat, fresh) * 1000
            table.add(
                f"pull from a local registry, unpacked: {label}",
                ours,
                {
                    "skopeo+umoci": theirs,
                    "docker": "dockerd's pull: bench_pull.py (a registry in its namespace)",
                },
            )
        fresh()


def _disk(table: Table, work: Path, megabytes: int) -> None:
    """bench_disk.py: the engine root after a load (busybox) and a pull (the 4-layer image) over
    the image's unpacked size (its layers extracted by tar -x), in percent; target <= 115."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench_disk imports tests/
    import bench_disk

    base = work / "disk"
    base.mkdir()
    rows = {
        "busybox loaded": bench_disk.busybox_loaded(base / "busybox"),
        f"4 layers, {megabytes} MB, pulled": bench_disk.pulled(base / "pulled", megabytes, 4, timings=False),
    }
    for label, figures in rows.items():
        table.add(
            f"disk: engine root / unpacked size, % (<= 115): {label}", figures["root/unpacked"] * 100, {}
        )


def _tolerant(
    name: str, argv: list[str], failed: dict[str, str], what: str | None = None
) -> Callable[[], object]:
    """Like :func:`_shell`, but a failed run notes why in ``failed[name]`` (the peer's cell then
    says so) instead of failing the whole run; after a failure it runs no more."""

    def run() -> None:
        if name in failed:
            return
        done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            failed[name] = f"{what or name} failed here: {_last_line(done.stderr)}"

    return run


def _peer_cell(name: str, figures: dict[str, float], failed: dict[str, str], missing: str) -> Cell:
    """A peer's figure in a row, or why there is none (and forget the failure for the next row)."""
    if name in failed:
        return failed.pop(name)
    return figures.get(name, missing)


def _last_line(output: bytes | str | None) -> str:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output or ""
    return (text.strip().splitlines() or ["?"])[-1][-120:]


def _podman_listing(podman: list[str], count: int, runs: int) -> Cell:
    """``podman ps`` with ``count`` of its containers running (started 4 at a time)."""
    start = [*podman, "run", "-d", "--network", "none", "busybox", *SLEEP]
    ids: list[str] = []

    def one(_: int) -> None:
        done = subprocess.run(start, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"podman run -d failed: {_last_line(done.stderr)}")
        ids.append(done.stdout.strip())

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(count)))
        ps = [*podman, "ps", "-q"]
        listed = subprocess.run(ps, capture_output=True, text=True, check=True).stdout.split()
        if len(listed) < count:
            return f"podman ps listed {len(listed)} of {count} running"
        return interleaved({"podman": _shell(ps)}, runs)["podman"]
    except (RuntimeError, subprocess.CalledProcessError) as error:
        return str(error)[:140]
    finally:
        for chunk in range(0, len(ids), 50):
            subprocess.run([*podman, "rm", "-f", "-t", "0", *ids[chunk : chunk + 50]], capture_output=True)


def _ratio(big: Cell, small: Cell) -> str:
    if isinstance(big, float) and isinstance(small, float) and small > 0:
        return f"{big / small:.2f}x"
    return "n/a"


def _engine_cycle_bridge(engine: ck.Engine) -> None:
    container = engine.containers.run(IMAGE, ["true"])
    code = container.wait(timeout=30)
    container.remove()
    if code != 0:
        raise RuntimeError(f"container exited {code}")


_FIXTURE_LOOP = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_fixture import _testcontainers_cycle
host, runs = sys.argv[2], int(sys.argv[3])
_testcontainers_cycle(host, "busybox:latest")
out = []
for _ in range(runs):
    t = time.perf_counter(); _testcontainers_cycle(host, "busybox:latest")
    out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""


def _fixture_in_namespace(ns: str, sock: str, runs: int) -> Cell:
    """testcontainers-python's cycle on dockerd, run inside dockerd's network namespace."""
    done = subprocess.run(
        [
            *("nsenter", f"--net=/run/netns/{ns}", sys.executable, "-c", _FIXTURE_LOOP),
            *(str(Path(__file__).parent), f"unix://{sock}", str(runs)),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return "testcontainers on dockerd failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:80]
    return float(median(json.loads(done.stdout)))


def _exec_run(ckd: str, docker_sock: str | None, runs: int) -> tuple[Cell, Cell]:
    """docker-py ``exec_run("true")`` on a running container, containerkitd and dockerd in turn."""
    import docker

    clients = {"containerkit": docker.DockerClient(base_url=f"unix://{ckd}")}
    if docker_sock is not None:
        clients["docker"] = docker.DockerClient(base_url=f"unix://{docker_sock}")
    targets = {}
    try:
        for name, client in clients.items():
            targets[name] = client.containers.run("busybox", SLEEP, network_mode="none", detach=True)
        figures = interleaved({name: (lambda c=c: c.exec_run("true")) for name, c in targets.items()}, runs)
    finally:
        for container in targets.values():
            container.remove(force=True)
        for client in clients.values():
            client.close()
    return figures["containerkit"], figures.get("docker", "dockerd could not start here")


if __name__ == "__main__":
    main()
