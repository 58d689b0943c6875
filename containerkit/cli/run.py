"""``containerkit run``: create, start and attach, the one verb a command line runs most.

Alone in its module, with the helpers the other container verbs share (creating, starting, the
terminal check): a ``run`` builds only its own command's options, not those of ``create``,
``ps``, ``logs``, ``exec`` and the rest (about a millisecond and a half of click option objects
on every ``run``). :mod:`containerkit.cli.containers` has the other verbs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from containerkit.cli._backend import engine
from containerkit.cli._errors import USAGE_ERROR, CliError, exit_code_for
from containerkit.cli._runopts import build_spec, container_options

if TYPE_CHECKING:
    from containerkit.api import ContainerHandle

__all__ = ["PASS_THROUGH", "RUN_SETTINGS", "check_tty", "create_container", "run", "start_container"]

PASS_THROUGH = {"allow_interspersed_args": False}
# run and create keep -h for --hostname (as docker's); --help is their only help flag
RUN_SETTINGS = {**PASS_THROUGH, "help_option_names": ["--help"]}


def create_container(
    image: str, command: tuple[str, ...], opts: dict[str, Any], *, attached: bool = False
) -> ContainerHandle:
    from containerkit.cli.registry import ensure_image
    from containerkit.errors import ContainerkitError

    try:
        ensure_image(image, opts.get("pull") or "missing", platform=opts.get("platform"))
        exposed = _image_checks(image, opts)
        return engine().containers.create(
            build_spec(image, command, opts, attached=attached, exposed=exposed)
        )
    except ContainerkitError as exc:
        raise CliError(str(exc), USAGE_ERROR) from None


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i386": "386"}


def _image_checks(image: str, opts: dict[str, Any]) -> tuple[str, ...]:
    """``--platform`` must name the local image's platform (docker's error when it does not);
    with ``-P``, the image's exposed ports to publish."""
    from containerkit.errors import NotFound

    platform, publish_all = opts.get("platform"), opts.get("publish_all")
    if not platform and not publish_all:
        return ()
    try:
        found = engine().images.get(image)
    except NotFound:
        return ()  # the create names the missing image
    if platform:
        wanted_os, _, rest = platform.lower().partition("/")
        wanted_arch = rest.partition("/")[0]
        wanted_arch = _ARCH_ALIASES.get(wanted_arch, wanted_arch)
        if wanted_os != found.os or (wanted_arch and wanted_arch != found.architecture):
            raise CliError(
                f"image with reference {image} was found but does not match the specified platform: "
                f"wanted {platform}, actual: {found.os}/{found.architecture}",
                USAGE_ERROR,
            )
    if not publish_all:
        return ()
    return engine().images.config(found.id).exposed_ports


def start_container(container: ContainerHandle, *, remove_on_failure: bool) -> None:
    """Start, or fail like docker: 127 for a missing command, 126 for one that cannot run.

    A detached ``--rm`` container is removed at its exit by its shim's exit command; an
    attached one by this process's wait (it holds the exit claim).
    """
    from containerkit.errors import ContainerkitError, NotModified

    try:
        container.start()
    except NotModified:
        return
    except ContainerkitError as exc:
        code = exit_code_for(exc, USAGE_ERROR)
        with contextlib.suppress(ContainerkitError):
            if container.exit_code in (126, 127):
                code = int(container.exit_code)
        if remove_on_failure:
            with contextlib.suppress(ContainerkitError):
                container.remove(force=True)
        raise CliError(str(exc), code) from None


def _stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):  # no real stdin (closed, or replaced by a test harness)
        return False


def check_tty(interactive: bool, tty: bool) -> None:
    if interactive and tty and not _stdin_is_tty():
        raise CliError("the input device is not a TTY", 1)


@click.command(context_settings=RUN_SETTINGS)
@container_options
@click.option("-d", "--detach", is_flag=True, help="Run in the background and print the container ID.")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(image: str, command: tuple[str, ...], detach: bool, **opts: Any) -> int:
    """Create and run a new container from an image."""
    if not detach:
        check_tty(opts["interactive"], opts["tty"])
    container = create_container(image, command, opts, attached=not detach)
    if detach:
        start_container(container, remove_on_failure=opts["auto_remove"])
        click.echo(container.id)
        return 0
    from containerkit.cli._attach import attach_container, close_output, open_output

    output = open_output(container, stdin=opts["interactive"])
    container.claim_exit()  # --rm: removed by this process's wait, not by an exit command
    try:
        start_container(container, remove_on_failure=opts["auto_remove"])
    except BaseException:
        container.release_exit()
        close_output(output)
        raise
    return attach_container(container, stdin=opts["interactive"], tty=opts["tty"], output=output)
