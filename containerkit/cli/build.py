"""``build``: docker's classic ``docker build``, its step lines as they happen.

Each event prints as the classic builder's line (``Step 1/6 : FROM busybox``, `` ---> Using
cache``, a RUN's output) as it happens; on a terminal the steps are bold, cache hits dim and a
RUN's stderr red (as the docker CLI shows dockerd's); ``-q`` prints only the image id at the end.
"""

from __future__ import annotations

import os
import sys

import click

from containerkit.cli._backend import engine
from containerkit.cli._errors import CliError
from containerkit.spec import BuildEvent

_RESET = "\x1b[0m"
_STYLES = {
    "step": "\x1b[1m",  # bold: where each step starts
    "cache": "\x1b[2m",  # dim: nothing ran
    "stderr": "\x1b[91m",  # red, as the docker CLI shows dockerd's stderr lines
    "warning": "\x1b[33m",
    "built": "\x1b[32m",
    "tagged": "\x1b[32m",
}
"""How a terminal shows each kind of line."""


def _pairs(items: tuple[str, ...], what: str, sep: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, found, value = item.partition(sep)
        if not key or not found:
            raise CliError(f"invalid argument {item!r} for {what}: expected KEY{sep}VALUE")
        out[key] = value
    return out


def _build_args(items: tuple[str, ...]) -> dict[str, str | None]:
    """``--build-arg K=V``, or ``--build-arg K`` taking K from the environment (docker's rule)."""
    out: dict[str, str | None] = {}
    for item in items:
        key, found, value = item.partition("=")
        if not key:
            raise CliError(f"invalid argument {item!r} for --build-arg")
        if found:
            out[key] = value
        elif key in os.environ:
            out[key] = os.environ[key]
    return out


class _Printer:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stdout.isatty()

    def __call__(self, event: BuildEvent) -> None:
        if self.quiet:
            return
        line = event.line()
        if not line:
            return
        if self.tty:
            style = _STYLES.get(
                "stderr" if event.kind == "output" and event.stream == "stderr" else event.kind
            )
            if style:
                line = f"{style}{line.rstrip(chr(10))}{_RESET}" + ("\n" if line.endswith("\n") else "")
        sys.stdout.write(line)
        sys.stdout.flush()


@click.command()
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Name and optionally a tag.")
@click.option(
    "-f", "--file", "dockerfile", default=None, help="Name of the Dockerfile (default PATH/Dockerfile)."
)
@click.option(
    "--build-arg", "build_args", multiple=True, metavar="KEY[=VALUE]", help="Set build-time variables."
)
@click.option("--target", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Set metadata for an image.")
@click.option(
    "--network", default="bridge", help="Networking mode for the RUN instructions (bridge, none, host)."
)
@click.option(
    "--add-host", "hosts", multiple=True, metavar="HOST:IP", help="Add a custom host-to-IP mapping."
)
@click.option("--cache-from", "cache_from", multiple=True, help="Images to consider as cache sources.")
@click.option("--platform", help="Set platform if server is multi-platform capable.")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers after a successful build.")
@click.option("--force-rm", is_flag=True, help="Always remove intermediate containers.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.argument("path")
def build(
    tags: tuple[str, ...],
    dockerfile: str | None,
    build_args: tuple[str, ...],
    target: str | None,
    no_cache: bool,
    pull: bool,
    labels: tuple[str, ...],
    network: str,
    hosts: tuple[str, ...],
    cache_from: tuple[str, ...],
    platform: str | None,
    rm: bool,
    force_rm: bool,
    quiet: bool,
    path: str,
) -> None:
    """Build an image from a Dockerfile."""
    if path == "-":
        raise CliError("building from a context on stdin is not supported: give a directory")
    if not os.path.isdir(path):
        raise CliError(f'unable to prepare context: path "{path}" not found')
    name = "Dockerfile"
    if dockerfile:
        # docker's -f: relative to the working directory, not the context
        name = os.path.abspath(dockerfile)
    image = engine().images.build(
        path,
        dockerfile=name,
        tag=list(tags),
        buildargs=_build_args(build_args),
        target=target,
        labels=_pairs(labels, "--label", "="),
        nocache=no_cache,
        cache_from=list(cache_from),
        pull=pull,
        network="bridge" if network == "default" else network,
        extra_hosts=_pairs(hosts, "--add-host", ":"),
        platform=platform,
        rm=rm,
        forcerm=force_rm,
        progress=_Printer(quiet),
    )
    if quiet:
        click.echo(image.id)
