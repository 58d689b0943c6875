"""The root command (``cli``): global options, the verbs' table and the mapping of failures to
exit codes.

Verbs live in one module per group and are imported only when invoked (a lazy click group),
so ``containerkit --help`` and ``containerkit version`` never load the engine. The console
script's :func:`containerkit.cli.main.main` loads this module (and click) unless the command
is ``--version`` alone.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from containerkit import __version__
from containerkit.cli._backend import Backend
from containerkit.cli._errors import ENGINE_ERROR, USAGE_ERROR, CliError, exit_code_for, print_error

__all__ = ["cli"]

# name -> (module, attribute, one-line help); the help is here so listing verbs imports nothing.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run", "run", "Create and run a new container from an image"),
    "create": ("containers", "create", "Create a new container"),
    "start": ("containers", "start", "Start one or more stopped containers"),
    "ps": ("containers", "ps", "List containers"),
    "logs": ("containers", "logs", "Fetch the logs of a container"),
    "exec": ("containers", "exec_", "Execute a command in a running container"),
    "stop": ("containers", "stop", "Stop one or more running containers"),
    "kill": ("containers", "kill", "Kill one or more running containers"),
    "restart": ("containers", "restart", "Restart one or more containers"),
    "pause": ("containers", "pause", "Pause all processes within one or more containers"),
    "unpause": ("containers", "unpause", "Unpause all processes within one or more containers"),
    "rm": ("containers", "rm", "Remove one or more containers"),
    "update": ("containers", "update", "Update configuration of one or more containers"),
    "rename": ("containers", "rename", "Rename a container"),
    "wait": ("containers", "wait", "Block until containers stop, then print their exit codes"),
    "top": ("containers", "top", "Display the running processes of a container"),
    "port": ("containers", "port", "List port mappings or a specific mapping for the container"),
    "stats": ("containers", "stats", "Display a live stream of container resource usage"),
    "cp": ("containers", "cp", "Copy files between a container and the local filesystem"),
    "diff": ("snapshots", "diff", "Inspect changes to files or directories on a container's filesystem"),
    "commit": ("snapshots", "commit", "Create a new image from a container's changes"),
    "export": ("snapshots", "export", "Export a container's filesystem as a tar archive"),
    "history": ("snapshots", "history", "Show the history of an image"),
    "inspect": ("inspect", "inspect", "Return low-level information on containerkit objects"),
    "build": ("build", "build", "Build an image from a Dockerfile"),
    "images": ("images", "images", "List images"),
    "load": ("images", "load", "Load images from a tar archive or STDIN"),
    "save": ("images", "save", "Save images to a tar archive"),
    "import": ("images", "import_", "Import a rootfs tarball as an image"),
    "tag": ("images", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("images", "rmi", "Remove one or more images"),
    "image": ("images", "image", "Manage images"),
    "pull": ("registry", "pull", "Download an image from a registry"),
    "push": ("registry", "push", "Upload an image to a registry"),
    "login": ("registry", "login", "Log in to a registry"),
    "logout": ("registry", "logout", "Log out from a registry"),
    "volume": ("volumes", "volume", "Manage volumes"),
    "network": ("networks", "network", "Manage networks"),
    "system": ("system", "system", "Manage containerkit"),
    "version": ("system", "version", "Show the containerkit version information"),
    "events": ("system", "events", "Get real time events from the engine"),
}


class _Root(click.Group):
    """Loads verbs on demand and turns every failure into one line and docker's exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"containerkit.cli.{entry[0]}")
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in _COMMANDS.items()])

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = _run(self, args, prog_name or "containerkit", complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code


def _run(
    group: click.Group, args: Sequence[str] | None, prog_name: str, complete_var: str | None, **extra: Any
) -> int:
    from containerkit.errors import ContainerkitError

    try:
        rv = click.Group.main(group, args, prog_name, complete_var, standalone_mode=False, **extra)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print_error(f"{exc.format_message()}{hint}")
        return USAGE_ERROR
    except click.ClickException as exc:
        print_error(exc.format_message())
        return USAGE_ERROR if exc.exit_code == 2 else exc.exit_code
    except CliError as exc:
        print_error(exc.message)
        return exc.exit_code
    except ContainerkitError as exc:
        print_error(str(exc))
        return exit_code_for(exc, ENGINE_ERROR)
    except click.Abort:
        print_error("aborted")
        return 130
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    except OSError as exc:
        print_error(str(exc))
        return ENGINE_ERROR
    return rv if isinstance(rv, int) else 0


@click.group(
    cls=_Root,
    # -h is --help in every verb, as docker's; run and create keep it for --hostname
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.option(
    "--root",
    metavar="DIR",
    help="Engine root directory (default: $CONTAINERKIT_ROOT or /var/lib/containerkit).",
)
@click.option(
    "-H",
    "--host",
    metavar="URL",
    help="containerkitd to drive instead of the local root (default: $CONTAINERKIT_HOST).",
)
# the package's own version string: asking the installed metadata loads importlib.metadata
# (email, zipfile, csv...), which doubled the time of ``containerkit --version``
@click.version_option(__version__, "-v", "--version", message="containerkit %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, host: str | None) -> None:
    """Run and manage containers: docker's verbs on containerkit."""
    backend = Backend(root=root, host=host)
    ctx.obj = backend
    ctx.call_on_close(backend.close)
