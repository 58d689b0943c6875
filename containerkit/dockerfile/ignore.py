"""``.dockerignore`` as Docker reads it: moby/patternmatcher with moby/patternmatcher/ignorefile.

Patterns are anchored at the context root (``*.md`` is only root-level Markdown, unlike
gitignore), cleaned like Go's ``filepath.Clean`` with a leading ``/`` dropped, and use Go's
``filepath.Match`` syntax plus ``**`` (any number of directories). ``!pattern`` re-includes;
the last matching pattern wins. A path is excluded when it or one of its parent directories
matches (``MatchesOrParentMatches``), so excluding a directory excludes its content unless an
exception names something inside it.

``DockerIgnore.walk`` lists a context directory the way BuildKit's fsutil filter does: it
does not descend into an excluded directory unless an exception could re-include something
under it, and a directory that is itself excluded is listed only before something it holds
that is re-included.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

from containerkit.errors import InvalidArgument

from . import _go
from .glob import check

__all__ = ["DockerIgnore", "Pattern", "clean", "read_patterns"]

_PATTERN_CHARS = "*[]?^\\"
_ESCAPED = frozenset(".+()|{}$")


def clean(path: str) -> str:
    """Go's ``filepath.Clean`` on a slash path: no ``.``, ``..`` resolved, no double or trailing ``/``."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    joined = "/".join(parts)
    if rooted:
        return "/" + joined
    return joined or "."


def read_patterns(text: str | bytes) -> list[str]:
    """The patterns of a .dockerignore file (``ignorefile.ReadAll``): comments and blanks dropped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    patterns: list[str] = []
    for number, line in enumerate(text.split("\n")):
        if number == 0 and line.startswith("\ufeff"):
            line = line[1:]
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = _go.trim_space(line)
        if pattern == "":
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = _go.trim_space(pattern[1:])
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


@attrs.frozen
class Pattern:
    """One cleaned pattern, compiled once: exact, prefix (``a/**``), suffix (``**/a``) or a regex."""

    text: str
    exclusion: bool
    kind: str = attrs.field(init=False)
    regex: re.Pattern[str] | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        kind, regex = _compile(self.text)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "regex", regex)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None

    def without_trailing_glob(self) -> str:
        return self.text.removesuffix("/**").removesuffix("/*")


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    """patternmatcher's ``Pattern.compile``: the match kind, and the regex when one is needed."""
    out = ["^"]
    kind = "exact"
    i = 0
    n = len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regex"
                else:
                    out.append("(.*/)?")
                    kind = "regex"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append("\\" + pattern[i])
                i += 1
                kind = "regex"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regex"
        else:
            out.append(ch)
        first = False
    if kind != "regex":
        return kind, None
    out.append(r"\Z")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return kind, re.compile("".join(out))
    except re.error:
        raise InvalidArgument(f"syntax error in pattern: {pattern!r}") from None


def _parents(path: str) -> Iterator[str]:
    """Every parent directory of ``path``, shortest first, as patternmatcher splits ``filepath.Dir``."""
    slash = path.rfind("/")
    parent = clean(path[: slash + 1]) if slash >= 0 else "."
    if parent == ".":
        return
    parts = parent.split("/")
    for i in range(1, len(parts) + 1):
        yield "/".join(parts[:i])


@attrs.frozen
class DockerIgnore:
    """The patterns of one .dockerignore, ready to answer ``excluded(path)`` and to ``walk`` a context."""

    patterns: tuple[Pattern, ...]

    @classmethod
    def from_text(cls, text: str | bytes) -> DockerIgnore:
        """From the text of a .dockerignore file."""
        return cls.from_patterns(read_patterns(text))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DockerIgnore:
        """From a .dockerignore file; no file means nothing is excluded."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return cls(())
        return cls.from_text(data)

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> DockerIgnore:
        """From pattern strings (patternmatcher's ``New``); a malformed one raises ``InvalidArgument``."""
        compiled = []
        for raw in patterns:
            text = _go.trim_space(raw)
            if text == "":
                continue
            text = clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise InvalidArgument('illegal exclusion pattern: "!"')
                text = text[1:]
            check(text)
            compiled.append(Pattern(text, exclusion))
        return cls(tuple(compiled))

    @property
    def has_exceptions(self) -> bool:
        return any(pattern.exclusion for pattern in self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether a context path (slash-separated; ``./`` and ``/`` prefixes allowed) is excluded."""
        path = clean(path.lstrip("/"))
        if path == ".":
            return False
        return self.matches(path)

    def matches(self, path: str) -> bool:
        """patternmatcher's ``MatchesOrParentMatches`` on ``path`` as given (not cleaned)."""
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path) or any(pattern.match(parent) for parent in _parents(path))
            if hit:
                matched = not pattern.exclusion
        return matched

    def _matches_with_parent(self, path: str, parent: list[bool] | None) -> tuple[bool, list[bool]]:
        """patternmatcher's ``MatchesUsingParentResults``: reuse the parent directory's per-pattern hits."""
        matched = False
        hits = [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            hit = parent[i] if parent is not None else False
            if not hit:
                if pattern.exclusion != matched:
                    continue
                hit = pattern.match(path)
                if not hit and parent is None:
                    hit = any(pattern.match(p) for p in _parents(path))
            hits[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, hits

    def _may_reinclude_under(self, directory: str) -> bool:
        """Whether an exception could re-include something under an excluded ``directory``."""
        exceptions = [p for p in self.patterns if p.exclusion]
        if not exceptions:
            return False
        if any(ch in p.without_trailing_glob() for p in exceptions for ch in _PATTERN_CHARS):
            return True  # an exception with glob characters could match anywhere: walk it
        prefix = directory + "/"
        return any((p.without_trailing_glob() + "/").startswith(prefix) for p in exceptions)

    def walk(self, root: str | os.PathLike[str]) -> Iterator[str]:
        """The included paths under ``root`` (slash-separated, relative, directories before their content)."""
        yield from self._walk(os.fspath(root), "", None, [])

    def _walk(self, top: str, relative: str, parent: list[bool] | None, pending: list[str]) -> Iterator[str]:
        with os.scandir(os.path.join(top, relative) if relative else top) as entries:
            ordered = sorted(entries, key=lambda entry: entry.name)
        for entry in ordered:
            path = f"{relative}/{entry.name}" if relative else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            excluded, hits = self._matches_with_parent(path, parent) if self.patterns else (False, [])
            if excluded:
                if is_dir and self._may_reinclude_under(path):
                    # listed only if something under it is re-included (which clears pending)
                    pending.append(path)
                    yield from self._walk(top, path, hits, pending)
                    if pending and pending[-1] == path:
                        pending.pop()
                continue
            yield from pending
            pending.clear()
            yield path
            if is_dir:
                yield from self._walk(top, path, hits if self.patterns else None, [])
