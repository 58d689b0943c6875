"""Container verbs: create, start, ps, logs, exec, stop, kill, restart, pause, unpause, rm,
update, rename, wait, top, port, stats, cp (``run`` is :mod:`containerkit.cli.run`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from containerkit.cli._backend import engine, engine_container
from containerkit.cli._errors import USAGE_ERROR, CliError, print_error
from containerkit.cli._runopts import container_options
from containerkit.cli.run import PASS_THROUGH, RUN_SETTINGS, check_tty, create_container, start_container
from containerkit.cli.run import run as run  # the verb lives in cli.run; its old address still works

if TYPE_CHECKING:
    from containerkit.api import Backend, ContainerHandle, ExecHandle
    from containerkit.spec import Stats


@click.command(context_settings=RUN_SETTINGS)
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def create(image: str, command: tuple[str, ...], **opts: Any) -> None:
    """Create a new container."""
    click.echo(create_container(image, command, opts).id)


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach the container's STDIN.")
@click.argument("containers", nargs=-1, required=True)
def start(containers: tuple[str, ...], attach: bool, interactive: bool) -> int:
    """Start one or more stopped containers."""
    if attach or interactive:
        if len(containers) > 1:
            raise CliError("you cannot start and attach multiple containers at once")
        from containerkit.cli._attach import attach_container, close_output, open_output

        container = engine().containers.get(containers[0])
        spec = container.spec
        if interactive and spec.tty:
            check_tty(True, True)
        stdin = interactive and spec.stdin_open
        output = open_output(container, stdin=stdin)
        try:
            start_container(container, remove_on_failure=False)
        except BaseException:
            close_output(output)
            raise
        return attach_container(container, stdin=stdin, tty=spec.tty, output=output)
    return _each(containers, lambda c: start_container(c, remove_on_failure=False))


def _each(names: Iterable[str], action: Callable[[ContainerHandle], Any], *, echo: bool = True) -> int:
    """Apply ``action`` to each named container; report failures and go on (docker's way)."""
    from containerkit.errors import ContainerkitError

    failed = 0
    for name in names:
        try:
            action(engine().containers.get(name))
        except (ContainerkitError, CliError) as exc:
            print_error(str(exc))
            failed = 1
            continue
        if echo:
            click.echo(name)
    return failed


# -- listing and logs -----------------------------------------------------------------------


def parse_filters(values: Iterable[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"bad format of filter {item!r} (expected name=value)", USAGE_ERROR)
        filters.setdefault(key, []).append(value)
    return filters


_PS_HEADERS = ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
_PS_KEYS = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Filter output.")
@click.option("--format", "format_", help="'table', 'json' or a template such as '{{.Names}}'.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option(
    "-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)."
)
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
def ps(
    all_: bool,
    quiet: bool,
    filters: tuple[str, ...],
    format_: str | None,
    no_trunc: bool,
    last: int,
    latest: bool,
    size: bool,
) -> None:
    """List containers."""
    from containerkit.cli import _output as out

    if latest:
        last = 1
    eng = engine()
    found = eng.containers.list(all=all_ or last >= 0, filters=parse_filters(filters))
    if last >= 0:
        found = found[:last]
    if quiet:
        for container in found:
            click.echo(container.id if no_trunc else container.short_id)
        return
    if size:
        from containerkit.cli._describe import container_size

        listed = [(row, c) for row, c in ((_row(eng, c, no_trunc), c) for c in found) if row is not None]
        for row, container in listed:
            row["Size"] = container_size(eng, container)
        out.print_rows(format_, (*_PS_HEADERS, "SIZE"), (*_PS_KEYS, "Size"), [row for row, _ in listed])
        return
    rows = [out_row for out_row in (_row(eng, c, no_trunc) for c in found) if out_row is not None]
    out.print_rows(format_, _PS_HEADERS, _PS_KEYS, rows)


def _row(eng: Backend, container: ContainerHandle, no_trunc: bool) -> dict[str, str] | None:
    from containerkit.cli._describe import container_row
    from containerkit.errors import NotFound

    try:
        return container_row(eng, container, trunc=not no_trunc)
    except NotFound:  # removed while we listed
        return None


def _tail(value: str) -> int | None:
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise CliError(f"invalid --tail value {value!r} (a number or 'all')", USAGE_ERROR) from None


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container")
def logs(container: str, follow: bool, tail: str, timestamps: bool) -> None:
    """Fetch the logs of a container."""
    from containerkit.cli._attach import follow_output, write_output

    target = engine().containers.get(container)
    if engine_container(target) is not None:  # a remote daemon answers this itself
        from containerkit.engine.frontend import check_log_driver

        check_log_driver(target.spec.log_driver)
    for stream, chunk in follow_output(target, tail=_tail(tail), timestamps=timestamps, follow=follow):
        write_output(stream, chunk)


# -- exec -----------------------------------------------------------------------------------


@click.command("exec", context_settings=PASS_THROUGH)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", multiple=True, metavar="NAME=VALUE", help="Set environment variables.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run the command in the background.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(
    container: str,
    command: tuple[str, ...],
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    user: str | None,
    workdir: str | None,
    privileged: bool,
    detach: bool,
) -> int:
    """Execute a command in a running container."""
    from containerkit.cli._attach import attach_exec

    target = engine().containers.get(container)
    environment = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in env]
    if detach:  # docker prints nothing; the command's output is not kept
        background: ExecHandle = target.exec(
            list(command),
            env=environment,
            user=user,
            workdir=workdir,
            tty=tty,
            privileged=privileged,
            detach=True,
        )
        try:
            if background.error is not None:
                raise CliError(str(background.error), background.wait())
        finally:
            background.close()
        return 0
    check_tty(interactive, tty)
    process: ExecHandle = target.exec(
        list(command),
        env=environment,
        user=user,
        workdir=workdir,
        tty=tty,
        stdin=interactive,
        privileged=privileged,
        stream=True,
    )
    try:
        if process.error is not None:
            raise CliError(str(process.error), process.wait())
        return attach_exec(process, stdin=interactive, tty=tty)
    finally:
        process.close()


# -- lifecycle ------------------------------------------------------------------------------


def _stop(container: ContainerHandle, timeout: int | None) -> None:
    from containerkit.errors import NotModified

    with contextlib.suppress(NotModified):
        container.stop(timeout)


@click.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
def stop(containers: tuple[str, ...], timeout: int | None) -> int:
    """Stop one or more running containers."""
    return _each(containers, lambda c: _stop(c, timeout))


@click.command()
@click.option("-s", "--signal", "signal_", default="KILL", help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
def kill(containers: tuple[str, ...], signal_: str) -> int:
    """Kill one or more running containers."""
    from containerkit.errors import ContainerkitError
    from containerkit.spec import parse_signal

    try:
        number = parse_signal(signal_)
    except ContainerkitError as exc:
        raise CliError(str(exc), USAGE_ERROR) from None
    return _each(containers, lambda c: c.kill(number))


@click.command()
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
def restart(containers: tuple[str, ...], timeout: int | None) -> int:
    """Restart one or more containers."""
    return _each(containers, lambda c: c.restart(timeout))


@click.command()
@click.argument("containers", nargs=-1, required=True)
def pause(containers: tuple[str, ...]) -> int:
    """Pause all processes within one or more containers."""
    return _each(containers, lambda c: c.pause())


@click.command()
@click.argument("containers", nargs=-1, required=True)
def unpause(containers: tuple[str, ...]) -> int:
    """Unpause all processes within one or more containers."""
    return _each(containers, lambda c: c.unpause())


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.argument("containers", nargs=-1, required=True)
def rm(containers: tuple[str, ...], force: bool, volumes: bool) -> int:
    """Remove one or more containers."""
    return _each(containers, lambda c: c.remove(force=force, volumes=volumes))


@click.command()
@click.option("-m", "--memory", help="Memory limit (e.g. 64m).")
@click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 for the default.")
@click.option("--cpus", type=float, help="Number of CPUs.")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight).")
@click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited).")
@click.option(
    "--restart", metavar="POLICY", help="Restart policy: no, always, unless-stopped, on-failure[:N]."
)
@click.argument("containers", nargs=-1, required=True)
def update(
    containers: tuple[str, ...],
    memory: str | None,
    memory_swap: str | None,
    cpus: float | None,
    cpu_shares: int | None,
    pids_limit: int | None,
    restart: str | None,
) -> int:
    """Update configuration of one or more containers (limits apply at once to a running one)."""
    from containerkit.errors import InvalidArgument
    from containerkit.spec import RestartPolicy

    if all(v is None for v in (memory, memory_swap, cpus, cpu_shares, pids_limit, restart)):
        raise CliError("you must provide one or more flags when using this command", USAGE_ERROR)
    try:
        policy = RestartPolicy.parse(restart) if restart is not None else None
    except InvalidArgument as exc:
        raise CliError(exc.message, USAGE_ERROR) from None
    changes: dict[str, Any] = {
        "memory": memory,
        "memory_swap": memory_swap,
        "cpus": cpus,
        "cpu_shares": cpu_shares,
        "pids": pids_limit,
        "restart_policy": policy,
    }
    return _each(containers, lambda c: c.update(**changes))


@click.command()
@click.argument("container")
@click.argument("new_name")
def rename(container: str, new_name: str) -> None:
    """Rename a container."""
    engine().containers.get(container).rename(new_name)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def wait(containers: tuple[str, ...]) -> int:
    """Block until one or more containers stop, then print their exit codes."""
    return _each(containers, lambda c: click.echo(c.wait()), echo=False)


# -- observation ----------------------------------------------------------------------------


@click.command()
@click.argument("container")
@click.argument("ps_args", nargs=-1)
def top(container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    from containerkit.cli import _output as out

    result = engine().containers.get(container).top()
    click.echo(out.table(result["Titles"], result["Processes"]))


@click.command()
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
def port(container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    target = engine().containers.get(container)
    published = target.ports
    if private_port is None:
        for key, bindings in sorted(published.items(), key=lambda item: _port_order(item[0])):
            for host_ip, host_port in bindings:
                click.echo(f"{key} -> {_host_address(host_ip, host_port)}")
        return
    number, _, proto = private_port.partition("/")
    if not number.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
        raise CliError(f"Invalid port {private_port!r}: expected PORT or PORT/PROTO", USAGE_ERROR)
    key = f"{int(number)}/{proto or 'tcp'}"
    if not published.get(key):
        raise CliError(f"No public port '{key}' published for {target.name}", 1)
    for host_ip, host_port in published[key]:
        click.echo(_host_address(host_ip, host_port))


def _port_order(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    return int(number), proto


def _host_address(host_ip: str, host_port: int) -> str:
    return f"[{host_ip}]:{host_port}" if ":" in host_ip else f"{host_ip}:{host_port}"


_STATS_HEADERS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS")
_STATS_KEYS = ("ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "PIDs")


def _sample(containers: Sequence[ContainerHandle]) -> dict[str, tuple[float, Stats]]:
    from containerkit.errors import ContainerkitError

    samples = {}
    for container in containers:
        with contextlib.suppress(ContainerkitError):
            samples[container.id] = (time.monotonic(), container.stats())
    return samples


def _stats_rows(
    containers: Sequence[ContainerHandle],
    before: dict[str, tuple[float, Stats]],
    after: dict[str, tuple[float, Stats]],
) -> list[dict[str, str]]:
    from containerkit.cli import _output as out
    from containerkit.cli._describe import host_memory

    rows = []
    for container in containers:
        if container.id not in after:
            continue
        t1, now = after[container.id]
        cpu = 0.0
        if container.id in before:
            t0, then = before[container.id]
            if t1 > t0:
                cpu = (now.cpu_usage_ns - then.cpu_usage_ns) / ((t1 - t0) * 1e9) * 100
        limit = now.memory_limit or host_memory()
        rows.append(
            {
                "ID": container.short_id,
                "Name": container.name,
                "CPUPerc": f"{cpu:.2f}%",
                "MemUsage": f"{out.iec_size(now.memory_usage)} / {out.iec_size(limit)}",
                "MemPerc": f"{(now.memory_usage / limit * 100) if limit else 0:.2f}%",
                "PIDs": str(now.pids),
            }
        )
    return rows


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--format", "format_", help="'table', 'json' or a template.")
@click.argument("containers", nargs=-1)
def stats(containers: tuple[str, ...], all_: bool, no_stream: bool, format_: str | None) -> None:
    """Display a live stream of container resource usage statistics."""
    from containerkit.cli import _output as out

    eng = engine()
    targets = [eng.containers.get(n) for n in containers] if containers else eng.containers.list(all=all_)
    clear = sys.stdout.isatty() and not no_stream
    before = _sample(targets)
    while True:
        time.sleep(0.5 if no_stream else 1.0)
        after = _sample(targets)
        if clear:
            sys.stdout.write("\x1b[2J\x1b[H")
        out.print_rows(format_, _STATS_HEADERS, _STATS_KEYS, _stats_rows(targets, before, after))
        sys.stdout.flush()
        if no_stream:
            return
        before = after


# -- cp -------------------------------------------------------------------------------------


def _split_target(text: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` -> (container, path); a local path -> (None, path)."""
    name, sep, path = text.partition(":")
    if not sep or not name or "/" in name or name.startswith("."):
        return None, text
    return name, path or "/"


@click.command()
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.argument("src")
@click.argument("dest")
def cp(src: str, dest: str, archive: bool, follow_link: bool) -> None:
    """Copy files between a container and the local filesystem (CONTAINER:PATH, '-' for a tar stream)."""
    src_ctr, src_path = _split_target(src)
    dst_ctr, dst_path = _split_target(dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise CliError(
            "copying between containers or between local paths is not supported; "
            "name one side as CONTAINER:PATH",
            USAGE_ERROR,
        )
    containers = engine().containers
    if src_ctr is not None:
        chunks, stat_ = containers.get(src_ctr).get_archive(src_path)
        if dst_path == "-":
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            return
        from containerkit.engine._archive import extract_to_host

        # the archive comes from the container: extracted with the destination as its root
        owner = None if archive else (os.getuid(), os.getgid())
        extract_to_host(chunks, str(stat_.get("name") or "."), Path(dst_path), owner=owner)
        return
    assert dst_ctr is not None
    target = containers.get(dst_ctr)
    if src_path == "-":
        target.put(dst_path, sys.stdin.buffer, copy_uid_gid=archive)
        return
    source = Path(src_path)
    if not source.exists() and not source.is_symlink():
        raise CliError(f"no such file or directory: {src_path}")
    if follow_link and source.is_symlink():
        source = source.resolve()
    # docker cp: files land owned by root, or by the container's user with --archive
    target.put(dst_path, source, owner=None if archive else (0, 0), copy_uid_gid=archive)
