"""``system prune``, ``system info``, ``version`` and ``events``."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from typing import Any

import click

from containerkit.cli import _output as out
from containerkit.cli._backend import backend, engine, local_engine


@click.group()
def system() -> None:
    """Manage containerkit."""


@system.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option(
    "--expired",
    is_flag=True,
    help="Only remove what test sessions left: things labelled containerkit.session whose "
    "owner process is gone, or (owner on another host) whose containerkit.expires passed.",
)
def prune(all_: bool, volumes: bool, force: bool, expired: bool) -> None:
    """Remove stopped containers, unused networks and dangling images (and optionally volumes)."""
    eng = engine()
    if expired:
        from containerkit._reaper import reap_expired

        _section("Deleted", reap_expired(eng))
        return
    if not force:
        what = ["all stopped containers", "all networks not used by at least one container"]
        what += ["all anonymous volumes not used by at least one container"] if volumes else []
        what += [
            "all images without at least one container associated to them" if all_ else "all dangling images"
        ]
        click.echo("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what))
        click.confirm("Are you sure you want to continue?", abort=True)
    from containerkit.cli.images import prune_images

    _section("Deleted Containers", eng.containers.prune())
    _section("Deleted Networks", eng.networks.prune())
    if volumes:
        from containerkit.cli.volumes import prune_volumes

        _section("Deleted Volumes", prune_volumes(eng, all_=False))
    lines = prune_images(all_)
    if lines:
        click.echo("Deleted Images:\n" + "\n".join(lines) + "\n")


def _section(title: str, items: list[str]) -> None:
    if items:
        click.echo(f"{title}:\n" + "\n".join(items) + "\n")


def _cgroup_version() -> str:
    try:
        from containerkit.engine.frontend import cgroup_mode

        return {"unified": "2", "hybrid": "1 (hybrid)", "legacy": "1"}[cgroup_mode()]
    except Exception:
        return "unknown"


def _runtimes() -> list[str]:
    return ["builtin", *(name for name in ("runc", "crun") if shutil.which(name))]


def info_document() -> dict[str, Any]:
    """docker's ``info`` fields that mean something here."""
    from containerkit import __version__
    from containerkit.cli._describe import host_memory

    eng = engine()
    local = local_engine(eng)
    states = [c.status for c in eng.containers.list(all=True)]
    uname = platform.uname()
    doc: dict[str, Any] = {
        "Containers": len(states),
        "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
        "Images": len(eng.images.list()),
        "Volumes": len(eng.volumes.list()),
        "Driver": local.snapshots.driver if local is not None else "",
        "CgroupVersion": _cgroup_version(),
        "Runtimes": _runtimes(),
        "DefaultRuntime": "builtin",
        "KernelVersion": uname.release,
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": os.cpu_count() or 0,
        "MemTotal": host_memory(),
        "Name": uname.node,
        "ServerVersion": __version__,
    }
    if backend().local:
        doc["ContainerkitRootDir"] = str(backend().root)
    else:
        doc["Host"] = backend().host
    doc["Networks"] = len(eng.networks.list())
    return doc


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


@system.command()
@click.option("-f", "--format", "format_", help="'json' or a template such as '{{.KernelVersion}}'.")
def info(format_: str | None) -> None:
    """Display system-wide information."""
    doc = info_document()
    if format_ == "json":
        click.echo(json.dumps(doc))
        return
    if format_:
        click.echo(out.render_template(format_, doc))
        return
    lines = [
        f"Containers: {doc['Containers']}",
        f" Running: {doc['ContainersRunning']}",
        f" Paused: {doc['ContainersPaused']}",
        f" Stopped: {doc['ContainersStopped']}",
        f"Images: {doc['Images']}",
        f"Volumes: {doc['Volumes']}",
    ]
    lines += [f"Networks: {doc['Networks']}"] if "Networks" in doc else []
    lines += [
        f"Server Version: {doc['ServerVersion']}",
        f"Storage Driver: {doc['Driver']}",
        f"Cgroup Version: {doc['CgroupVersion']}",
        f"Runtimes: {' '.join(doc['Runtimes'])}",
        f"Default Runtime: {doc['DefaultRuntime']}",
        f"Kernel Version: {doc['KernelVersion']}",
        f"Operating System: {doc['OperatingSystem']}",
        f"Architecture: {doc['Architecture']}",
        f"CPUs: {doc['NCPU']}",
        f"Total Memory: {out.iec_size(doc['MemTotal'])}",
        f"Name: {doc['Name']}",
    ]
    lines += (
        [f"Root Dir: {doc['ContainerkitRootDir']}"]
        if "ContainerkitRootDir" in doc
        else [f"Host: {doc['Host']}"]
    )
    click.echo("\n".join(lines))


@click.command()
@click.option("-f", "--format", "format_", help="'json' or a template such as '{{.Client.Version}}'.")
def version(format_: str | None) -> None:
    """Show the containerkit version information."""
    from containerkit import __version__

    doc: dict[str, Any] = {
        "Client": {
            "Version": __version__,
            "PythonVersion": platform.python_version(),
            "ClickVersion": _dist_version("click"),
            "Os": sys.platform,
            "Arch": platform.machine(),
        }
    }
    if not backend().local:
        doc["Server"] = backend().client().version()
    if format_ == "json":
        click.echo(json.dumps(doc))
    elif format_:
        click.echo(out.render_template(format_, doc))
    else:
        client = doc["Client"]
        click.echo(
            "Client: containerkit\n"
            f" Version:     {client['Version']}\n"
            f" Python:      {client['PythonVersion']}\n"
            f" OS/Arch:     {client['Os']}/{client['Arch']}"
        )
        if "Server" in doc:
            click.echo("\nServer:\n" + "\n".join(f" {k}: {v}" for k, v in doc["Server"].items()))


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(name)
    except PackageNotFoundError:
        return ""


@click.command()
@click.option(
    "--since", metavar="TIME", help="Show events since a time (unix seconds, RFC 3339 or a duration: 10m)."
)
@click.option("--until", metavar="TIME", help="Stream events until this time; without it, follow new ones.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Filter output.")
@click.option("--format", "format_", help="'json' or a template such as '{{.Type}} {{.Action}}'.")
def events(since: str | None, until: str | None, filters: tuple[str, ...], format_: str | None) -> None:
    """Get real time events from the engine (what any process did on its root)."""
    from containerkit.cli.containers import parse_filters

    stream = engine().events(
        since=_timestamp(since), until=_timestamp(until), filters=parse_filters(filters) or None, decode=False
    )
    for message in stream:
        if format_ == "json":
            click.echo(json.dumps(message, separators=(",", ":")))
        elif format_:
            click.echo(out.render_template(format_, message))
        else:
            click.echo(event_line(message))
        sys.stdout.flush()


def _timestamp(value: str | None) -> str | None:
    """As the docker CLI sends ``--since``/``--until``: a duration (``10m``) becomes the unix time
    that long before now; a unix time or an RFC 3339 date goes as it is."""
    from containerkit.cli._errors import CliError
    from containerkit.cli._runopts import parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value, "--since/--until")
    except CliError:
        return value
    return f"{time.time() - seconds:.9f}"


def event_line(message: dict[str, Any]) -> str:
    """docker's line: ``2026-01-02T03:04:05.123456789Z container start ID (image=..., name=...)``."""
    import datetime as dt

    nanos = int(message.get("timeNano") or int(message.get("time") or 0) * 1_000_000_000)
    when = dt.datetime.fromtimestamp(nanos // 1_000_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    actor = message.get("Actor") or {}
    attributes = ", ".join(f"{k}={v}" for k, v in sorted((actor.get("Attributes") or {}).items()))
    what = f"{message.get('Type')} {message.get('Action')} {actor.get('ID', '')}"
    line = f"{when}.{nanos % 1_000_000_000:09d}Z {what}"
    return f"{line} ({attributes})" if attributes else line
