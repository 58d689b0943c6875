"""The options ``run`` and ``create`` share, and their translation into a ContainerSpec."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from containerkit.cli._errors import USAGE_ERROR, CliError
from containerkit.errors import InvalidArgument

if TYPE_CHECKING:
    from containerkit.spec import ContainerSpec, PortBinding

__all__ = ["build_spec", "container_options", "parse_port"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS: list[Callable[[F], F]] = [
    click.option("--name", help="Assign a name to the container."),
    click.option("-e", "--env", multiple=True, metavar="NAME[=VALUE]", help="Set environment variables."),
    click.option(
        "--env-file", multiple=True, type=click.Path(dir_okay=False), help="Read a file of NAME=VALUE."
    ),
    click.option("-v", "--volume", multiple=True, metavar="SRC:DST[:ro]", help="Bind mount a volume."),
    click.option("--tmpfs", multiple=True, metavar="DST", help="Mount a tmpfs directory."),
    click.option(
        "-p", "--publish", multiple=True, metavar="[IP:][HOST:]PORT[/PROTO]", help="Publish a port."
    ),
    click.option("--network", "--net", help="Connect the container to a network."),
    click.option("--network-alias", multiple=True, help="Add a network-scoped alias."),
    click.option("--dns", multiple=True, help="Set custom DNS servers."),
    click.option("--add-host", multiple=True, metavar="HOST:IP", help="Add a custom host-to-IP mapping."),
    click.option("-w", "--workdir", help="Working directory inside the container."),
    click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
    click.option("-h", "--hostname", help="Container host name."),
    click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
    click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
    click.option("-m", "--memory", help="Memory limit (e.g. 64m)."),
    click.option("--memory-swap", help="Swap limit equal to memory plus swap."),
    click.option("--cpus", type=float, help="Number of CPUs."),
    click.option("--cpu-shares", type=int, help="CPU shares (relative weight)."),
    click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)."),
    click.option("--log-driver", help="Logging driver for the container (json-file, local, none)."),
    click.option("--log-opt", multiple=True, metavar="KEY=VALUE", help="Log driver options (max-size...)."),
    click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
    click.option("-l", "--label", multiple=True, metavar="KEY[=VALUE]", help="Set metadata on a container."),
    click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
    click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
    click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
    click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
    click.option("--init", is_flag=True, help="Run an init inside the container that reaps processes."),
    click.option(
        "--userns",
        type=click.Choice(["host", "auto"]),
        help="User namespace: auto (root maps to the containerkit range of /etc/subuid) or host.",
    ),
    click.option(
        "--security-opt",
        multiple=True,
        help="Security options: seccomp=unconfined|PROFILE.json, no-new-privileges, apparmor=NAME, label=...",
    ),
    click.option("--stop-signal", help="Signal to stop the container."),
    click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container."),
    click.option(
        "--runtime", type=click.Choice(["builtin", "runc", "crun"]), help="Runtime for this container."
    ),
    click.option(
        "--rm", "auto_remove", is_flag=True, help="Automatically remove the container when it exits."
    ),
    click.option(
        "--pull",
        type=click.Choice(["missing", "always", "never"]),
        default="missing",
        show_default=True,
        help="Pull the image before creating: when it is missing, always, or never.",
    ),
]


def container_options(func: F) -> F:
    """Decorate a command with every option of ``docker create``."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def parse_port(text: str) -> PortBinding:
    """``80``, ``8080:80``, ``127.0.0.1:8080:80/udp``, ``127.0.0.1::80``."""
    from containerkit.spec import parse_publish

    try:
        return parse_publish(text)
    except InvalidArgument as exc:
        raise CliError(exc.message, USAGE_ERROR) from None


def _env(values: Iterable[str], files: Iterable[str]) -> list[str]:
    lines: list[str] = []
    for name in files:
        try:
            text = Path(name).read_text()
        except OSError as exc:
            raise CliError(f"cannot read env file {name}: {exc.strerror}", USAGE_ERROR) from None
        lines += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    result = []
    for item in [*lines, *values]:
        if "=" in item:
            result.append(item)
        elif item in os.environ:  # docker: a bare NAME takes the host's value, if any
            result.append(f"{item}={os.environ[item]}")
    return result


def _pairs(values: Iterable[str], sep: str, what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, found, value = item.partition(sep)
        if not key or (what in ("add-host", "log-opt") and not found):
            raise CliError(f"invalid {what} {item!r}", USAGE_ERROR)
        out[key] = value
    return out


def _security_opts(values: Iterable[str]) -> tuple[list[str], bool]:
    """The docker CLI's ``parseSecurityOpts``: a seccomp profile file is read here and sent as
    its JSON; then ``(the other options, no_new_privileges)`` as the spec keeps them."""
    from containerkit.engine.frontend import split_no_new_privileges

    result = []
    for opt in values:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise CliError(f'Invalid --security-opt: "{opt}"', USAGE_ERROR)
        if key == "seccomp" and value not in ("builtin", "unconfined"):
            what = f"seccomp profile ({value})"
            try:
                profile = json.loads(Path(value).read_text())
            except OSError as exc:
                raise CliError(f"opening {what} failed: {exc.strerror}", USAGE_ERROR) from None
            except ValueError as exc:
                raise CliError(f"compacting json for {what} failed: {exc}", USAGE_ERROR) from None
            opt = "seccomp=" + json.dumps(profile, separators=(",", ":"))
        result.append(opt)
    try:
        return split_no_new_privileges(result)
    except InvalidArgument as exc:
        raise CliError(exc.message, USAGE_ERROR) from None


def _pids(value: int | None) -> int | None:
    """docker's ``--pids-limit``: -1 is no limit; unset or 0 takes the engine's default (what
    the docker CLI's 0 means to containerkitd)."""
    return None if not value else (value if value > 0 else -1)


def build_spec(
    image: str, command: tuple[str, ...], opts: dict[str, Any], *, attached: bool = False
) -> ContainerSpec:
    """The ContainerSpec for ``run``/``create`` options (``opts`` as click passes them).

    ``attached``: ``run`` without ``-d``; with ``-i`` the container's stdin then closes when ours
    ends (docker's StdinOnce), so ``echo hi | containerkit run -i IMG cat`` finishes.
    """
    from containerkit.spec import ContainerSpec, Mount, Resources

    mounts = [Mount.parse(v) for v in opts["volume"]]
    mounts += [Mount(type="tmpfs", target=t.split(":", 1)[0]) for t in opts["tmpfs"]]
    entrypoint: tuple[str, ...] | None = None
    if opts["entrypoint"] is not None:
        entrypoint = (opts["entrypoint"],) if opts["entrypoint"] else ()
    security, no_new_privileges = _security_opts(opts["security_opt"])
    fields: dict[str, Any] = {
        "image": image,
        "command": command or None,
        "entrypoint": entrypoint,
        "name": opts["name"],
        "env": _env(opts["env"], opts["env_file"]),
        "workdir": opts["workdir"],
        "user": opts["user"],
        "hostname": opts["hostname"],
        "labels": _pairs(opts["label"], "=", "label"),
        "mounts": mounts,
        "resources": Resources(
            memory=opts["memory"],
            memory_swap=opts["memory_swap"],
            cpus=opts["cpus"],
            cpu_shares=opts["cpu_shares"],
            pids=_pids(opts["pids_limit"]),
        ),
        "tty": opts["tty"],
        "stdin_open": opts["interactive"],
        "stdin_once": opts["interactive"] and attached,
        "read_only": opts["read_only"],
        "cap_add": opts["cap_add"],
        "cap_drop": opts["cap_drop"],
        "privileged": opts["privileged"],
        "no_new_privileges": no_new_privileges,
        "security_opt": security,
        "userns": opts["userns"],
        "init": opts["init"],
        "auto_remove": opts["auto_remove"],
        "stop_signal": opts["stop_signal"],
        "stop_timeout": opts["stop_timeout"],
        "ports": [parse_port(p) for p in opts["publish"]],
        "aliases": opts["network_alias"],
        "dns": opts["dns"],
        "extra_hosts": _pairs(opts["add_host"], ":", "add-host"),
    }
    if opts["network"]:
        fields["network"] = opts["network"]
    if opts["runtime"]:
        fields["runtime"] = opts["runtime"]
    if opts.get("log_driver"):
        fields["log_driver"] = opts["log_driver"]
    if opts.get("log_opt"):
        fields["log_opts"] = _pairs(opts["log_opt"], "=", "log-opt")
    return ContainerSpec(**fields)
