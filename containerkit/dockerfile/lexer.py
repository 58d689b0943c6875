"""BuildKit's shell lexer (``frontend/dockerfile/shell/lex.go``): quotes, escapes, ``$var`` expansion.

``ShellLex.expand`` is BuildKit's ``ProcessWord`` (one string, spaces kept) and
``ShellLex.expand_words`` its ``ProcessWords`` (split into words after expansion, quotes
keeping spaces). Supported substitutions: ``$v ${v} ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?msg}
${v?msg} ${v#pat} ${v##pat} ${v%pat} ${v%%pat} ${v/pat/repl} ${v//pat/repl}``; ``$1`` and the
special parameters (``$@ $* $# $? $- $$ $! $0``) expand to their (unset) value.

Which arguments the builder expands (BuildKit's ``expandable`` commands, with the
environment of the step before it, so ``ENV a=1 b=$a`` sees the old ``a``): ADD, COPY
(sources, destination, ``--chown``, ``--chmod``, ``--from``), ENV and LABEL (keys and values),
ARG (name and default), EXPOSE, FROM (base and ``--platform``, with the global ARGs only),
STOPSIGNAL, USER, VOLUME, WORKDIR, and ONBUILD is expanded when its trigger runs. RUN, CMD,
ENTRYPOINT, SHELL and HEALTHCHECK are never expanded: the shell in the container does it.

One deliberate difference from BuildKit: in ``expand_words`` BuildKit resets the word being
built when a ``${v<op>word}`` form is nested in it (its word buffer is shared with the nested
call), so ``a${x:-b}`` splits to ``["b"]``; here it is ``["ab"]`` as in a shell. ``expand`` is
unaffected, and neither corpus (envVarTest, wordsTest) contains such a case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from containerkit.errors import InvalidArgument

from . import _go

__all__ = ["ExpandResult", "ShellLex"]

_EOF = ""


class _LexError(Exception):
    """An error inside the lexer; wrapped with the source text at the top."""


@attrs.frozen
class ExpandResult:
    """What one expansion produced, and which variable names it looked up (found or not)."""

    result: str
    words: list[str]
    matched: frozenset[str]
    unmatched: frozenset[str]


class _Words:
    """BuildKit's ``wordsStruct``: splits on unquoted spaces as characters arrive."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _go.is_space(ch):
            if self.in_word and "".join(self.buf):
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def get_words(self) -> list[str]:
        if "".join(self.buf):
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class _Word:
    """One pass over one input (BuildKit's ``shellWord``)."""

    def __init__(self, lex: ShellLex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            escape = self.lex.escape
            quotes = not self.lex.skip_process_quotes
            while self.peek() != _EOF:
                ch = self.peek()
                if stop != _EOF and ch == stop:
                    self.next()
                    return "".join(result), words.get_words()
                if ch == "$":
                    value = self.process_dollar()
                    result.append(value)
                    words.add_string(value)
                elif ch == "<" or (quotes and ch in "'\""):
                    if ch == "<":
                        value = self.process_possible_heredoc()
                    elif ch == "'":
                        value = self.process_single_quote()
                    else:
                        value = self.process_double_quote()
                    result.append(value)
                    words.add_raw_string(value)
                else:
                    ch = self.next()
                    if ch == escape:
                        if self.raw_escapes:
                            words.add_raw_char(ch)
                            result.append(ch)
                        ch = self.next()
                        if ch == _EOF:
                            break
                        words.add_raw_char(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop != _EOF:
                raise _LexError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def process_double_quote(self) -> str:
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        escape = self.lex.escape
        while True:
            peeked = self.peek()
            if peeked == _EOF:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if peeked == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if peeked == "$":
                result.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    result.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", escape):
                    ch = self.next()
            result.append(ch)

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if name == "":
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        self.next()
        peeked = self.peek()
        if peeked == _EOF:
            raise _LexError("syntax error: missing '}'")
        if peeked in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        modifier = ch or "\ufffd"
        null_is_unset = False
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch in (":", "+", "-", "?", "#", "%") and ch != _EOF:
            if ch == ":":
                null_is_unset = True
                ch = self.next()
                modifier += ch or "\ufffd"
            raw_escapes = ch in ("#", "%") and ch != _EOF
            if null_is_unset and raw_escapes:
                raise _LexError(f"unsupported modifier ({modifier}) in substitution")
            try:
                word, _ = self.process_stop_on("}", raw_escapes)
            except _LexError:
                if self.peek() == _EOF:
                    raise _LexError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + modifier + word + "}"
            if ch == "-":
                if not found or (null_is_unset and value == ""):
                    return word
                return value
            if ch == "+":
                if not found or (null_is_unset and value == ""):
                    return ""
                return word
            if ch == "?":
                if not found:
                    raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            if ch in ("#", "%"):
                greedy = False
                if word and word[0] == ch:
                    greedy = True
                    word = word[1:]
                if ch == "%":
                    return _trim_suffix(word, value, greedy)
                return _trim_prefix(word, value, greedy)
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except _LexError:
                if self.peek() == _EOF:
                    raise _LexError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.process_stop_on("}", True)
            except _LexError:
                if self.peek() == _EOF:
                    raise _LexError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            regex = _shell_pattern_to_regex(pattern, greedy=True, anchored=False)
            if replace_all:
                return _go.regexp_replace_all(regex, value, replacement)
            found_at = regex.search(value)
            if found_at is not None:
                value = value[: found_at.start()] + replacement + value[found_at.end() :]
            return value
        raise _LexError(f"unsupported modifier ({modifier}) in substitution")

    def process_name(self) -> str:
        name: list[str] = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not name and ch.isdecimal():
                while self.peek() != _EOF and self.peek().isdecimal():
                    name.append(self.next())
                return "".join(name)
            if not name and ch in "@*#?-$!0":
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def process_possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space: list[str] = []
        while self.peek() in ("\t", "\r", " ") and self.peek() != _EOF:
            space.append(self.next())
        return "<<" + "".join(space)


def _shell_pattern_to_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A ``${v#pat}`` pattern (``*`` and ``?``, backslash escapes, no brackets) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            following = pattern[i] if i < len(pattern) else _EOF
            if following in ("}", "/") and following != _EOF:
                continue
            out.append("\\")
            tok = following
            i += 1
            if tok not in ("*", "?", "\\") or tok == _EOF:
                shown = tok if tok != _EOF else "\ufffd"
                raise _LexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
        elif tok in "[]{}.+()|^$":
            out.append("\\")
        out.append(tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _shell_pattern_to_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[found.end() :] if found is not None else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each escape before the character it escapes."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        at = last - i
        if tok == "\\" and i != last:
            out[at - 1] = tok
            out[at] = pattern[i + 1]
            i += 2
        else:
            out[at] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # a regex cannot find the shortest rightmost match: reverse both and trim a prefix
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


@attrs.frozen
class ShellLex:
    """The Dockerfile word lexer; ``escape`` is the file's escape character (``\\`` or `` ` ``).

    The flags are BuildKit's: ``raw_quotes`` keeps the quote characters, ``raw_escapes`` the
    escape characters, ``skip_process_quotes`` treats quotes as plain characters, and
    ``skip_unset_env`` leaves references to unset variables as written.
    """

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def __attrs_post_init__(self) -> None:
        if self.escape not in ("\\", "`"):
            raise InvalidArgument(f"invalid escape token {self.escape!r}: must be ` or \\")

    def process(self, word: str, env: Mapping[str, str]) -> ExpandResult:
        """Expand ``word``; the result, its words, and the names looked up."""
        state = _Word(self, word, env)
        try:
            result, words = state.process_stop_on(_EOF, self.raw_escapes)
        except _LexError as error:
            raise InvalidArgument(f"failed to process {_go.quote(word)}: {error}") from None
        return ExpandResult(result, words, frozenset(state.matched), frozenset(state.unmatched))

    def expand(self, word: str, env: Mapping[str, str]) -> str:
        """``word`` with quotes removed and variables expanded, spaces kept (``ProcessWord``)."""
        return self.process(word, env).result

    def expand_words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """``text`` expanded, then split on unquoted spaces (``ProcessWords``)."""
        return self.process(text, env).words
