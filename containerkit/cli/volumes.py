"""``volume create/ls/rm/inspect/prune``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from containerkit.cli import _output as out
from containerkit.cli._backend import engine
from containerkit.cli._errors import USAGE_ERROR, CliError, print_error

if TYPE_CHECKING:
    from containerkit.api import Backend

_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")


def volume_users(eng: Backend) -> dict[str, list[str]]:
    """Volume name -> the containers (names) that mount it."""
    users: dict[str, list[str]] = {}
    for container in eng.containers.list(all=True):
        for name in container.volume_names:
            users.setdefault(name, []).append(container.name)
    return users


def remove_volume(eng: Backend, name: str, *, force: bool = False) -> None:
    """Remove a volume, refusing (Conflict) while a container uses it."""
    eng.volumes.remove(name, force=force, in_use_by=volume_users(eng).get(name))


@click.group()
def volume() -> None:
    """Manage volumes."""


@volume.command()
@click.option("-d", "--driver", default="local", help="Volume driver name (local only).")
@click.option("-l", "--label", multiple=True, metavar="KEY[=VALUE]", help="Set metadata for a volume.")
@click.argument("name", required=False)
def create(name: str | None, driver: str, label: tuple[str, ...]) -> None:
    """Create a volume."""
    if driver != "local":
        raise CliError(f"unsupported volume driver {driver!r} (only local)", USAGE_ERROR)
    labels = dict(item.partition("=")[::2] for item in label)
    click.echo(engine().volumes.create(name, labels=labels).name)


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option(
    "-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Filter (name=, label=, dangling=)."
)
@click.option("--format", "format_", help="'table', 'json' or a template such as '{{.Name}}'.")
def ls(quiet: bool, filters: tuple[str, ...], format_: str | None) -> None:
    """List volumes."""
    from containerkit.cli.containers import parse_filters
    from containerkit.errors import InvalidArgument

    eng = engine()
    try:
        found = eng.volumes.list(filters=parse_filters(filters) or None)
    except InvalidArgument as exc:
        raise CliError(str(exc), USAGE_ERROR) from None
    if quiet:
        for vol in found:
            click.echo(vol.name)
        return
    rows = [
        {
            "Driver": vol.driver,
            "Name": vol.name,
            "Mountpoint": vol.mountpoint,
            "Labels": ",".join(f"{k}={v}" for k, v in vol.labels),
            "CreatedAt": out.rfc3339(vol.created),
            "Scope": "local",
        }
        for vol in found
    ]
    out.print_rows(format_, ("DRIVER", "VOLUME NAME"), ("Driver", "Name"), rows)


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@click.argument("names", nargs=-1, required=True)
def rm(names: tuple[str, ...], force: bool) -> int:
    """Remove one or more volumes."""
    from containerkit.errors import ContainerkitError, NotFound

    eng = engine()
    failed = 0
    for name in names:
        try:
            remove_volume(eng, name, force=force)
        except NotFound as exc:
            if not force:
                print_error(str(exc))
                failed = 1
            continue
        except ContainerkitError as exc:
            print_error(str(exc))
            failed = 1
            continue
        click.echo(name)
    return failed


@volume.command("inspect")
@click.option("-f", "--format", "format_", help="Format output using a template.")
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...], format_: str | None) -> None:
    """Display detailed information on one or more volumes."""
    from containerkit.cli._describe import volume_inspect
    from containerkit.cli.inspect import emit

    emit([volume_inspect(engine().volumes.get(n)) for n in names], format_)


def prune_volumes(eng: Backend, *, all_: bool, label: list[str] | None = None) -> list[str]:
    """Unused volumes (anonymous ones only unless ``all_``); the names removed."""
    from containerkit.errors import ContainerkitError
    from containerkit.spec import label_matches

    used = volume_users(eng)
    removed = []
    for vol in eng.volumes.list():
        labels = dict(vol.labels)
        if vol.name in used or not (all_ or _ANONYMOUS.match(vol.name)):
            continue
        if label and not all(label_matches(labels, w) for w in label):
            continue
        try:
            eng.volumes.remove(vol.name)
        except ContainerkitError:
            continue
        removed.append(vol.name)
    return removed


@volume.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option(
    "--filter", "filters", multiple=True, metavar="label=KEY[=VALUE]", help="Provide filter values."
)
def prune(all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused volumes (anonymous ones unless -a)."""
    from containerkit.cli.containers import parse_filters

    wanted = parse_filters(filters)
    if set(wanted) - {"label"}:
        raise CliError("only label filters are supported", USAGE_ERROR)
    if not force:
        click.confirm(
            "This will remove all unused local volumes. Are you sure you want to continue?", abort=True
        )
    removed = prune_volumes(engine(), all_=all_, label=wanted.get("label"))
    if removed:
        click.echo("Deleted Volumes:\n" + "\n".join(removed))
