"""Typed instructions: each instruction's arguments, flags and BuildKit's error for misuse.

Expected values and error words are those of BuildKit's ``frontend/dockerfile/instructions``
(parse.go, bflag.go, commands_run*.go) and its parse_test.go / parse_heredoc_test.go.
"""

from __future__ import annotations

import contextlib

import pytest

from containerkit.dockerfile import (
    Add,
    Arg,
    ArgDefinition,
    Cmd,
    Copy,
    DockerfileSyntaxError,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    InlineFile,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    ShellLex,
    SourceContent,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse,
)
from containerkit.dockerfile.instructions import parse_instruction
from containerkit.dockerfile.mounts import MountError, RunMount, parse_mount
from containerkit.dockerfile.parser import Node, _chain, parse_tree
from containerkit.errors import InvalidArgument


def one(line: str) -> Instruction:
    """The single instruction after ``FROM scratch``."""
    dockerfile = parse("FROM scratch\n" + line + "\n")
    (instruction,) = dockerfile.stages[0].instructions
    return instruction


def error(text: str) -> str:
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse(text)
    return str(caught.value)


def test_from_with_platform_and_stage_name() -> None:
    dockerfile = parse(
        "FROM --platform=linux/arm64 alpine:3 AS Builder\nFROM builder\nfrom scratch as final\n"
    )
    first, second, third = dockerfile.stages
    assert (first.name, first.base, first.platform) == ("builder", "alpine:3", "linux/arm64")
    assert isinstance(first.from_instruction, From)
    assert (second.name, second.base, second.platform) == (None, "builder", None)
    assert third.name == "final"
    assert dockerfile.stage("FINAL") == 2
    with pytest.raises(InvalidArgument, match="failed to reach build target nope in Dockerfile"):
        dockerfile.stage("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM\n", "line 1: FROM requires either one or three arguments"),
        ("FROM a b\n", "line 1: FROM requires either one or three arguments"),
        ("FROM a AS 1st\n", 'line 1: invalid name for build stage: "1st", name can\'t start with a number'),
        ("FROM a AS b$c\n", "invalid name for build stage"),
        ("FROM --plaform=x a\n", "line 1: unknown flag: --plaform (did you mean platform?)"),
        ("RUN true\n", "line 1: no build stage in current context"),
        ("ARG a\nENV b=c\n", "line 2: no build stage in current context"),
    ],
)
def test_from_errors(text: str, message: str) -> None:
    assert message in error(text)
    assert error(text).startswith("dockerfile parse error on line ")


def test_global_args_before_the_first_from() -> None:
    dockerfile = parse("ARG A=1 B\nARG C=\nFROM x\nARG A\n")
    assert [a.args for a in dockerfile.global_args] == [
        (ArgDefinition("A", "1"), ArgDefinition("B")),
        (ArgDefinition("C", ""),),
    ]
    assert dockerfile.stages[0].instructions == (
        Arg(line=4, end_line=4, original="ARG A", args=(ArgDefinition("A"),)),
    )
    assert "ARG requires at least one argument" in error("FROM x\nARG\n")
    assert "ARG names can not be blank" in error("FROM x\nARG =v\n")


def test_env_both_forms() -> None:
    env = one('ENV a=1 b="x y" c=$a')
    assert isinstance(env, Env)
    assert env.pairs == (KeyValue("a", "1"), KeyValue("b", '"x y"'), KeyValue("c", "$a"))
    legacy = one("ENV key the rest of it")
    assert isinstance(legacy, Env)
    assert legacy.pairs == (KeyValue("key", "the rest of it", no_delim=True),)
    assert "ENV must have two arguments" in error("FROM x\nENV onlykey\n")
    assert 'Syntax error - can\'t find = in "b". Must be of the form: name=value' in error(
        "FROM x\nENV a=1 b\n"
    )
    assert "ENV requires at least one argument" in error("FROM x\nENV\n")
    assert "ENV names can not be blank" in error("FROM x\nENV =1\n")


def test_label_and_maintainer() -> None:
    label = one('LABEL "com.example"="v 1" other=2')
    assert isinstance(label, Label)
    assert label.pairs == (KeyValue('"com.example"', '"v 1"'), KeyValue("other", "2"))
    maintainer = one("MAINTAINER Jane Doe <jane@example.com>")
    assert isinstance(maintainer, Maintainer)
    assert maintainer.maintainer == "Jane Doe <jane@example.com>"
    assert "MAINTAINER requires exactly one argument" in error("FROM x\nMAINTAINER\n")
    assert "LABEL requires at least one argument" in error("FROM x\nLABEL\n")


def test_run_shell_and_exec_forms() -> None:
    shell = one("RUN echo hello  world")
    assert isinstance(shell, Run)
    assert (shell.command, shell.prepend_shell) == (("echo hello  world",), True)
    exec_form = one('RUN ["echo", "a b"]')
    assert isinstance(exec_form, Run)
    assert (exec_form.command, exec_form.prepend_shell) == (("echo", "a b"), False)
    not_json = one("RUN [echo, hi]")
    assert isinstance(not_json, Run)
    assert (not_json.command, not_json.prepend_shell) == (("[echo, hi]",), True)
    assert "arrays must be comprised of strings only" in error('FROM x\nRUN ["a", 1]\n')


def test_run_flags() -> None:
    run = one("RUN --mount=type=cache,target=/root/.cache --mount=type=tmpfs,target=/t --network=none make")
    assert isinstance(run, Run)
    assert run.mounts == ("type=cache,target=/root/.cache", "type=tmpfs,target=/t")
    assert (run.network, run.security, run.command) == ("none", "sandbox", ("make",))
    assert run.flags == (
        "--mount=type=cache,target=/root/.cache",
        "--mount=type=tmpfs,target=/t",
        "--network=none",
    )
    assert 'invalid network mode "bridge"' in error("FROM x\nRUN --network=bridge true\n")
    assert 'security "root" is not valid' in error("FROM x\nRUN --security=root true\n")
    assert "unknown flag: --mont (did you mean mount?)" in error("FROM x\nRUN --mont=type=bind true\n")
    assert "duplicate flag specified: --network" in error("FROM x\nRUN --network=none --network=host true\n")
    assert "missing a value on flag: --network" in error("FROM x\nRUN --network true\n")
    assert "'from' doesn't support variable expansion" in error(
        "FROM x\nRUN --mount=from=$IMG,target=/m true\n"
    )


def test_run_heredoc_becomes_a_file() -> None:
    dockerfile = parse("FROM x\nRUN <<EOF bash\n  echo hi\nEOF\nRUN 3<<-'END' cat <&3\n\tliteral $x\n\tEND\n")
    first, second = dockerfile.stages[0].instructions
    assert isinstance(first, Run) and isinstance(second, Run)
    assert first.command == ("<<EOF bash",)
    assert first.files == (InlineFile("EOF", "  echo hi\n", False),)
    assert (first.line, first.end_line) == (2, 4)
    assert second.files == (InlineFile("END", "\tliteral $x\n", True),)
    assert second.heredocs[0].expand is False
    assert second.heredocs[0].file_descriptor == 3
    assert "unterminated heredoc" in error("FROM x\nRUN <<EOF\nno end\n")


def test_cmd_and_entrypoint() -> None:
    cmd = one('CMD ["nginx", "-g", "daemon off;"]')
    assert isinstance(cmd, Cmd)
    assert (cmd.command, cmd.shell_form) == (("nginx", "-g", "daemon off;"), False)
    entrypoint = one("ENTRYPOINT exec top -b")
    assert isinstance(entrypoint, Entrypoint)
    assert (entrypoint.command, entrypoint.shell_form) == (("exec top -b",), True)
    cleared = one("ENTRYPOINT []")
    assert isinstance(cleared, Entrypoint)
    assert (cleared.command, cleared.shell_form) == ((), False)


def test_copy_flags_and_sources() -> None:
    copy = one(
        "COPY --from=build --chown=app:app --chmod=0644 --link --parents"
        " --exclude=*.tmp --exclude=x a b* /dst/"
    )
    assert isinstance(copy, Copy)
    assert (copy.from_, copy.chown, copy.chmod, copy.link, copy.parents) == (
        "build",
        "app:app",
        "0644",
        True,
        True,
    )
    assert copy.excludes == ("*.tmp", "x")
    assert (copy.sources, copy.dest) == (("a", "b*"), "/dst/")
    json_form = one('COPY ["a b", "/c d/"]')
    assert isinstance(json_form, Copy)
    assert (json_form.sources, json_form.dest) == (("a b",), "/c d/")
    assert "COPY requires at least two arguments, but only one was provided" in error("FROM x\nCOPY a\n")
    assert "unknown flag: --checksum" in error("FROM x\nCOPY --checksum=sha256:00 a b\n")
    assert "expecting boolean value for flag --link, not: maybe" in error("FROM x\nCOPY --link=maybe a b\n")


def test_copy_heredoc_sources() -> None:
    dockerfile = parse('FROM x\nCOPY <<one <<"two" /dst/\nfirst $x\none\nsecond $x\ntwo\n')
    (copy,) = dockerfile.stages[0].instructions
    assert isinstance(copy, Copy)
    assert copy.sources == ()
    assert copy.contents == (
        SourceContent("one", "first $x\n", True),
        SourceContent("two", "second $x\n", False),
    )
    assert "COPY cannot accept a heredoc as a destination" in error("FROM x\nCOPY a <<EOF\nx\nEOF\n")


def test_add_flags() -> None:
    add = one(
        "ADD --checksum=sha256:abc --chown=1:2 --unpack=false --keep-git-dir https://example.com/a.tar /x/"
    )
    assert isinstance(add, Add)
    assert (add.checksum, add.chown, add.unpack, add.keep_git_dir) == ("sha256:abc", "1:2", False, True)
    assert (add.sources, add.dest) == (("https://example.com/a.tar",), "/x/")
    plain = one("ADD a.tar.gz /")
    assert isinstance(plain, Add)
    assert (plain.unpack, plain.keep_git_dir, plain.link) == (None, None, False)
    assert "unknown flag: --from" in error("FROM x\nADD --from=a b c\n")
    assert "ADD requires at least two arguments" in error("FROM x\nADD\n")


def test_workdir_user_stopsignal() -> None:
    workdir = one("WORKDIR /app dir")
    assert isinstance(workdir, Workdir) and workdir.path == "/app dir"
    user = one("USER app:staff")
    assert isinstance(user, User) and user.user == "app:staff"
    signal = one("STOPSIGNAL SIGTERM")
    assert isinstance(signal, StopSignal) and signal.signal == "SIGTERM"
    assert "WORKDIR requires exactly one argument" in error("FROM x\nWORKDIR\n")
    assert "USER requires exactly one argument" in error("FROM x\nUSER\n")
    assert "STOPSIGNAL requires exactly one argument" in error("FROM x\nSTOPSIGNAL\n")


def test_expose_sorts_and_volume_forms() -> None:
    expose = one("EXPOSE 8080 53/udp 443/tcp")
    assert isinstance(expose, Expose)
    assert expose.ports == ("443/tcp", "53/udp", "8080")
    volume = one("VOLUME /a /b")
    assert isinstance(volume, Volume) and volume.volumes == ("/a", "/b")
    json_volume = one('VOLUME ["/c d"]')
    assert isinstance(json_volume, Volume) and json_volume.volumes == ("/c d",)
    assert "EXPOSE requires at least one argument" in error("FROM x\nEXPOSE\n")
    assert "VOLUME specified can not be an empty string" in error('FROM x\nVOLUME [" "]\n')


def test_healthcheck() -> None:
    check = one(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s"
        " --start-interval=2s --retries=3 CMD curl -f x"
    )
    assert isinstance(check, Healthcheck)
    assert check.test == ("CMD-SHELL", "curl -f x")
    assert (check.interval, check.timeout, check.start_period, check.start_interval, check.retries) == (
        90_000_000_000,
        500_000_000,
        1_500_000_000,
        2_000_000_000,
        3,
    )
    exec_form = one('HEALTHCHECK CMD ["/bin/check", "-q"]')
    assert isinstance(exec_form, Healthcheck) and exec_form.test == ("CMD", "/bin/check", "-q")
    none = one("HEALTHCHECK NONE")
    assert isinstance(none, Healthcheck) and none.test == ("NONE",)
    assert "HEALTHCHECK NONE takes no arguments" in error("FROM x\nHEALTHCHECK NONE x\n")
    assert 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)' in error("FROM x\nHEALTHCHECK CONNECT x\n")
    assert "Missing command after HEALTHCHECK CMD" in error("FROM x\nHEALTHCHECK CMD\n")
    assert 'Interval "interval" cannot be less than 1ms' in error(
        "FROM x\nHEALTHCHECK --interval=10us CMD x\n"
    )
    assert 'time: missing unit in duration "5"' in error("FROM x\nHEALTHCHECK --timeout=5 CMD x\n")
    assert "--retries cannot be negative (-1)" in error("FROM x\nHEALTHCHECK --retries=-1 CMD x\n")
    assert 'parsing "x": invalid syntax' in error("FROM x\nHEALTHCHECK --retries=x CMD x\n")
    assert "unknown flag: --intervl (did you mean interval?)" in error(
        "FROM x\nHEALTHCHECK --intervl=1s CMD x\n"
    )


def test_shell_is_json_only() -> None:
    shell = one('SHELL ["/bin/bash", "-o", "pipefail", "-c"]')
    assert isinstance(shell, Shell) and shell.shell == ("/bin/bash", "-o", "pipefail", "-c")
    assert "SHELL requires the arguments to be in JSON form" in error("FROM x\nSHELL /bin/bash -c\n")
    assert "SHELL requires at least one argument" in error("FROM x\nSHELL []\n")


def test_onbuild_wraps_an_instruction() -> None:
    onbuild = one("ONBUILD COPY --chown=1 . /app")
    assert isinstance(onbuild, Onbuild)
    assert onbuild.expression == "COPY --chown=1 . /app"
    trigger = onbuild.trigger
    assert isinstance(trigger, Copy) and (trigger.chown, trigger.sources, trigger.dest) == (
        "1",
        (".",),
        "/app",
    )
    heredoc = parse("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n").stages[0].instructions[0]
    assert isinstance(heredoc, Onbuild)
    assert heredoc.expression == "RUN <<EOF\necho hi\nEOF"
    assert isinstance(heredoc.trigger, Run) and heredoc.trigger.files == (
        InlineFile("EOF", "echo hi\n", False),
    )
    assert "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed" in error("FROM x\nONBUILD ONBUILD RUN x\n")
    assert "FROM isn't allowed as an ONBUILD trigger" in error("FROM x\nONBUILD FROM y\n")
    assert "MAINTAINER isn't allowed as an ONBUILD trigger" in error("FROM x\nonbuild maintainer me\n")
    assert "ONBUILD requires at least one argument" in error("FROM x\nONBUILD\n")


def test_unknown_instruction_with_a_suggestion() -> None:
    assert error("FROM x\nXYZZY bar\n") == "dockerfile parse error on line 2: unknown instruction: XYZZY"
    assert error("FROM x\nFOO bar\n").endswith("unknown instruction: FOO (did you mean FROM?)")
    assert error("FROM x\nCOPPY a b\n").endswith("unknown instruction: COPPY (did you mean COPY?)")
    assert error("FROM x\nruun a\n").endswith("unknown instruction: ruun (did you mean run?)")


def test_instruction_names_are_case_insensitive_and_keep_their_source() -> None:
    dockerfile = parse("from alpine\n  run   echo \\\n    continued\nEnV A=b\n")
    run, env = dockerfile.stages[0].instructions
    assert isinstance(run, Run) and isinstance(env, Env)
    assert run.keyword == "RUN" and run.original == "run   echo     continued"
    assert (run.line, run.end_line, env.line) == (2, 3, 4)


def test_directives_escape_and_continuations() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM x\nRUN dir c:\\ `\n  && echo done\n"
    )
    dockerfile = parse(text)
    assert dockerfile.directives == {"syntax": "docker/dockerfile:1", "escape": "`", "check": "skip=all"}
    assert dockerfile.escape == "`" and dockerfile.syntax == "docker/dockerfile:1"
    (run,) = dockerfile.stages[0].instructions
    assert isinstance(run, Run) and run.command == ("dir c:\\   && echo done",)
    # a directive after a comment or instruction is an ordinary comment
    late = parse("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n")
    assert late.escape == "\\" and late.directives == {}
    assert "only one escape parser directive can be used" in error("# escape=`\n# escape=\\\nFROM x\n")
    assert "invalid escape token '!' does not match ` or \\" in error("# escape=!\nFROM x\n")


def test_comments_and_blank_lines_inside_continuations() -> None:
    dockerfile = parse("FROM x\nRUN apt-get update && \\\n# a comment\n\n    apt-get install -y curl\n")
    (run,) = dockerfile.stages[0].instructions
    assert isinstance(run, Run) and run.command == ("apt-get update &&     apt-get install -y curl",)
    assert dockerfile.warnings == (
        "Empty continuation line found in: RUN apt-get update &&     apt-get install -y curl",
    )


def test_bytes_with_a_bom_and_crlf() -> None:
    dockerfile = parse(b"\xef\xbb\xbfFROM x\r\nENV a=b\r\n")
    (env,) = dockerfile.stages[0].instructions
    assert isinstance(env, Env) and env.pairs == (KeyValue("a", "b"),)


# --- ported from BuildKit's frontend/dockerfile/instructions/parse_test.go ---


def first_instruction_error(text: str) -> str:
    """The error of ParseInstruction on the first node (the Go tests call it directly)."""
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse_instruction(parse_tree(text).root.children[0])
    return caught.value.reason


@pytest.mark.parametrize("command", ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"])
def test_commands_exactly_one_argument(command: str) -> None:
    """TestCommandsExactlyOneArgument."""
    assert first_instruction_error(command) == f"{command} requires exactly one argument"


@pytest.mark.parametrize("command", ["ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME"])
def test_commands_at_least_one_argument(command: str) -> None:
    """TestCommandsAtLeastOneArgument."""
    assert first_instruction_error(command) == f"{command} requires at least one argument"


@pytest.mark.parametrize("command", ["ADD", "COPY"])
def test_commands_no_destination_argument(command: str) -> None:
    """TestCommandsNoDestinationArgument."""
    assert first_instruction_error(command + " arg1") == (
        f"{command} requires at least two arguments, but only one was provided."
        " Destination could not be determined"
    )


@pytest.mark.parametrize("command", ["ENV", "LABEL"])
def test_commands_too_many_arguments_and_blank_names(command: str) -> None:
    """TestCommandsTooManyArguments / TestCommandsBlankNames, on hand-made nodes as in Go."""
    too_many = Node(value=command.lower(), next=_chain(["arg1", "arg2", "arg3", ""]))
    with pytest.raises(DockerfileSyntaxError, match=f"Bad input to {command}, too many arguments"):
        parse_instruction(too_many)
    blank = Node(value=command.lower(), next=_chain(["", "arg2", "="]))
    with pytest.raises(DockerfileSyntaxError, match=f"{command} names can not be blank"):
        parse_instruction(blank)


def test_healthcheck_cmd_node() -> None:
    """TestHealthCheckCmd."""
    check = parse_instruction(Node(value="healthcheck", next=_chain(["CMD", "hello", "world"])))
    assert isinstance(check, Healthcheck) and check.test == ("CMD-SHELL", "hello world")


@pytest.mark.parametrize(("value", "ok"), [("50ns", False), ("0ms", True), ("1ms", True)])
def test_parse_opt_interval(value: str, ok: bool) -> None:
    """TestParseOptInterval."""
    text = f"FROM x\nHEALTHCHECK --interval={value} CMD true\n"
    if ok:
        parse(text)
    else:
        assert "cannot be less than 1ms" in error(text)


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        ("COPY\t\n      \n      bar", "COPY requires at least two arguments"),
        ("ONBUILD FROM scratch", "FROM isn't allowed as an ONBUILD trigger"),
        ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
        ("ONBUILD ONBUILD RUN touch foobar", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FOO bar", "unknown instruction: FOO"),
        ("foo bar", "unknown instruction: foo"),
    ],
)
def test_error_cases(dockerfile: str, expected: str) -> None:
    """TestErrorCases."""
    assert expected in first_instruction_error(dockerfile)


@pytest.mark.parametrize(
    "command",
    ["add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
     "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir"],
)  # fmt: skip
@pytest.mark.parametrize("arguments", [" foo=bar", " a", " a b", " a b c", " 0 0"])
def test_every_instruction_either_parses_or_gives_a_syntax_error(command: str, arguments: str) -> None:
    """TestNilLinter's inputs: nothing but a DockerfileSyntaxError may come out."""
    with contextlib.suppress(DockerfileSyntaxError):
        parse("FROM busybox\n" + command + arguments)


def test_comments_before_an_instruction_are_kept() -> None:
    """TestCommentsDetection (the comments, not the lint rules)."""
    dockerfile = parse(
        "# foo sets foo\nARG foo=bar\n# base defines first stage\nFROM busybox AS base\n"
        "# this is irrelevant\nARG foo\n# bar defines bar\n# baz is something else\nARG bar baz=123\n"
    )
    assert dockerfile.global_args[0].comments == ("foo sets foo",)
    assert dockerfile.stages[0].from_instruction.comments == ("base defines first stage",)
    assert [i.comments for i in dockerfile.stages[0].instructions] == [
        ("this is irrelevant",),
        ("bar defines bar", "baz is something else"),
    ]


def test_run_mount_is_parsed_at_build_time_with_the_expander() -> None:
    """TestRunCmdFlagsUsed's mount, then the builder's second pass with variables."""
    run = one("RUN --mount=type=tmpfs,target=/foo/ echo hello")
    assert isinstance(run, Run) and run.mounts == ("type=tmpfs,target=/foo/",)
    mount = parse_mount(run.mounts[0], lambda value: value)
    assert mount == RunMount(type="tmpfs", target="/foo/", readonly=False)
    env = {"DIR": "/cache"}
    cache = parse_mount(
        "type=cache,target=$DIR,id=x,sharing=locked,mode=0755,uid=1", lambda v: ShellLex().expand(v, env)
    )
    assert cache == RunMount(type="cache", target="/cache", cache_id="x", sharing="locked", mode=0o755, uid=1)
    assert parse_mount("target=/src,ro=false", str).readonly is False
    assert parse_mount("target=/src", str).readonly is True
    assert parse_mount("type=tmpfs,target=/t,size=64m", str).size_limit == 64 * 1024 * 1024
    secret = parse_mount("type=secret,id=token,required", str)
    assert (secret.type, secret.cache_id, secret.required, secret.readonly) == ("secret", "token", True, True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("type=volume,target=/v", 'unsupported mount type "volume"'),
        ("type=bnd,target=/v", 'unsupported mount type "bnd" (did you mean bind?)'),
        ("type=bind,target=/v,mode=0700", 'mode not allowed for "bind" type mounts'),
        ("type=cache,target=/v,sharing=all", 'unsupported sharing value "all"'),
        ("type=bind,target=/v,sharing=shared", "invalid cache sharing set for bind mount"),
        ("type=secret", "invalid secret mount. one of source, target required"),
        ("type=secret,src=a,id=b", "both source and id can't be set"),
        ("type=bind,size=1m", "unexpected key 'size' for mount type 'bind'"),
        ("type=bind,target=/v,readonly=maybe", "invalid value for readonly: maybe"),
        ("type=bind,nonsense=1", "unexpected key 'nonsense' in 'nonsense=1'"),
        ("type=bind,target", "invalid field 'target' must be a key=value pair"),
    ],
)
def test_run_mount_errors(value: str, message: str) -> None:
    with pytest.raises(MountError) as caught:
        parse_mount(value, str)
    assert str(caught.value) == message or str(caught.value).startswith(message)


def test_directives_as_buildkits_directive_parser_reads_them() -> None:
    """directives_test.go TestDirectives: names are case-insensitive; an unknown key ends them."""
    first = parse("#escape=\\\n# key = FOO bar\n# smth\nFROM x\n")
    assert first.directives == {"escape": "\\"}
    upper = parse("# EScape=`\n# KEY = FOO bar\n# syntax=ignored-after-unknown\nFROM x\n")
    assert upper.directives == {"escape": "`"} and upper.escape == "`"
    # a shebang is an ordinary comment for the parser: the directives after it do not count
    shebang = parse("#!/bin/sh\n# escape=`\nFROM x\n")
    assert shebang.directives == {} and shebang.escape == "\\"
    # a blank line ends the directives too
    assert parse("\n# escape=`\nFROM x\n").escape == "\\"
    spaced = parse("#  syntax  =  docker/dockerfile:1 // opts  \nFROM x\n")
    assert spaced.syntax == "docker/dockerfile:1 // opts"


def test_json_form_decodes_as_go_does() -> None:
    """Go's encoding/json: no NaN (so the shell form), U+FFFD for a lone surrogate or a bad byte."""
    nan = one("CMD [NaN]")
    assert isinstance(nan, Cmd) and (nan.command, nan.shell_form) == (("[NaN]",), True)
    odd = parse(b'FROM x\nCMD ["a\\ud800", "\xff", "\\ud83d\\ude00"]\n').stages[0].instructions[0]
    assert isinstance(odd, Cmd) and odd.command == ("a\ufffd", "\ufffd", "\U0001f600")
    trailing = one('CMD ["a"] # not a comment')
    assert isinstance(trailing, Cmd) and trailing.command == ('["a"] # not a comment',)
