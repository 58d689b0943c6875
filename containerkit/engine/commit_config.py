"""A container's config as dockerd keeps it, and ``docker commit --change``: the Dockerfile
instructions CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME
and WORKDIR applied to it as dockerd's ``BuildFromConfig`` does (words split and variables
expanded by :class:`containerkit.dockerfile.ShellLex`, BuildKit's shell lexer)."""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from containerkit.errors import InvalidArgument

if TYPE_CHECKING:
    from containerkit.dockerfile import ShellLex
    from containerkit.engine.containers import Container

__all__ = ["apply_changes", "container_config"]

_DEFAULT_SHELL = ("/bin/sh", "-c")
_COMMIT_CHANGES = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)
"""The instructions ``docker commit --change`` accepts (moby ``validCommitCommands``)."""


def _env_list(base: Iterable[str], extra: Iterable[tuple[str, str]]) -> list[str]:
    """docker's ``ReplaceOrAppendEnvValues``: a key set again replaces the value in place."""
    out = list(base)
    index = {item.partition("=")[0]: n for n, item in enumerate(out)}
    for key, value in extra:
        if key in index:
            out[index[key]] = f"{key}={value}"
        else:
            index[key] = len(out)
            out.append(f"{key}={value}")
    return out


def container_config(container: Container, image_config: Mapping[str, Any]) -> dict[str, Any]:
    """The container's config as dockerd keeps it (``Config`` of inspect): the image's runtime
    config with what the container was created with laid over it."""
    spec = container.spec
    image = dict(image_config)
    labels = dict(image.get("Labels") or {})
    labels.update(spec.labels)
    exposed = dict(image.get("ExposedPorts") or {})
    for binding in spec.ports:
        exposed.setdefault(binding.key, {})
    volumes = dict(image.get("Volumes") or {})
    volumes.update({m.target: {} for m in spec.mounts if m.type == "volume" and not m.source})
    entrypoint = list(spec.entrypoint) if spec.entrypoint is not None else image.get("Entrypoint")
    if spec.command is not None:
        cmd: list[str] | None = list(spec.command)
    elif spec.entrypoint is not None:
        cmd = None  # an entrypoint given at create drops the image's command, as docker does
    else:
        cmd = image.get("Cmd")
    config: dict[str, Any] = {
        "Hostname": spec.hostname or container.id[:12],
        "Domainname": "",
        "User": spec.user if spec.user is not None else image.get("User") or "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": spec.tty,
        "OpenStdin": spec.stdin_open,
        "StdinOnce": spec.stdin_once,
        "Env": _env_list(image.get("Env") or (), spec.env),
        "Cmd": cmd or None,
        "Image": container.image,
        "Volumes": volumes or None,
        "WorkingDir": spec.workdir or image.get("WorkingDir") or "",
        "Entrypoint": entrypoint or None,
        "OnBuild": image.get("OnBuild"),
        "Labels": labels,
    }
    if exposed:
        config["ExposedPorts"] = exposed
    stop_signal = spec.stop_signal or image.get("StopSignal")
    if stop_signal:
        config["StopSignal"] = stop_signal
    if spec.healthcheck is not None:
        config["Healthcheck"] = spec.healthcheck.to_wire()
    elif image.get("Healthcheck"):
        config["Healthcheck"] = image["Healthcheck"]
    for key in ("Shell", "ArgsEscaped"):
        if image.get(key):
            config[key] = image[key]
    return config


@functools.cache
def _lexer() -> ShellLex:
    """Loaded by the first ``--change``: every Engine imports this module, and the Dockerfile
    language costs each fresh interpreter (CLI command, exit command) milliseconds."""
    from containerkit.dockerfile import ShellLex

    return ShellLex()


def _words(text: str, env: Mapping[str, str]) -> list[str]:
    """Words as BuildKit's shell lexer splits and expands them (quotes, escapes, ``${v:-w}``...)."""
    return _lexer().expand_words(text, env)


def _json_or_none(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _pairs(instruction: str, rest: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """``ENV``/``LABEL`` arguments: ``k=v k2="v 2"``, or the old ``k value with spaces``."""
    words = _words(rest, env)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if instruction == "LABEL" or not value.strip():
            raise InvalidArgument(f"{instruction} names must be followed by '=' and a value: {rest!r}")
        return [(key, " ".join(_words(value, env)))]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"{instruction}: {word!r} is not of the form key=value")
        pairs.append((key, value))
    return pairs


_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def _go_duration(flag: str, text: str) -> int:
    """A Go duration (``30s``, ``1m30s``) in nanoseconds."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f"HEALTHCHECK --{flag}: invalid duration {text!r}")
    return int(total)


_HEALTH_FLAGS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
    "retries": "Retries",
}


def _healthcheck(rest: str) -> dict[str, Any]:
    """``HEALTHCHECK [--interval=D ...] CMD <command>`` or ``HEALTHCHECK NONE`` as docker's
    ``Healthcheck`` (durations in nanoseconds)."""
    check: dict[str, Any] = {}
    rest = rest.strip()
    while rest.startswith("--"):
        flag_text, _, rest = rest.partition(" ")
        rest = rest.strip()
        flag, _, value = flag_text[2:].partition("=")
        key = _HEALTH_FLAGS.get(flag)
        if key is None:
            raise InvalidArgument(f"HEALTHCHECK: unknown flag --{flag}")
        if key == "Retries":
            if not value.isdigit():
                raise InvalidArgument(f"HEALTHCHECK --retries: {value!r} is not a number")
            check[key] = int(value)
        else:
            check[key] = _go_duration(flag, value)
    kind, _, command = rest.partition(" ")
    if kind.upper() == "NONE":
        return {"Test": ["NONE"]}
    command = command.strip()
    if kind.upper() != "CMD" or not command:
        raise InvalidArgument(f"HEALTHCHECK: expected CMD <command> or NONE, got {rest!r}")
    exec_form = _json_or_none(command)
    check["Test"] = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
    return check


def apply_changes(config: Mapping[str, Any], changes: Iterable[str]) -> dict[str, Any]:
    """dockerd's ``BuildFromConfig``: the Dockerfile instructions ``changes`` (CMD, ENTRYPOINT,
    ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) applied in order
    to a docker config. ENTRYPOINT drops the command unless a CMD change came first."""
    out: dict[str, Any] = json.loads(json.dumps(dict(config)))  # a deep copy of plain JSON
    cmd_set = False
    for change in changes:
        text = change.strip()
        if not text:
            continue
        word, _, rest = text.partition(" ")
        instruction, rest = word.upper(), rest.strip()
        if instruction not in _COMMIT_CHANGES:
            raise InvalidArgument(f"{word.lower()} is not a valid change command")
        env = dict(item.partition("=")[::2] for item in out.get("Env") or ())
        shell = out.get("Shell") or list(_DEFAULT_SHELL)
        if instruction in ("CMD", "ENTRYPOINT"):
            exec_form = _json_or_none(rest)
            value = exec_form if exec_form is not None else [*shell, rest]
            if instruction == "CMD":
                out["Cmd"], cmd_set = value, True
            else:
                out["Entrypoint"] = value if rest else None
                if not cmd_set:
                    out["Cmd"] = None
            continue
        if not rest:
            raise InvalidArgument(f"{instruction} requires at least one argument")
        if instruction == "ENV":
            out["Env"] = _env_list(out.get("Env") or (), _pairs("ENV", rest, env))
        elif instruction == "LABEL":
            labels = dict(out.get("Labels") or {})
            labels.update(_pairs("LABEL", rest, env))
            out["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(out.get("ExposedPorts") or {})
            for item in _words(rest, env):
                port, _, proto = item.partition("/")
                low, _, high = port.partition("-")
                if not low.isdigit() or (high and not high.isdigit()):
                    raise InvalidArgument(f"EXPOSE: invalid port {item!r}")
                for number in range(int(low), int(high or low) + 1):
                    ports[f"{number}/{(proto or 'tcp').lower()}"] = {}
            out["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            items = _json_or_none(rest)
            volumes = dict(out.get("Volumes") or {})
            for item in items if items is not None else _words(rest, env):
                if not item.strip():
                    raise InvalidArgument("VOLUME specified can not be an empty string")
                volumes[item] = {}
            out["Volumes"] = volumes
        elif instruction == "WORKDIR":
            path = " ".join(_words(rest, env))
            out["WorkingDir"] = posixpath.normpath(posixpath.join(out.get("WorkingDir") or "/", path))
        elif instruction in ("USER", "STOPSIGNAL"):
            out["User" if instruction == "USER" else "StopSignal"] = " ".join(_words(rest, env))
        elif instruction == "ONBUILD":
            trigger, _, args = rest.partition(" ")
            if trigger.upper() in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidArgument(f"{trigger.upper()} isn't allowed as an ONBUILD trigger")
            out["OnBuild"] = [*(out.get("OnBuild") or ()), f"{trigger.upper()} {args.strip()}".strip()]
        elif instruction == "HEALTHCHECK":
            out["Healthcheck"] = _healthcheck(rest)
    return out
