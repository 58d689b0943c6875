"""Go's ``path/filepath.Match`` (Unix): the glob rules of COPY/ADD sources and ``.dockerignore``.

``*`` any run of non-``/`` characters, ``?`` one non-``/`` character, ``[abc]``, ``[a-z]``,
``[^a-z]`` (``^`` negates; ``!`` is an ordinary member, unlike Python's ``fnmatch``), ``\\x``
the character x. A malformed pattern raises ``BadPattern`` even when an earlier part already
failed to match, as Go checks the whole pattern.
"""

from __future__ import annotations

from containerkit.errors import InvalidArgument

__all__ = ["BadPattern", "has_meta", "match"]


class BadPattern(InvalidArgument):
    """Go's ``filepath.ErrBadPattern``."""

    def __init__(self, pattern: str) -> None:
        super().__init__(f"syntax error in pattern: {pattern!r}")
        self.pattern = pattern


class _Bad(Exception):
    pass


def has_meta(path: str) -> bool:
    """Whether ``path`` has glob characters (Go's ``hasMeta``: ``*?[\\``)."""
    return any(ch in path for ch in "*?[\\")


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_escape(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise _Bad
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _Bad
    ch, rest = chunk[0], chunk[1:]
    if not rest:
        raise _Bad
    return ch, rest


def _match_chunk(chunk: str, s: str) -> str | None:
    """What is left of ``s`` after ``chunk`` matched its start, or None; raises ``_Bad``."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        head = chunk[0]
        if head == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = False
            if chunk.startswith("^"):
                negated = True
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk.startswith("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_escape(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_escape(chunk[1:])
                if not failed and lo <= r <= hi:
                    matched = True
                ranges += 1
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise _Bad
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


def match(pattern: str, name: str) -> bool:
    """Whether ``name`` matches the shell ``pattern`` as Go's ``filepath.Match`` decides."""
    try:
        return _match(pattern, name)
    except _Bad:
        raise BadPattern(pattern) from None


def _match(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return "/" not in name
        rest = _match_chunk(chunk, name)
        if rest is not None and (rest == "" or pattern):
            name = rest
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest = _match_chunk(chunk, name[i + 1 :])
                if rest is not None:
                    if not pattern and rest:
                        i += 1
                        continue
                    name = rest
                    found = True
                    break
                i += 1
            if found:
                continue
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return name == ""


def check(pattern: str) -> None:
    """Raise ``BadPattern`` if ``pattern`` is malformed (how patternmatcher validates patterns)."""
    match(pattern, ".")
