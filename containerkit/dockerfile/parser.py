"""BuildKit's Dockerfile parser (``frontend/dockerfile/parser``): text to a tree of lines.

This is the syntax layer: parser directives, comments, line continuations with the escape
character, heredocs, the JSON (exec) form against the shell form, ``--flags`` and how each
instruction splits its arguments. ``Node.dump`` prints the tree as BuildKit's ``Node.Dump``
does, which is what its parser corpus (``testfiles/*/result``) is written in. The typed
instructions are built from these nodes in ``instructions.py``.

Two deliberate differences from BuildKit: flags (``--chown=ü``) and HEALTHCHECK's type are
split by character, where BuildKit walks bytes and so mangles non-ASCII flag values; and
BuildKit's 64 KiB limit on one physical line is not imposed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TypeAlias

import attrs

from . import _go
from .errors import DockerfileSyntaxError
from .lexer import ShellLex

__all__ = ["Heredoc", "Node", "ParseResult", "parse_heredoc", "parse_tree"]

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.DOTALL)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


class _Error(Exception):
    """A parse error before its line is known."""


@attrs.frozen
class Heredoc:
    """A here-document: ``<<EOF`` (``<<-EOF`` strips leading tabs; a quoted name turns off expansion)."""

    name: str
    content: str = ""
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False


@attrs.define
class Node:
    """One node of BuildKit's tree: an instruction's word, the next word, or sub-instructions."""

    value: str = ""
    next: Node | None = None
    children: list[Node] = attrs.field(factory=list)
    heredocs: list[Heredoc] = attrs.field(factory=list)
    attributes: dict[str, bool] = attrs.field(factory=dict)
    original: str = ""
    flags: list[str] = attrs.field(factory=list)
    start_line: int = 0
    end_line: int = 0
    comments: list[str] = attrs.field(factory=list)

    def args(self) -> list[str]:
        """The words after the instruction name (BuildKit's ``nodeArgs``)."""
        result: list[str] = []
        node = self
        while node.next is not None:
            arg = node.next
            if not arg.children:
                result.append(arg.value)
            elif len(arg.children) == 1:
                result.append(arg.children[0].value)
                result.extend(arg.children[0].args())
            node = arg
        return result

    def dump(self) -> str:
        """The node as BuildKit's ``Node.Dump`` prints it: ``(cmd ["--flag"] "arg" ...)``."""
        out = [self.value.lower()]
        if self.flags:
            out.append(" [" + " ".join(_go.quote(flag) for flag in self.flags) + "]")
        for child in self.children:
            out.append("(" + child.dump() + ")\n")
        node = self.next
        while node is not None:
            out.append(" ")
            out.append(node.dump() if node.children else _go.quote(node.value))
            node = node.next
        return _go.trim_space("".join(out))

    def can_contain_heredoc(self) -> bool:
        node = self
        if node.value.lower() == "onbuild" and node.next is not None and node.next.children:
            node = node.next.children[0]
        return node.value.lower() in _HEREDOC_INSTRUCTIONS and not node.attributes.get("json", False)


@attrs.frozen
class ParseResult:
    """The tree (``root.children`` are the instructions), the escape character, directives and warnings."""

    root: Node
    escape: str
    directives: dict[str, str]
    warnings: list[str]


class _Directives:
    """The parser directives at the top of the file, and the escape character they set."""

    def __init__(self) -> None:
        self.escape = "\\"
        self.continuation = _continuation_regex("\\")
        self.seen: dict[str, str] = {}
        self.done = False

    def set_escape(self, value: str) -> None:
        if value not in ("`", "\\"):
            raise _Error(f"invalid escape token '{value}' does not match ` or \\")
        self.escape = value
        self.continuation = _continuation_regex(value)

    def possible_directive(self, line: str) -> bool:
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        found = _DIRECTIVE.match(_go.trim_left_space(line[1:]))
        if found is None or found.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        key = found.group(1).lower()
        if key in self.seen:
            raise _Error(f"only one {key} parser directive can be used")
        self.seen[key] = found.group(2)
        if key == "escape":
            self.set_escape(found.group(2))
        return True


def _continuation_regex(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z", re.DOTALL)


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _go.trim_left_space(line).startswith("#")


def _process_line(d: _Directives, token: str, strip_left: bool) -> tuple[str, bool]:
    token = _trim_newline(token)
    if strip_left:
        token = _go.trim_left_space(token)
    directive = d.possible_directive(token)
    return ("" if _is_comment(token) else token), directive


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    if d.continuation.search(line):
        return d.continuation.sub(r"\1", line), False
    return line, True


def _split_lines(text: str) -> list[str]:
    """Lines with their endings kept (BuildKit's ``scanLines``)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def parse_tree(text: str | bytes) -> ParseResult:
    """Parse Dockerfile source into BuildKit's tree; raises ``DockerfileSyntaxError``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    d = _Directives()
    root = Node(start_line=-1)
    warnings: list[str] = []
    comments: list[str] = []
    lines = _split_lines(text)
    current = 0
    index = 0
    while index < len(lines):
        raw = lines[index]
        index += 1
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if _is_comment(raw):
            comment = _go.trim_space(raw[1:])
            if comment == "":
                comments = []
            else:
                comments.append(comment)
        try:
            line, directive = _process_line(d, raw, True)
        except _Error as error:
            raise DockerfileSyntaxError(str(error), current + 1) from None
        if directive:
            comments = comments[:-1]
        current += 1
        start = current
        line, end_of_line = _trim_continuation(line, d)
        if end_of_line and line == "":
            continue
        buf = [line]
        empty_continuation = False
        while not end_of_line and index < len(lines):
            raw = lines[index]
            index += 1
            try:
                line, _ = _process_line(d, raw, False)
            except _Error as error:
                raise DockerfileSyntaxError(str(error), current + 1) from None
            current += 1
            if _is_comment(raw):
                continue
            if _go.trim_left_space(_trim_newline(line)) == "":
                empty_continuation = True
                continue
            line, end_of_line = _trim_continuation(line, d)
            buf.append(line)
        full = "".join(buf)
        if empty_continuation:
            warnings.append("Empty continuation line found in: " + full)
        try:
            child = _node_from_line(full, d, comments)
        except _Error as error:
            raise DockerfileSyntaxError(str(error), start) from None
        if child.can_contain_heredoc() and "<<" in full:
            try:
                heredocs = _heredocs_from_line(full)
            except _Error as error:
                raise DockerfileSyntaxError(str(error), start) from None
            for heredoc in heredocs:
                content: list[str] = []
                terminated = False
                while index < len(lines):
                    raw = lines[index]
                    index += 1
                    current += 1
                    possible = _trim_newline(raw)
                    if heredoc.chomp:
                        possible = possible.lstrip("\t")
                    if possible == heredoc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise DockerfileSyntaxError("unterminated heredoc", start)
                child.heredocs.append(attrs.evolve(heredoc, content="".join(content)))
        child.start_line, child.end_line = start, current
        if root.start_line < 0:
            root.start_line = start
        root.end_line = current
        root.children.append(child)
        comments = []
    if root.start_line < 0:
        raise DockerfileSyntaxError("file with no instructions", max(current, 1))
    return ParseResult(root, d.escape, dict(d.seen), warnings)


def _node_from_line(line: str, d: _Directives, comments: list[str]) -> Node:
    command, flags, args = _split_command(line, d)
    parse = _DISPATCH.get(command.lower(), _parse_ignore)
    next_node, attributes = parse(args, d)
    return Node(
        value=command,
        original=line,
        flags=flags,
        next=next_node,
        attributes=attributes,
        comments=list(comments),
    )


def _split_command(line: str, d: _Directives) -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(_go.trim_space(line), maxsplit=1)
    args = ""
    flags: list[str] = []
    if len(parts) == 2:
        args, flags = _extract_flags(parts[1], d)
    return parts[0], flags, _go.trim_space(args)


def _extract_flags(line: str, d: _Directives) -> tuple[str, list[str]]:
    """Leading ``--name[=value]`` words, and the rest of the line (BuildKit's ``extractBuilderFlags``)."""
    words: list[str] = []
    word: list[str] = []
    phase = "spaces"
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _go.is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == "word":
            if _go.is_space(ch):
                text = "".join(word)
                phase = "spaces"
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = "quote"
                pos += 1
                continue
            if ch == d.escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # phase == "quote"
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == d.escape:
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def parse_words(rest: str, escape: str) -> list[str]:
    """Split on spaces outside quotes, keeping quotes and escapes (BuildKit's ``parseWords``)."""
    words: list[str] = []
    word: list[str] = []
    phase = "spaces"
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _go.is_space(ch):
                pos += 1
                continue
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == "word":
            if _go.is_space(ch):
                phase = "spaces"
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = "quote"
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # phase == "quote"
        if ch == quote:
            phase = "word"
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


_Parsed: TypeAlias = "tuple[Node | None, dict[str, bool]]"


def _chain(values: list[str]) -> Node | None:
    first: Node | None = None
    previous: Node | None = None
    for value in values:
        node = Node(value=value)
        if previous is None:
            first = node
        else:
            previous.next = node
        previous = node
    return first


def _parse_ignore(rest: str, d: _Directives) -> _Parsed:
    return Node(), {}


def _parse_sub_command(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return None, {}
    child = _node_from_line(rest, d, [])
    return Node(children=[child]), {}


def _parse_name_val(rest: str, key: str, d: _Directives) -> Node | None:
    words = parse_words(rest, d.escape)
    if not words:
        return None
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _Error(f"{key} must have two arguments")
        return _chain([parts[0], parts[1], ""])
    values: list[str] = []
    for word in words:
        if "=" not in word:
            raise _Error(f"Syntax error - can't find = in {_go.quote(word)}. Must be of the form: name=value")
        name, _, value = word.partition("=")
        values.extend([name, value, "="])
    return _chain(values)


def _parse_env(rest: str, d: _Directives) -> _Parsed:
    return _parse_name_val(rest, "ENV", d), {}


def _parse_label(rest: str, d: _Directives) -> _Parsed:
    return _parse_name_val(rest, "LABEL", d), {}


def _parse_name_or_name_val(rest: str, d: _Directives) -> _Parsed:
    return _chain(parse_words(rest, d.escape)), {}


def _parse_whitespace_delimited(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return None, {}
    return _chain(_WHITESPACE.split(rest)), {}


def _parse_string(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return None, {}
    return Node(value=rest), {}


class _NotJSON(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid JSON constant {name}")


def _parse_json(rest: str) -> _Parsed:
    rest = _go.trim_left_space(rest)
    if not rest.startswith("["):
        raise _NotJSON
    try:
        values = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        raise _NotJSON from None
    if not isinstance(values, list):
        raise _NotJSON
    if not all(isinstance(value, str) for value in values):
        raise _Error(_NOT_STRING_ARRAY)
    # Go's decoder turns a lone surrogate escape and a byte that is not UTF-8 into U+FFFD
    return _chain([_LONE_SURROGATE.sub("\ufffd", value) for value in values]), {"json": True}


def _parse_maybe_json(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return None, {}
    try:
        return _parse_json(rest)
    except _NotJSON:
        return Node(value=rest), {}


def _parse_maybe_json_to_list(rest: str, d: _Directives) -> _Parsed:
    try:
        return _parse_json(rest)
    except _NotJSON:
        return _parse_whitespace_delimited(rest, d)


def _parse_health_config(rest: str, d: _Directives) -> _Parsed:
    sep = 0
    while sep < len(rest) and not _go.is_space(rest[sep]):
        sep += 1
    following = sep
    while following < len(rest) and _go.is_space(rest[following]):
        following += 1
    if sep == 0:
        return None, {}
    command, attributes = _parse_maybe_json(rest[following:], d)
    return Node(value=rest[:sep], next=command), attributes


_DISPATCH: dict[str, Callable[[str, _Directives], _Parsed]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word such as ``<<EOF``, ``<<-"EOF"`` or ``3<<EOF`` opens, or None."""
    found = _HEREDOC.match(word)
    if found is None:
        return None
    fd = int(found.group(1)) if found.group(1) else 0
    chomp = found.group(2) == "-"
    rest = found.group(3)
    if rest == "":
        return None
    try:
        words = ShellLex(skip_unset_env=True).expand_words(rest, {})
        raw = ShellLex(skip_unset_env=True, raw_quotes=True).expand_words(rest, {})
    except ValueError as error:
        raise _Error(str(error)) from None
    if len(words) != 1:
        return None
    if len(raw) != len(words):
        raise _Error(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=name, file_descriptor=fd, expand=quotes == raw_quotes, chomp=chomp)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lex = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.expand_words(line, {})
    except ValueError:
        words = []
    docs = []
    for word in words:
        heredoc = parse_heredoc(word)
        if heredoc is not None:
            docs.append(heredoc)
    return docs


def chomp_heredoc_content(text: str) -> str:
    """Strip leading tabs from every line (``<<-``)."""
    return _LEADING_TABS.sub("", text)
