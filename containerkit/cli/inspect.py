"""``inspect``: docker's JSON documents for containers, images, volumes and networks."""

from __future__ import annotations

import json
from typing import Any

import click

from containerkit.cli import _output as out
from containerkit.cli._backend import engine
from containerkit.cli._errors import print_error

_TYPES = ("container", "image", "volume", "network")


def document(kind: str, name: str) -> dict[str, Any]:
    """The inspect document of ``name`` as a ``kind``; NotFound when there is none."""
    from containerkit.cli import _describe

    eng = engine()
    if kind == "container":
        return _describe.container_inspect(eng, eng.containers.get(name))
    if kind == "image":
        return _describe.image_inspect(eng, eng.images.get(name))
    if kind == "volume":
        return _describe.volume_inspect(eng.volumes.get(name))
    from containerkit.cli.networks import network_inspect

    return network_inspect(name)


def _find(name: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    from containerkit.errors import NotFound

    for kind in kinds:
        try:
            return document(kind, name)
        except NotFound:
            continue
        except AttributeError:  # a backend without that collection
            continue
    raise NotFound(f"No such object: {name}")


def emit(documents: list[dict[str, Any]], format_: str | None) -> None:
    if format_:
        for doc in documents:
            click.echo(out.render_template(format_, doc) if format_ != "json" else json.dumps(doc))
    else:
        out.echo_json(documents)


@click.command()
@click.option("-f", "--format", "format_", help="Format output using a template such as '{{.State.Status}}'.")
@click.option("--type", "type_", type=click.Choice(_TYPES), help="Only inspect objects of this type.")
@click.argument("names", nargs=-1, required=True)
def inspect(names: tuple[str, ...], format_: str | None, type_: str | None) -> int:
    """Return low-level information on containerkit objects."""
    from containerkit.errors import ContainerkitError

    documents = []
    failed = 0
    for name in names:
        try:
            documents.append(_find(name, (type_,) if type_ else _TYPES))
        except ContainerkitError as exc:
            print_error(str(exc))
            failed = 1
    emit(documents, format_)
    return failed
