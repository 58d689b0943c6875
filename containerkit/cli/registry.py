"""Registry verbs: pull, push, login, logout (docker's words and output).

Credentials live where docker keeps them (``config.json`` or its credential helper). The
in-process engine reads them itself and its ``login`` stores them after the registry accepted
them. Through a daemon (``--host``), as with the docker CLI, this side reads them and sends them
with each pull and push (the daemon keeps none); ``login`` asks the daemon to check them, then
stores them here.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from containerkit.cli._backend import backend, engine
from containerkit.cli._errors import USAGE_ERROR, CliError

if TYPE_CHECKING:
    from containerkit import RegistryAuth
    from containerkit.engine.registries import RegistryCollection
    from containerkit.spec import Image

__all__ = ["ensure_image", "login", "logout", "pull", "pull_image", "push"]

DEFAULT_SERVER = "https://index.docker.io/v1/"


def _canonical(ref: str) -> str:
    from containerkit.engine.frontend import parse_image_reference

    return parse_image_reference(ref).canonical


def _local_credentials() -> RegistryCollection:
    """docker's credential store on this machine (config.json, helpers)."""
    from containerkit import RegistryOptions
    from containerkit.engine.registries import RegistryCollection

    return RegistryCollection(RegistryOptions())


def _auth_for(ref: str) -> RegistryAuth | None:
    """What to send a daemon for ``ref``'s registry; None for the in-process engine (it reads
    the same store itself)."""
    if backend().local:
        return None
    from containerkit.engine.frontend import parse_image_reference

    return _local_credentials().credentials(parse_image_reference(ref).domain)


def pull_image(ref: str, *, platform: str | None = None, quiet: bool = False, err: bool = False) -> Image:
    """Pull ``ref`` with docker's output (on stderr with ``err``, as ``run`` prints it)."""
    from containerkit.cli._progress import LayerProgress

    out = sys.stderr if err else sys.stdout
    if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        print("Using default tag: latest", file=out, flush=True)
    auth = _auth_for(ref)
    if quiet:
        return engine().images.pull(ref, platform=platform, auth=auth)
    with LayerProgress(out) as progress:
        return engine().images.pull(ref, platform=platform, auth=auth, progress=progress)


def ensure_image(ref: str, policy: str, *, platform: str | None = None) -> None:
    """``run``/``create --pull``: ``always`` pulls, ``missing`` pulls what is not local (saying so
    as docker does), ``never`` leaves a missing image to fail the create."""
    from containerkit.errors import NotFound

    if policy == "never":
        return
    if policy == "missing":
        try:
            engine().images.get(ref)
            return
        except NotFound:
            print(f"Unable to find image '{_familiar(ref)}' locally", file=sys.stderr, flush=True)
    pull_image(ref, platform=platform, err=True)


def _familiar(ref: str) -> str:
    from containerkit.engine.frontend import parse_image_reference

    return parse_image_reference(ref).familiar


@click.command()
@click.option("--platform", metavar="OS[/ARCH[/VARIANT]]", help="Pull the image for this platform.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.argument("name")
def pull(name: str, platform: str | None, quiet: bool) -> None:
    """Download an image from a registry."""
    pull_image(name, platform=platform, quiet=quiet)
    click.echo(_canonical(name))


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.argument("name")
def push(name: str, quiet: bool) -> None:
    """Upload an image to a registry."""
    from containerkit.cli._progress import LayerProgress
    from containerkit.engine.frontend import parse_image_reference

    ref = parse_image_reference(name)
    if ref.digest is not None:
        raise CliError(f"cannot push a digest reference: {name}", USAGE_ERROR)
    auth = _auth_for(name)
    if quiet:
        engine().images.push(name, auth=auth)
        click.echo(ref.familiar)
        return
    with LayerProgress() as progress:
        engine().images.push(name, auth=auth, progress=progress)


def _read_password(password: str | None, password_stdin: bool, username: str | None) -> str | None:
    if password and password_stdin:
        raise CliError("--password and --password-stdin are mutually exclusive", USAGE_ERROR)
    if password_stdin:
        if not username:
            raise CliError("Must provide --username with --password-stdin", USAGE_ERROR)
        return sys.stdin.read().rstrip("\n").rstrip("\r")
    if password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    return password


@click.command()
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.argument("server", required=False)
def login(server: str | None, username: str | None, password: str | None, password_stdin: bool) -> None:
    """Log in to a registry (docker.io when SERVER is left out): the registry checks the
    credentials, then they are stored where docker keeps them."""
    secret = _read_password(password, password_stdin, username)
    if not username:
        username = click.prompt("Username", err=True)
    if not secret:
        if not sys.stdin.isatty():
            raise CliError("Cannot perform an interactive login from a non TTY device", USAGE_ERROR)
        secret = click.prompt("Password", hide_input=True, err=True)
    if not username or not secret:
        raise CliError("Username and password are required", USAGE_ERROR)
    status = engine().registries.login(server or "", username, secret)
    if not backend().local:
        # the daemon checked them and keeps nothing: store what it accepted here, as the docker
        # CLI does after the daemon's answer (the identity token in place of the password)
        from containerkit import RegistryAuth

        fields = backend().client().registries.logged_in(server or "") or {}
        accepted = RegistryAuth(
            username=username,
            password=fields.get("password", ""),
            identity_token=fields.get("identity_token", ""),
        )
        _local_credentials().store(server or "", accepted)
    click.echo(status)


@click.command()
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry (forget its stored credentials)."""
    target = server or DEFAULT_SERVER
    engine().registries.logout(server or "")
    if not backend().local:
        _local_credentials().logout(server or "")
    click.echo(f"Removing login credentials for {target}")
