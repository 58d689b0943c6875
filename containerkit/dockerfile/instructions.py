"""Typed Dockerfile instructions and stages, checked as BuildKit's ``instructions/parse.go`` checks them.

``parse(text)`` gives a ``Dockerfile``: its directives, the ARGs before the first FROM
(``global_args``) and its stages, each a ``Stage`` with its instructions in order. Every
instruction is a frozen object with ``keyword`` (upper case), ``line``/``end_line`` (1-based),
``original`` (the instruction's source text, continuations joined), its ``flags`` as written,
its parsed flags and arguments, and any heredocs. Variables are not expanded here: that is
the builder's step, with ``ShellLex`` (see ``lexer.py`` for which arguments it expands).
Errors are ``DockerfileSyntaxError``: ``dockerfile parse error on line N: <BuildKit's words>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from containerkit.errors import InvalidArgument

from . import _go
from ._flags import FlagError, Flags, suggest
from .errors import DockerfileSyntaxError
from .mounts import MountError, parse_mount
from .parser import Heredoc, Node, ParseResult, chomp_heredoc_content, parse_heredoc, parse_tree

__all__ = [
    "Add",
    "Arg",
    "ArgDefinition",
    "Cmd",
    "Copy",
    "Dockerfile",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "InlineFile",
    "Instruction",
    "KeyValue",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "Shell",
    "SourceContent",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "parse",
    "parse_instruction",
]


class _Error(Exception):
    """An instruction's error, before the line is attached."""


@attrs.frozen(kw_only=True)
class Instruction:
    """What every instruction has: where it is and how it was written."""

    keyword: ClassVar[str] = ""
    line: int
    end_line: int
    original: str
    flags: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()
    comments: tuple[str, ...] = ()


@attrs.frozen
class KeyValue:
    """One ``key=value`` of ENV or LABEL; ``no_delim`` for the legacy ``ENV key value`` form."""

    key: str
    value: str
    no_delim: bool = False


@attrs.frozen
class ArgDefinition:
    """One name of an ARG, with its default (None when it has none, "" for ``name=``)."""

    key: str
    value: str | None = None


@attrs.frozen
class SourceContent:
    """A heredoc given as a COPY/ADD source: written to ``path`` with ``data``."""

    path: str
    data: str
    expand: bool


@attrs.frozen
class InlineFile:
    """A heredoc of a RUN (or CMD/ENTRYPOINT): its name and content; ``chomp`` for ``<<-``."""

    name: str
    data: str
    chomp: bool


@attrs.frozen(kw_only=True)
class From(Instruction):
    """``FROM [--platform=p] base [AS name]``; ``name`` lower-cased as BuildKit compares it."""

    keyword: ClassVar[str] = "FROM"
    base: str
    name: str | None = None
    platform: str | None = None


@attrs.frozen(kw_only=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDefinition, ...]


@attrs.frozen(kw_only=True)
class Env(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[KeyValue, ...]


@attrs.frozen(kw_only=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[KeyValue, ...]


@attrs.frozen(kw_only=True)
class Maintainer(Instruction):
    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@attrs.frozen(kw_only=True)
class _CommandLine(Instruction):
    """RUN, CMD, ENTRYPOINT: ``command`` is the exec-form list, or one string in shell form."""

    command: tuple[str, ...]
    prepend_shell: bool
    files: tuple[InlineFile, ...] = ()

    @property
    def shell_form(self) -> bool:
        return self.prepend_shell


@attrs.frozen(kw_only=True)
class Run(_CommandLine):
    """RUN; ``mounts``/``devices`` are the raw ``--mount``/``--device`` values (see ``mounts.py``)."""

    keyword: ClassVar[str] = "RUN"
    mounts: tuple[str, ...] = ()
    network: str = "default"
    security: str = "sandbox"
    devices: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Cmd(_CommandLine):
    keyword: ClassVar[str] = "CMD"


@attrs.frozen(kw_only=True)
class Entrypoint(_CommandLine):
    """ENTRYPOINT; an empty ``command`` (``ENTRYPOINT []``) clears the entrypoint."""

    keyword: ClassVar[str] = "ENTRYPOINT"


@attrs.frozen(kw_only=True)
class _SourcesAndDest(Instruction):
    sources: tuple[str, ...]
    dest: str
    contents: tuple[SourceContent, ...] = ()
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Copy(_SourcesAndDest):
    """COPY; ``from_`` is ``--from`` (a stage name or index, or an image)."""

    keyword: ClassVar[str] = "COPY"
    from_: str = ""
    parents: bool = False


@attrs.frozen(kw_only=True)
class Add(_SourcesAndDest):
    """ADD; ``unpack``/``keep_git_dir`` are None unless the flag was given."""

    keyword: ClassVar[str] = "ADD"
    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@attrs.frozen(kw_only=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@attrs.frozen(kw_only=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str


@attrs.frozen(kw_only=True)
class Expose(Instruction):
    """EXPOSE; ``ports`` sorted as BuildKit sorts them (``80``, ``53/udp``...)."""

    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    volumes: tuple[str, ...]


@attrs.frozen(kw_only=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@attrs.frozen(kw_only=True)
class Healthcheck(Instruction):
    """HEALTHCHECK; ``test`` as the image config stores it (``["NONE"]``, ``["CMD", ...]``,
    ``["CMD-SHELL", "cmd"]``); durations in nanoseconds (0: not set), as the config stores them."""

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@attrs.frozen(kw_only=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Onbuild(Instruction):
    """ONBUILD; ``expression`` is the trigger's source, kept for the image config's OnBuild.

    ``trigger`` parses it with ``escape`` (this file's escape character); a build FROM the
    image parses the stored string with the default ``\\``, as BuildKit and moby do, so a
    bad trigger fails there and not here."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    escape: str = "\\"

    @property
    def trigger(self) -> Instruction:
        prefix = "" if self.escape == "\\" else f"# escape={self.escape}\n"
        tree = parse_tree(prefix + self.expression).root
        return parse_instruction(tree.children[0])


@attrs.frozen
class Stage:
    """One build stage: its FROM and the instructions after it."""

    name: str | None
    base: str
    platform: str | None
    instructions: tuple[Instruction, ...]
    from_instruction: From


@attrs.frozen
class Dockerfile:
    """A parsed Dockerfile; ``dump()`` prints its syntax tree as BuildKit's parser tests do."""

    directives: dict[str, str]
    escape: str
    global_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...]
    tree: Node = attrs.field(eq=False, repr=False)

    @property
    def syntax(self) -> str | None:
        return self.directives.get("syntax")

    def dump(self) -> str:
        return self.tree.dump()

    def stage(self, target: str) -> int:
        """The index of the stage a ``--target`` names (by name, case-insensitive)."""
        wanted = target.lower()
        for index, stage in enumerate(self.stages):
            if stage.name == wanted:
                return index
        raise InvalidArgument(f"failed to reach build target {target} in Dockerfile")


_VALID_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*\Z")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_INSTRUCTION_NAMES = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
]


@attrs.frozen
class _Request:
    node: Node
    args: list[str]
    flags: Flags
    escape: str

    @property
    def json(self) -> bool:
        return self.node.attributes.get("json", False)

    def common(self) -> dict[str, Any]:
        return {
            "line": self.node.start_line,
            "end_line": self.node.end_line,
            "original": self.node.original,
            "flags": tuple(self.node.flags),
            "heredocs": tuple(self.node.heredocs),
            "comments": tuple(self.node.comments),
        }


def _at_least_one(command: str) -> _Error:
    return _Error(f"{command} requires at least one argument")


def _exactly_one(command: str) -> _Error:
    return _Error(f"{command} requires exactly one argument")


def _no_destination(command: str) -> _Error:
    return _Error(
        f"{command} requires at least two arguments, but only one was provided. "
        "Destination could not be determined"
    )


def _kvps(args: list[str], command: str) -> tuple[KeyValue, ...]:
    if not args:
        raise _at_least_one(command)
    if len(args) % 3 != 0:
        raise _Error(f"Bad input to {command}, too many arguments")
    pairs = []
    for j in range(0, len(args), 3):
        if args[j] == "":
            raise _Error(f"{command} names can not be blank")
        pairs.append(KeyValue(args[j], args[j + 1], no_delim=args[j + 2] == ""))
    return tuple(pairs)


def _json_args(args: list[str], json: bool) -> tuple[str, ...]:
    if not args:
        return ()
    if json:
        return tuple(args)
    return (" ".join(args),)


def _parse_env(req: _Request) -> Instruction:
    req.flags.parse()
    return Env(pairs=_kvps(req.args, "ENV"), **req.common())


def _parse_label(req: _Request) -> Instruction:
    req.flags.parse()
    return Label(pairs=_kvps(req.args, "LABEL"), **req.common())


def _parse_maintainer(req: _Request) -> Instruction:
    if len(req.args) != 1:
        raise _exactly_one("MAINTAINER")
    req.flags.parse()
    return Maintainer(maintainer=req.args[0], **req.common())


def _sources_and_dest(req: _Request, command: str) -> dict[str, Any]:
    sources, dest = req.args[:-1], req.args[-1]
    if parse_heredoc(dest) is not None:
        raise _Error(f"{command} cannot accept a heredoc as a destination")
    lookup = {heredoc.name: heredoc for heredoc in req.node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for source in sources:
        heredoc = parse_heredoc(source)
        if heredoc is None:
            paths.append(source)
            continue
        found = lookup.get(heredoc.name)
        data = found.content if found is not None else ""
        if heredoc.chomp:
            data = chomp_heredoc_content(data)
        contents.append(SourceContent(path=heredoc.name, data=data, expand=heredoc.expand))
    return {"sources": tuple(paths), "dest": dest, "contents": tuple(contents)}


def _parse_add(req: _Request) -> Instruction:
    if len(req.args) < 2:
        raise _no_destination("ADD")
    flags = req.flags
    flags.add_string("chown")
    flags.add_string("chmod")
    flags.add_bool("link")
    flags.add_bool("keep-git-dir")
    flags.add_string("checksum")
    flags.add_bool("unpack")
    flags.add_strings("exclude")
    flags.parse()
    return Add(
        **_sources_and_dest(req, "ADD"),
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.bool("link"),
        checksum=flags.string("checksum"),
        excludes=flags.strings("exclude"),
        keep_git_dir=flags.bool("keep-git-dir") if "keep-git-dir" in flags.used else None,
        unpack=flags.bool("unpack") if "unpack" in flags.used else None,
        **req.common(),
    )


def _parse_copy(req: _Request) -> Instruction:
    if len(req.args) < 2:
        raise _no_destination("COPY")
    flags = req.flags
    flags.add_string("chown")
    flags.add_string("from")
    flags.add_string("chmod")
    flags.add_bool("link")
    flags.add_strings("exclude")
    flags.add_bool("parents")
    flags.parse()
    return Copy(
        **_sources_and_dest(req, "COPY"),
        from_=flags.string("from"),
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.bool("link"),
        parents=flags.bool("parents"),
        excludes=flags.strings("exclude"),
        **req.common(),
    )


def _parse_from(req: _Request) -> Instruction:
    args = req.args
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _VALID_STAGE_NAME.match(name):
            raise _Error(
                f"invalid name for build stage: {_go.quote(args[2])}, "
                "name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise _Error("FROM requires either one or three arguments")
    req.flags.add_string("platform")
    req.flags.parse()
    platform = req.flags.string("platform") or None
    return From(base=args[0], name=name, platform=platform, **req.common())


def _parse_onbuild(req: _Request) -> Instruction:
    if not req.args:
        raise _at_least_one("ONBUILD")
    req.flags.parse()
    trigger = _go.trim_space(req.args[0]).upper()
    if trigger == "ONBUILD":
        raise _Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise _Error(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", req.node.original, count=1)
    for heredoc in req.node.heredocs:
        expression += "\n" + heredoc.content + heredoc.name
    return Onbuild(expression=expression, escape=req.escape, **req.common())


def _parse_workdir(req: _Request) -> Instruction:
    if len(req.args) != 1:
        raise _exactly_one("WORKDIR")
    req.flags.parse()
    return Workdir(path=req.args[0], **req.common())


def _files(req: _Request) -> tuple[InlineFile, ...]:
    return tuple(InlineFile(h.name, h.content, h.chomp) for h in req.node.heredocs)


def _parse_run(req: _Request) -> Instruction:
    flags = req.flags
    flags.add_strings("device")
    flags.add_strings("mount")
    flags.add_string("network", "default")
    flags.add_string("security", "sandbox")
    flags.parse()
    network = flags.string("network")
    security = flags.string("security")
    mounts = flags.strings("mount")
    for mount in mounts:
        parse_mount(mount, None)
    if network not in ("default", "none", "host"):
        raise _Error(f"invalid network mode {_go.quote(network)}")
    if security not in ("sandbox", "insecure"):
        raise _Error(f"security {_go.quote(security)} is not valid")
    return Run(
        command=_json_args(req.args, req.json),
        prepend_shell=not req.json,
        files=_files(req),
        mounts=mounts,
        network=network,
        security=security,
        devices=flags.strings("device"),
        **req.common(),
    )


def _parse_cmd(req: _Request) -> Instruction:
    req.flags.parse()
    return Cmd(
        command=_json_args(req.args, req.json),
        prepend_shell=not req.json,
        files=_files(req),
        **req.common(),
    )


def _parse_entrypoint(req: _Request) -> Instruction:
    req.flags.parse()
    return Entrypoint(
        command=_json_args(req.args, req.json),
        prepend_shell=not req.json,
        files=_files(req),
        **req.common(),
    )


def _interval(flags: Flags, name: str) -> int:
    value = flags.string(name)
    if value == "":
        return 0
    nanoseconds = _go.parse_duration(value, _Error)
    if nanoseconds == 0:
        return 0
    if nanoseconds < 1_000_000:
        raise _Error(f'Interval "{name}" cannot be less than 1ms')
    return nanoseconds


def _parse_healthcheck(req: _Request) -> Instruction:
    if not req.args:
        raise _at_least_one("HEALTHCHECK")
    kind = req.args[0].upper()
    args = req.args[1:]
    if kind == "NONE":
        if args:
            raise _Error("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(test=("NONE",), **req.common())
    flags = req.flags
    for name in ("interval", "timeout", "start-period", "start-interval", "retries"):
        flags.add_string(name)
    flags.parse()
    if kind != "CMD":
        raise _Error(f"Unknown type {_go.quote(kind)} in HEALTHCHECK (try CMD)")
    command = _json_args(args, req.json)
    if not command:
        raise _Error("Missing command after HEALTHCHECK CMD")
    test = (("CMD" if req.json else "CMD-SHELL"), *command)
    interval = _interval(flags, "interval")
    timeout = _interval(flags, "timeout")
    start_period = _interval(flags, "start-period")
    start_interval = _interval(flags, "start-interval")
    retries = 0
    text = flags.string("retries")
    if text != "":
        retries = _parse_int32(text)
        if retries < 0:
            raise _Error(f"--retries cannot be negative ({retries})")
    return Healthcheck(
        test=test,
        interval=interval,
        timeout=timeout,
        start_period=start_period,
        start_interval=start_interval,
        retries=retries,
        **req.common(),
    )


_INT = re.compile(r"[+-]?[0-9]+\Z")


def _parse_int32(text: str) -> int:
    """Go's ``strconv.ParseInt(s, 10, 32)``, with its error words."""
    if not _INT.match(text):
        raise _Error(f"strconv.ParseInt: parsing {_go.quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise _Error(f"strconv.ParseInt: parsing {_go.quote(text)}: value out of range")
    return value


def _parse_expose(req: _Request) -> Instruction:
    if not req.args:
        raise _at_least_one("EXPOSE")
    req.flags.parse()
    return Expose(ports=tuple(sorted(req.args)), **req.common())


def _parse_user(req: _Request) -> Instruction:
    if len(req.args) != 1:
        raise _exactly_one("USER")
    req.flags.parse()
    return User(user=req.args[0], **req.common())


def _parse_volume(req: _Request) -> Instruction:
    if not req.args:
        raise _at_least_one("VOLUME")
    req.flags.parse()
    volumes = []
    for value in req.args:
        value = _go.trim_space(value)
        if value == "":
            raise _Error("VOLUME specified can not be an empty string")
        volumes.append(value)
    return Volume(volumes=tuple(volumes), **req.common())


def _parse_stopsignal(req: _Request) -> Instruction:
    if len(req.args) != 1:
        raise _exactly_one("STOPSIGNAL")
    return StopSignal(signal=req.args[0], **req.common())


def _parse_arg(req: _Request) -> Instruction:
    if not req.args:
        raise _at_least_one("ARG")
    definitions = []
    for arg in req.args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            if key == "":
                raise _Error("ARG names can not be blank")
            definitions.append(ArgDefinition(key, value))
        else:
            definitions.append(ArgDefinition(arg))
    return Arg(args=tuple(definitions), **req.common())


def _parse_shell(req: _Request) -> Instruction:
    req.flags.parse()
    shell = _json_args(req.args, req.json)
    if not shell:
        raise _at_least_one("SHELL")
    if not req.json:
        raise _Error("SHELL requires the arguments to be in JSON form")
    return Shell(shell=shell, **req.common())


_PARSERS: dict[str, Callable[[_Request], Instruction]] = {
    "add": _parse_add,
    "arg": _parse_arg,
    "cmd": _parse_cmd,
    "copy": _parse_copy,
    "entrypoint": _parse_entrypoint,
    "env": _parse_env,
    "expose": _parse_expose,
    "from": _parse_from,
    "healthcheck": _parse_healthcheck,
    "label": _parse_label,
    "maintainer": _parse_maintainer,
    "onbuild": _parse_onbuild,
    "run": _parse_run,
    "shell": _parse_shell,
    "stopsignal": _parse_stopsignal,
    "user": _parse_user,
    "volume": _parse_volume,
    "workdir": _parse_workdir,
}


def parse_instruction(node: Node, escape: str = "\\") -> Instruction:
    """One typed instruction from one node of the tree; raises ``DockerfileSyntaxError``."""
    parser = _PARSERS.get(node.value.lower())
    try:
        if parser is None:
            message = f"unknown instruction: {node.value}"
            match = suggest(node.value, _INSTRUCTION_NAMES, case_sensitive=False)
            raise _Error(message + (f" (did you mean {match}?)" if match else ""))
        return parser(_Request(node, node.args(), Flags(list(node.flags)), escape))
    except (_Error, FlagError, MountError) as error:
        raise DockerfileSyntaxError(str(error), node.start_line) from None


def parse(text: str | bytes) -> Dockerfile:
    """Parse a Dockerfile into its directives, global ARGs and stages (BuildKit's rules and errors)."""
    result: ParseResult = parse_tree(text)
    global_args: list[Arg] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    for node in result.root.children:
        instruction = parse_instruction(node, result.escape)
        if not stages and isinstance(instruction, Arg):
            global_args.append(instruction)
            continue
        if isinstance(instruction, From):
            if stages:
                stages[-1] = attrs.evolve(stages[-1], instructions=tuple(current))
            current = []
            stages.append(Stage(instruction.name, instruction.base, instruction.platform, (), instruction))
            continue
        if not stages:
            raise DockerfileSyntaxError("no build stage in current context", node.start_line)
        current.append(instruction)
    if stages:
        stages[-1] = attrs.evolve(stages[-1], instructions=tuple(current))
    return Dockerfile(
        directives=result.directives,
        escape=result.escape,
        global_args=tuple(global_args),
        stages=tuple(stages),
        warnings=tuple(result.warnings),
        tree=result.root,
    )
