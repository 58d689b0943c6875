"""Image verbs: images, load, save, import, tag, rmi, and the ``image`` group."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from containerkit.cli import _output as out
from containerkit.cli import registry
from containerkit.cli._backend import engine
from containerkit.cli._errors import USAGE_ERROR, CliError, print_error
from containerkit.errors import InvalidArgument
from containerkit.spec import ImageConfig

_HEADERS = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
_KEYS = ("Repository", "Tag", "ID", "CreatedSince", "Size")


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Filter output.")
@click.option("--format", "format_", help="'table', 'json' or a template such as '{{.Repository}}'.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.argument("reference", required=False)
def images(
    all_: bool,
    quiet: bool,
    filters: tuple[str, ...],
    format_: str | None,
    no_trunc: bool,
    digests: bool,
    reference: str | None,
) -> None:
    """List images."""
    from containerkit.cli._describe import image_rows
    from containerkit.cli.containers import parse_filters

    wanted: dict[str, Any] = parse_filters(filters)
    if reference:
        wanted.setdefault("reference", []).append(reference)
    found = engine().images.list(all=all_, filters=wanted)
    if quiet:
        seen: list[str] = []
        for image in found:
            shown = image.id if no_trunc else image.short_id
            if shown not in seen:
                seen.append(shown)
                click.echo(shown)
        return
    rows = image_rows(found, trunc=not no_trunc, digests=digests)
    headers: tuple[str, ...] = _HEADERS
    keys: tuple[str, ...] = _KEYS
    if digests:
        headers = (*_HEADERS[:2], "DIGEST", *_HEADERS[2:])
        keys = (*_KEYS[:2], "Digest", *_KEYS[2:])
    out.print_rows(format_, headers, keys, rows)


def _dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(base, name)).st_size
    return total


@click.command()
@click.option(
    "-i", "--input", "input_", type=click.Path(exists=True), help="Read from tar archive file or OCI layout."
)
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load(input_: str | None, quiet: bool) -> None:
    """Load images from a tar archive or OCI layout (or STDIN)."""
    from containerkit.cli._progress import progress

    with _input_file(input_) as path, progress(f"Loading {path.name}") if not quiet else _nothing():
        loaded = engine().images.load(path)
    if quiet:
        return
    for image in loaded:
        if image.tags:
            for tag in image.tags:
                click.echo(f"Loaded image: {tag}")
        else:
            click.echo(f"Loaded image ID: {image.id}")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None


class _input_file:
    """The archive to read: the named path, or STDIN spooled to a temp file."""

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._tmp: str | None = None

    def __enter__(self) -> Path:
        if self._name:
            return Path(self._name)
        if sys.stdin.isatty():
            raise CliError("requested load from stdin, but stdin is empty (use -i FILE)", USAGE_ERROR)
        self._tmp = tempfile.mkdtemp(prefix="containerkit-load-")
        path = Path(self._tmp) / "stdin.tar"
        with path.open("wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        return path

    def __exit__(self, *_exc: object) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _pending_size(path: Path) -> Iterator[int]:
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        yield _dir_size(tmp)


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Write to a file (or an OCI layout directory) instead of STDOUT.",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["docker-archive", "oci"]),
    default="docker-archive",
    show_default=True,
    help="Archive format; 'oci' writes a layout directory unless the path ends in .tar.",
)
@click.argument("refs", nargs=-1, required=True)
def save(refs: tuple[str, ...], output: str | None, format_: str) -> None:
    """Save one or more images to a tar archive (STDOUT by default)."""
    from containerkit.cli._progress import progress

    eng = engine()
    if output is None and sys.stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal; use -o or redirect", USAGE_ERROR)
    total = sum(eng.images.get(ref).size for ref in refs)
    with tempfile.TemporaryDirectory(prefix="containerkit-save-") as scratch:
        target = Path(output) if output else Path(scratch) / "image.tar"
        measure = (lambda: sum(_pending_size(target))) if total else None
        with progress(f"Saving {', '.join(refs)}", total=total, measure=measure):
            eng.images.save(list(refs), target, format=format_)  # type: ignore[arg-type]
        if output is None:
            with target.open("rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer, 1 << 20)
            sys.stdout.flush()


@click.command("import")
@click.option("-c", "--change", multiple=True, help="Apply a Dockerfile instruction, e.g. 'CMD [\"sh\"]'.")
@click.option("-m", "--message", help="Set a commit message for the imported image.")
@click.argument("file")
@click.argument("reference", required=False)
def import_(file: str, reference: str | None, change: tuple[str, ...], message: str | None) -> None:
    """Import a rootfs tarball (FILE, or '-' for STDIN) as an image."""
    try:
        config = ImageConfig.from_changes(change) if change else None
    except InvalidArgument as exc:
        raise CliError(f"--change: {exc}", USAGE_ERROR) from None
    with _input_file(None if file == "-" else file) as path:
        if not path.exists():
            raise CliError(f"open {file}: no such file or directory")
        image = engine().images.import_rootfs(path, reference, config=config)
    click.echo(image.id)


@click.command()
@click.argument("source")
@click.argument("target")
def tag(source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    engine().images.tag(source, target)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.argument("refs", nargs=-1, required=True)
def rmi(refs: tuple[str, ...], force: bool) -> int:
    """Remove one or more images."""
    from containerkit.errors import ContainerkitError

    failed = 0
    for ref in refs:
        try:
            for line in engine().images.remove(ref, force=force):
                click.echo(line)
        except ContainerkitError as exc:
            print_error(str(exc))
            failed = 1
    return failed


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def image_prune(all_: bool, force: bool) -> None:
    """Remove unused images."""
    if not force:
        click.confirm("This will remove all dangling images. Are you sure you want to continue?", abort=True)
    for line in prune_images(all_):
        click.echo(line)


def prune_images(all_: bool) -> list[str]:
    """Dangling images (``all_``: every image no container uses); docker's output lines."""
    from containerkit.errors import Conflict

    eng = engine()
    lines: list[str] = []
    if all_:
        used = {c.image_id for c in eng.containers.list(all=True)}
        for image in eng.images.list():
            if image.id in used:
                continue
            try:
                lines += eng.images.remove(image.id, force=True)
            except Conflict:
                continue
    lines += [f"Deleted: {image_id}" for image_id in eng.images.prune()]
    return lines


@click.command("inspect")
@click.option("-f", "--format", "format_", help="Format output using a template.")
@click.argument("refs", nargs=-1, required=True)
def image_inspect(refs: tuple[str, ...], format_: str | None) -> None:
    """Display detailed information on one or more images."""
    from containerkit.cli._describe import image_inspect as describe
    from containerkit.cli.inspect import emit

    eng = engine()
    emit([describe(eng, eng.images.get(ref)) for ref in refs], format_)


@click.group()
def image() -> None:
    """Manage images."""


for _name, _command in {
    "ls": images,
    "load": load,
    "save": save,
    "import": import_,
    "tag": tag,
    "rm": rmi,
    "prune": image_prune,
    "inspect": image_inspect,
    "pull": registry.pull,
    "push": registry.push,
}.items():
    image.add_command(_command, _name)
