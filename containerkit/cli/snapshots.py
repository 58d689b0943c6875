"""A container's filesystem as changes, an image or a tar, and an image's steps: ``diff``,
``commit``, ``export`` and ``history``, printed as the docker CLI prints them."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

import click

from containerkit.cli import _output as out
from containerkit.cli._backend import engine
from containerkit.cli._errors import USAGE_ERROR, CliError

__all__ = ["commit", "diff", "export", "history"]

_HEADERS = ("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")
_KEYS = ("ID", "CreatedSince", "CreatedBy", "Size", "Comment")
_CREATED_BY_WIDTH = 45
"""docker history truncates the command to this many characters."""


@click.command()
@click.argument("container")
def diff(container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    for change in engine().containers.get(container).diff():
        click.echo(str(change))


@click.command()
@click.option("-a", "--author", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image."
)
@click.option("-m", "--message", help="Commit message.")
@click.option("-p", "--pause/--no-pause", "pause", default=True, help="Pause container during commit.")
@click.argument("container")
@click.argument("reference", required=False)
def commit(
    container: str,
    reference: str | None,
    author: str | None,
    changes: tuple[str, ...],
    message: str | None,
    pause: bool,
) -> None:
    """Create a new image from a container's changes."""
    image = (
        engine()
        .containers.get(container)
        .commit(reference or None, changes=list(changes), message=message, author=author, pause=pause)
    )
    click.echo(image.id)


@click.command()
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
@click.argument("container")
def export(container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar archive."""
    if output is None and sys.stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect", USAGE_ERROR)
    stream = engine().containers.get(container).export()
    if output is None:
        target = sys.stdout.buffer
        for chunk in stream:
            target.write(chunk)
        target.flush()
        return
    # written beside the target and renamed: an export that fails leaves no half file
    directory = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".export-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in stream:
                handle.write(chunk)
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise


@click.command()
@click.option(
    "-H", "--human/--no-human", default=True, help="Print sizes and dates in human readable format."
)
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "format_", help="'table', 'json' or a template such as '{{.ID}}'.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.argument("image")
def history(image: str, human: bool, quiet: bool, format_: str | None, no_trunc: bool) -> None:
    """Show the history of an image."""
    steps = engine().images.history(image)
    rows: list[dict[str, Any]] = []
    for step in steps:
        shown = step.id
        if not no_trunc and shown.startswith("sha256:"):
            shown = shown[len("sha256:") :][:12]
        created_by = " ".join(step.created_by.split()) if not no_trunc else step.created_by
        if not no_trunc:
            created_by = out.truncate(created_by, _CREATED_BY_WIDTH)
        rows.append(
            {
                "ID": shown,
                "CreatedSince": out.ago(step.created) if human else out.rfc3339(step.created),
                "CreatedAt": out.rfc3339(step.created),
                "CreatedBy": created_by,
                "Size": out.human_size(step.size) if human else str(step.size),
                "Comment": step.comment,
                "Tags": ",".join(step.tags),
            }
        )
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    out.print_rows(format_, _HEADERS, _KEYS, rows)
