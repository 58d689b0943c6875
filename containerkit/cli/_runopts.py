"""The options ``run`` and ``create`` share, and their translation into a ContainerSpec."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from containerkit.cli._errors import USAGE_ERROR, CliError
from containerkit.errors import InvalidArgument

if TYPE_CHECKING:
    from containerkit.spec import ContainerSpec, Healthcheck, PortBinding, RestartPolicy

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
        "--restart",
        default="no",
        metavar="POLICY",
        help="Restart policy when the container exits: no, always, unless-stopped, on-failure[:N].",
    ),
    click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random host ports."),
    click.option("--health-cmd", metavar="CMD", help="Command to run to check health (run by the shell)."),
    click.option("--health-interval", metavar="DURATION", help="Time between running the check (e.g. 30s)."),
    click.option("--health-timeout", metavar="DURATION", help="Maximum time to allow one check to run."),
    click.option(
        "--health-start-period", metavar="DURATION", help="Start period for the container to initialize."
    ),
    click.option(
        "--health-start-interval", metavar="DURATION", help="Time between checks during the start period."
    ),
    click.option("--health-retries", type=int, help="Consecutive failures needed to report unhealthy."),
    click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK."),
    click.option(
        "--platform",
        metavar="OS[/ARCH[/VARIANT]]",
        help="The platform the image must be for (e.g. linux/amd64).",
    ),
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


def _ports(published: Iterable[str], exposed: Iterable[str]) -> list[PortBinding]:
    """``-p`` bindings, then (``-P``) every exposed port not published yet, on a free host port."""
    from containerkit.spec import PortBinding

    ports = [parse_port(p) for p in published]
    taken = {(p.container_port, p.protocol) for p in ports}
    for key in exposed:
        number, _, protocol = key.partition("/")
        try:
            binding = PortBinding(container_port=int(number), protocol=protocol or "tcp")  # type: ignore[arg-type]
        except (ValueError, InvalidArgument):
            raise CliError(f"invalid exposed port {key!r} in the image", USAGE_ERROR) from None
        if (binding.container_port, binding.protocol) not in taken:
            ports.append(binding)
    return ports


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


def _security_opts(values: Sequence[str]) -> tuple[list[str], bool]:
    """The docker CLI's ``parseSecurityOpts``: a seccomp profile file is read here and sent as
    its JSON; then ``(the other options, no_new_privileges)`` as the spec keeps them."""
    if not values:  # the common case: no Docker shape code to load for it
        return [], False
    from containerkit.dockerapi.create import inline_seccomp_profile
    from containerkit.engine.frontend import split_no_new_privileges

    result = []
    for opt in values:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise CliError(f'Invalid --security-opt: "{opt}"', USAGE_ERROR)
        try:
            result.append(inline_seccomp_profile(opt))
        except InvalidArgument as exc:
            raise CliError(exc.message, USAGE_ERROR) from None
    try:
        return split_no_new_privileges(result)
    except InvalidArgument as exc:
        raise CliError(exc.message, USAGE_ERROR) from None


def _pids(value: int | None) -> int | None:
    """docker's ``--pids-limit``: -1 is no limit; unset or 0 takes the engine's default (what
    the docker CLI's 0 means to containerkitd)."""
    return None if not value else (value if value > 0 else -1)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str, flag: str) -> float:
    """Go's ``time.ParseDuration`` as the docker CLI reads ``--health-*`` (``1m30s``, ``500ms``),
    in seconds; a bare ``0`` is zero."""
    value = text.strip()
    if value == "0":
        return 0.0
    parts = _DURATION_PART.findall(value)
    if not value or "".join(number + unit for number, unit in parts) != value:
        raise CliError(
            f'invalid argument {text!r} for "{flag}" flag: a duration such as 30s, 1m30s or 500ms',
            USAGE_ERROR,
        )
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


_HEALTH_FLAGS = (
    "health_cmd",
    "health_interval",
    "health_timeout",
    "health_start_period",
    "health_start_interval",
)


def _healthcheck(opts: dict[str, Any]) -> Healthcheck | None:
    """The ``--health-*`` flags as docker's CLI builds them: a command runs with ``CMD-SHELL``,
    unset durations stay 0 (the image's value, else docker's default), ``--no-healthcheck`` is ``NONE``."""
    from containerkit.spec import Healthcheck

    given = [name for name in _HEALTH_FLAGS if opts.get(name) is not None]
    if opts.get("health_retries") is not None:
        given.append("health_retries")
    if opts.get("no_healthcheck"):
        if given:
            raise CliError("--no-healthcheck conflicts with --health-* options", USAGE_ERROR)
        return Healthcheck(test=("NONE",))
    if not given:
        return None
    durations = {
        name: parse_duration(opts[f"health_{name}"], "--health-" + name.replace("_", "-"))
        for name in ("interval", "timeout", "start_period", "start_interval")
        if opts.get(f"health_{name}") is not None
    }
    for name, seconds in durations.items():
        if seconds < 0:
            raise CliError(f"--health-{name.replace('_', '-')} cannot be negative", USAGE_ERROR)
    retries = opts.get("health_retries")
    if retries is not None and retries < 0:
        raise CliError("--health-retries cannot be negative", USAGE_ERROR)
    test = ("CMD-SHELL", opts["health_cmd"]) if opts.get("health_cmd") else ()
    try:
        return Healthcheck(test=test, retries=retries or 0, **durations)
    except InvalidArgument as exc:
        raise CliError(exc.message, USAGE_ERROR) from None


def _restart_policy(text: str) -> RestartPolicy:
    from containerkit.spec import RestartPolicy

    try:
        return RestartPolicy.parse(text)
    except InvalidArgument as exc:
        raise CliError(exc.message, USAGE_ERROR) from None


def build_spec(
    image: str,
    command: tuple[str, ...],
    opts: dict[str, Any],
    *,
    attached: bool = False,
    exposed: Iterable[str] = (),
) -> ContainerSpec:
    """The ContainerSpec for ``run``/``create`` options (``opts`` as click passes them).

    ``attached``: ``run`` without ``-d``; with ``-i`` the container's stdin then closes when ours
    ends (docker's StdinOnce), so ``echo hi | containerkit run -i IMG cat`` finishes.
    ``exposed``: the image's exposed ports (``80/tcp``), published to free host ports with ``-P``.
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
        "ports": _ports(opts["publish"], exposed if opts.get("publish_all") else ()),
        "aliases": opts["network_alias"],
        "dns": opts["dns"],
        "extra_hosts": _pairs(opts["add_host"], ":", "add-host"),
    }
    if opts.get("restart"):
        fields["restart_policy"] = _restart_policy(opts["restart"])
    healthcheck = _healthcheck(opts)
    if healthcheck is not None:
        fields["healthcheck"] = healthcheck
    if opts["network"]:
        fields["network"] = opts["network"]
    if opts["runtime"]:
        fields["runtime"] = opts["runtime"]
    if opts.get("log_driver"):
        fields["log_driver"] = opts["log_driver"]
    if opts.get("log_opt"):
        fields["log_opts"] = _pairs(opts["log_opt"], "=", "log-opt")
    return ContainerSpec(**fields)
