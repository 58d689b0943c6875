"""``network create/ls/rm/inspect/connect/disconnect/prune``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from containerkit.cli import _output as out
from containerkit.cli._backend import client_network, engine
from containerkit.cli._errors import USAGE_ERROR, CliError, print_error

if TYPE_CHECKING:
    from containerkit.api import Networks


def _networks() -> Networks:
    return engine().networks


def network_inspect(ref: str) -> dict[str, Any]:
    network = _networks().get(ref)
    remote = client_network(network)
    if remote is not None:  # the daemon's own document, as it gave it
        return remote.attrs
    containers: dict[str, Any] = {}
    for container in network.containers:
        endpoint = container.networks.get(network.name)
        containers[container.id] = {
            "Name": container.name,
            "IPv4Address": f"{endpoint.ip}/{endpoint.prefixlen}" if endpoint and endpoint.ip else "",
            "MacAddress": endpoint.mac if endpoint else "",
        }
    return {
        "Name": network.name,
        "Id": network.id,
        "Created": out.rfc3339(network.created),
        "Scope": "local",
        "Driver": network.driver,
        "IPAM": {"Driver": "default", "Config": [{"Subnet": network.subnet, "Gateway": network.gateway}]},
        "Internal": network.internal,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": network.bridge},
        "Labels": network.labels,
    }


@click.group()
def network() -> None:
    """Manage networks."""


@network.command()
@click.option("-d", "--driver", default="bridge", help="Driver to manage the network (bridge only).")
@click.option("--subnet", help="Subnet in CIDR format, e.g. 10.10.0.0/24.")
@click.option("--gateway", help="IPv4 gateway for the subnet.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("-l", "--label", multiple=True, metavar="KEY[=VALUE]", help="Set metadata on a network.")
@click.argument("name")
def create(
    name: str, driver: str, subnet: str | None, gateway: str | None, internal: bool, label: tuple[str, ...]
) -> None:
    """Create a network."""
    if driver != "bridge":
        raise CliError(f"unsupported network driver {driver!r} (only bridge)", USAGE_ERROR)
    labels = dict(item.partition("=")[::2] for item in label)
    created = _networks().create(name, subnet=subnet, gateway=gateway, internal=internal, labels=labels)
    click.echo(created.id)


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Filter output.")
@click.option("--format", "format_", help="'table', 'json' or a template such as '{{.Name}}'.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
def ls(quiet: bool, filters: tuple[str, ...], format_: str | None, no_trunc: bool) -> None:
    """List networks."""
    from containerkit.cli.containers import parse_filters

    found = _networks().list(filters=parse_filters(filters))
    if quiet:
        for net in found:
            click.echo(net.id if no_trunc else net.short_id)
        return
    rows = [
        {
            "ID": net.id if no_trunc else net.short_id,
            "Name": net.name,
            "Driver": net.driver,
            "Scope": "local",
            "Subnet": net.subnet,
            "Internal": str(net.internal).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(net.labels.items())),
            "CreatedAt": out.rfc3339(net.created),
        }
        for net in found
    ]
    out.print_rows(
        format_, ("NETWORK ID", "NAME", "DRIVER", "SCOPE"), ("ID", "Name", "Driver", "Scope"), rows
    )


@network.command("rm")
@click.argument("networks", nargs=-1, required=True)
def rm(networks: tuple[str, ...]) -> int:
    """Remove one or more networks."""
    from containerkit.errors import ContainerkitError

    failed = 0
    for name in networks:
        try:
            _networks().remove(name)
        except ContainerkitError as exc:
            print_error(str(exc))
            failed = 1
            continue
        click.echo(name)
    return failed


@network.command("inspect")
@click.option("-f", "--format", "format_", help="Format output using a template.")
@click.argument("networks", nargs=-1, required=True)
def inspect(networks: tuple[str, ...], format_: str | None) -> None:
    """Display detailed information on one or more networks."""
    from containerkit.cli.inspect import emit

    emit([network_inspect(n) for n in networks], format_)


@network.command()
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
def connect(network_name: str, container: str, alias: tuple[str, ...]) -> None:
    """Connect a container to a network."""
    _networks().get(network_name).connect(container, aliases=alias)


@network.command()
@click.option("-f", "--force", is_flag=True, help="Accepted for docker compatibility.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
def disconnect(network_name: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    _networks().get(network_name).disconnect(container)


@network.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option(
    "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Provide filter values (label=...)."
)
def prune(force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    from containerkit.cli.containers import parse_filters

    if not force:
        click.confirm(
            "This will remove all custom networks not used by at least one container. Continue?", abort=True
        )
    removed = _networks().prune(filters=parse_filters(filters))
    if removed:
        click.echo("Deleted Networks:\n" + "\n".join(removed))
