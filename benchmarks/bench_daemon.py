"""containerkitd and dockerd side by side, through the same clients, in one run.

    python3 benchmarks/bench_daemon.py [--runs 20] [--breakdown-only]

Starts containerkitd on a temp root and socket and a dockerd in a throwaway network namespace
(``_peers.throwaway_dockerd``: its own data root, busybox imported from the same static
binary), then times, the two daemons sampled in turn: the docker CLI's ``docker run --rm``
(network none and the default bridge), docker-py's ``exec_run("true")``, ``exec_run("echo
x")`` (output checked) and ``containers.run("true")``, ``/_ping`` and ``GET /containers/json``
round trips (keep-alive) and 200 concurrent API requests; then each daemon's idle resident
memory. Each row prints both medians and containerkitd/dockerd (below 1 is faster).

Then where one ``docker run --rm --network none IMG true`` goes, request by request: the docker
CLI's requests replayed on raw sockets in its order (``HEAD /_ping``, create, attach (101),
``wait?condition=removed`` (its head), start, then the end of the attach stream and the wait's
answer, which comes once the container is removed), each phase's median for both daemons. What
the CLI itself costs on top (a Go process, its config) is the first row minus this total.

``daemon_rows(ckd_socket, docker_socket, runs)`` is the side-by-side part for other scripts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _peers import containerkitd, throwaway_dockerd

import containerkit as ck
from containerkit.images.busybox import write_busybox_rootfs

IMAGE = "busybox:latest"
SLEEP = ["sleep", "3600"]

Row = tuple[str, float, "float | str"]  # what, containerkitd, dockerd (or why not)


class _Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self._path)


def in_turn(contenders: dict[str, Callable[[], object]], runs: int, warmup: int = 2) -> dict[str, float]:
    """Median milliseconds of each contender, sampled round-robin: a load that comes and goes
    on a shared machine weighs on all of them alike."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def _rss_kib(pid: int, children: bool = True) -> int:
    pids = [pid]
    if children:
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _cli_run(sock: str, *args: str) -> Callable[[], None]:
    cli = shutil.which("docker") or "docker"
    argv = [cli, "-H", f"unix://{sock}", "run", "--rm", *args, IMAGE, "true"]
    return lambda: subprocess.run(argv, check=True, capture_output=True)


def _concurrent(sock: str, count: int = 200) -> float:
    def one() -> None:
        c = _Conn(sock)
        c.request("GET", "/containers/json?all=1")
        assert c.getresponse().status == 200
        c.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - start) * 1000


# docker CLI 28's create body for ``run --rm --network none IMG true`` (the fields it always sends)
_CREATE = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": True,
    "AttachStderr": True,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": ["true"],
    "Image": IMAGE,
    "Volumes": {},
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": {},
    "HostConfig": {
        "Binds": None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "none",
        "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": True,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": None,
        "CapDrop": None,
        "CgroupnsMode": "",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": None,
        "IpcMode": "",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": False,
        "PublishAllPorts": False,
        "ReadonlyRootfs": False,
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 0,
    },
    "NetworkingConfig": {"EndpointsConfig": {"none": {}}},
}

PHASES = [
    ("ping", "HEAD /_ping"),
    ("create", "POST /containers/create (201)"),
    ("attach", "POST .../attach: 101 UPGRADED"),
    ("wait", "POST .../wait?condition=removed: its head"),
    ("start", "POST .../start (204)"),
    ("output_end", "the attach stream ends (the exit)"),
    ("removed", "the wait's answer (the container removed)"),
]


def _raw(sock: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX)
    conn.settimeout(60)
    conn.connect(sock)
    return conn


def _send(conn: socket.socket, method: str, path: str, body: bytes = b"", extra: str = "") -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\n"
    head += "User-Agent: Docker-Client/28.2.2 (linux)\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    conn.sendall(f"{head}{extra}\r\n".encode() + body)


def _head(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and what came after the head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed before a response head: {data[:80]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v.strip() for k, v in fields.items()}, rest


def _answer(conn: socket.socket, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    _send(conn, method, path, body)
    status, headers, rest = _head(conn)
    if method == "HEAD":
        return status, headers.get("api-version", "").encode()
    if status in (204, 304):
        return status, b""
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += conn.recv(65536)
    return status, rest[:length]


def cli_replay(sock: str) -> dict[str, float]:
    """One ``docker run --rm --network none IMG true`` as the docker CLI sends it: the end of
    each phase of :data:`PHASES`, in ms since the previous one."""
    marks = [time.perf_counter()]
    api = _raw(sock)
    announced = _answer(api, "HEAD", "/_ping")[1].decode()
    # the CLI speaks the daemon's version when it is older than its own (1.50)
    v = "/v" + min(announced or "1.50", "1.50", key=lambda x: tuple(int(n) for n in x.split(".")))
    marks.append(time.perf_counter())
    status, body = _answer(api, "POST", f"{v}/containers/create", json.dumps(_CREATE).encode())
    if status != 201:
        raise RuntimeError(f"create answered {status}: {body[:200]!r}")
    cid = json.loads(body)["Id"]
    marks.append(time.perf_counter())
    attach = _raw(sock)
    _send(
        attach,
        "POST",
        f"{v}/containers/{cid}/attach?stderr=1&stdout=1&stream=1",
        extra="Connection: Upgrade\r\nUpgrade: tcp\r\n",
    )
    if _head(attach)[0] != 101:
        raise RuntimeError("attach was not upgraded")
    attach.shutdown(socket.SHUT_WR)  # no stdin, as the CLI
    marks.append(time.perf_counter())
    waiter = _raw(sock)
    _send(waiter, "POST", f"{v}/containers/{cid}/wait?condition=removed")
    _, _, waited = _head(waiter)
    marks.append(time.perf_counter())
    starter = _raw(sock)  # the CLI's keep-alive connection is busy with the wait
    status, body = _answer(starter, "POST", f"{v}/containers/{cid}/start")
    if status != 204:
        raise RuntimeError(f"start answered {status}: {body[:200]!r}")
    marks.append(time.perf_counter())
    while attach.recv(65536):
        pass
    marks.append(time.perf_counter())
    while b"}" not in waited.partition(b"StatusCode")[2]:  # the JSON object, whatever framing follows
        chunk = waiter.recv(65536)
        if not chunk:
            break
        waited += chunk
    marks.append(time.perf_counter())
    if b'"StatusCode":0' not in waited.replace(b" ", b""):
        raise RuntimeError(f"wait answered {waited[:200]!r}")
    for conn in (api, attach, waiter, starter):
        conn.close()
    return {name: (marks[i + 1] - marks[i]) * 1000 for i, (name, _what) in enumerate(PHASES)}


def breakdown(socks: dict[str, str], runs: int) -> dict[str, dict[str, float]]:
    """Median of each phase of :func:`cli_replay` per daemon, the daemons sampled in turn."""
    for sock in socks.values():
        cli_replay(sock)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in socks}
    for _ in range(runs):
        for name, sock in socks.items():
            samples[name].append(cli_replay(sock))
    result = {}
    for name, runs_of in samples.items():
        phases = {p: statistics.median(r[p] for r in runs_of) for p, _what in PHASES}
        phases["total"] = statistics.median(sum(r.values()) for r in runs_of)
        result[name] = phases
    return result


def print_breakdown(figures: dict[str, dict[str, float]]) -> None:
    names = list(figures)
    print(f"\ndocker run --rm, request by request (median ms){''.join(f'{n:>14s}' for n in names)}")
    for phase, what in [*PHASES, ("total", "total (the CLI's own cost comes on top)")]:
        print(f"  {what:45s}{''.join(f'{figures[n][phase]:14.1f}' for n in names)}")


def daemon_rows(ckd: str, dockerd: str | None, runs: int, why_not: str = "") -> list[Row]:
    """The side-by-side rows: containerkitd at ``ckd``, dockerd at ``dockerd`` (None: ``why_not``)."""
    import docker

    socks = {"ckd": ckd} | ({"dockerd": dockerd} if dockerd else {})
    clients = {name: docker.DockerClient(base_url=f"unix://{s}") for name, s in socks.items()}
    rows: list[Row] = []

    def row(what: str, make: Callable[[str, Any], Callable[[], object]], n: int = runs) -> None:
        figures = in_turn({name: make(name, clients[name]) for name in socks}, n)
        rows.append((what, figures["ckd"], figures.get("dockerd", why_not)))

    targets: dict[str, Any] = {}
    try:
        row(
            "docker run --rm --network none IMG true (CLI)",
            lambda n, _c: _cli_run(socks[n], "--network", "none"),
        )
        row("docker run --rm IMG true (CLI, default bridge)", lambda n, _c: _cli_run(socks[n]))
        for name, client in clients.items():
            targets[name] = client.containers.run(IMAGE, SLEEP, network_mode="none", detach=True)

        def echo(target: Any) -> Callable[[], None]:
            def call() -> None:
                result = target.exec_run("echo x")
                if (result.exit_code, result.output) != (0, b"x\n"):
                    raise RuntimeError(f"exec_run('echo x') answered {result!r}")

            return call

        row('docker-py exec_run("true")', lambda n, _c: lambda: targets[n].exec_run("true"))
        row('docker-py exec_run("echo x"), output checked', lambda n, _c: echo(targets[n]))
        row(
            'docker-py containers.run("true", remove=True)',
            lambda _n, c: lambda: c.containers.run(IMAGE, ["true"], network_mode="none", remove=True),
        )
        conns = {name: _Conn(s) for name, s in socks.items()}

        def get(name: str, path: str) -> Callable[[], None]:
            def call() -> None:
                conns[name].request("GET", path)
                conns[name].getresponse().read()

            return call

        row("/_ping round trip (keep-alive)", lambda n, _c: get(n, "/_ping"), 200)
        row(
            "GET /containers/json round trip (keep-alive)",
            lambda n, _c: get(n, "/containers/json?all=1"),
            200,
        )
        concurrent = {name: _concurrent(s) for name, s in socks.items()}
        rows.append(
            (
                "200 concurrent GET /containers/json (total)",
                concurrent["ckd"],
                concurrent.get("dockerd", why_not),
            )
        )
    finally:
        for target in targets.values():
            target.remove(force=True)
        for client in clients.values():
            client.close()
    return rows


def print_rows(rows: list[Row]) -> None:
    print(f"\n{'':52s} {'containerkitd':>14s} {'dockerd':>10s}   ckd/dockerd")
    for what, ours, theirs in rows:
        if isinstance(theirs, str):
            print(f"{what:52s} {ours:11.1f} ms {'n/a':>10s}   {theirs}")
        else:
            speed = f"({theirs / ours:.1f}x as fast)"
            print(f"{what:52s} {ours:11.1f} ms {theirs:7.1f} ms   {ours / theirs:5.2f}x {speed}")


def _daemon_pid(sock: str) -> int | None:
    """The pid listening on ``sock`` (from /proc/net/unix inodes and /proc/*/fd)."""
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[-1] == sock:
            inodes.add(f"socket:[{fields[6]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if fd.readlink().name in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def _pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--breakdown-only", action="store_true", help="only the request-by-request breakdown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ckd-") as tmp:
        work = Path(tmp)
        root = work / "root"
        tar = write_busybox_rootfs(work / "rootfs.tar")
        with ck.Engine(root=root) as engine:
            engine.images.import_rootfs(tar, IMAGE, config={"Cmd": ["sh"]})
        with containerkitd(root, work) as ckd, throwaway_dockerd(tar) as dockerd:
            docker_sock = None if isinstance(dockerd, str) else dockerd[0]
            why_not = dockerd if isinstance(dockerd, str) else ""
            socks = {"containerkitd": ckd} | ({"dockerd": docker_sock} if docker_sock else {})
            if args.breakdown_only:
                print_breakdown(breakdown(socks, args.runs))
                return
            time.sleep(1)  # both idle before the memory figure
            memory: list[tuple[str, int | None]] = [
                ("containerkitd + its fork server", _daemon_pid(ckd)),
                (
                    "dockerd + containerd",
                    _pidfile(Path(docker_sock).parent / "dockerd.pid") if docker_sock else None,
                ),
            ]
            idle = [(what, _rss_kib(pid) / 1024 if pid else None) for what, pid in memory]
            rows = daemon_rows(ckd, docker_sock, args.runs, why_not)
            phases = breakdown(socks, args.runs)
        with ck.Engine(root=root):  # takes the default bridge down again
            pass
    print_rows(rows)
    print_breakdown(phases)
    print("\nidle resident memory at start (MiB):")
    for what, mib in idle:
        print(f"  {what:40s} {'n/a' if mib is None else f'{mib:8.1f}'}")


if __name__ == "__main__":
    main()
