"""The few Go standard-library behaviours the Dockerfile language leans on, done the Go way.

BuildKit is written in Go, and its results depend on Go's definitions: which characters
``unicode.IsSpace`` calls space, how ``strconv.Quote`` escapes, how ``regexp`` replaces empty
matches, what ``time.ParseDuration`` accepts. Python's nearest equivalents differ at the edges,
so the Dockerfile package uses these instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["is_space", "parse_duration", "quote", "regexp_replace_all", "trim_space"]

# unicode.IsSpace: the Latin-1 spaces plus the White_Space property (which Python's
# str.isspace widens with the C0 separators \x1c-\x1f).
_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace`` for one character."""
    return ch in _SPACES


def trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``."""
    start, end = 0, len(text)
    while start < end and text[start] in _SPACES:
        start += 1
    while end > start and text[end - 1] in _SPACES:
        end -= 1
    return text[start:end]


def trim_left_space(text: str) -> str:
    """Go's ``strings.TrimLeftFunc(s, unicode.IsSpace)``."""
    start = 0
    while start < len(text) and text[start] in _SPACES:
        start += 1
    return text[start:]


_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def quote(text: str) -> str:
    """Go's ``strconv.Quote``: printable runes as they are, the rest escaped Go's way."""
    out = ['"']
    for ch in text:
        escaped = _QUOTE_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:
            # a byte that was not UTF-8, carried through by surrogateescape
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_TEMPLATE_NAME = re.compile(r"\$(?:\{(\w+)\}|(\w+))?")


def _expand_template(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand``: ``$0``/``${0}`` is the match, ``$$`` a dollar, other names empty."""
    out: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        if template.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        found = _TEMPLATE_NAME.match(template, i)
        name = (found.group(1) or found.group(2)) if found else None
        if found is None or name is None:
            # a lone "$" (or "${" without a name) stays as it is
            out.append("$")
            i += 1
            continue
        if name.isdecimal() and int(name) <= (match.re.groups):
            out.append(match.group(int(name)) or "")
        elif name in match.re.groupindex:
            out.append(match.group(name) or "")
        i = found.end()
    return "".join(out)


def regexp_replace_all(pattern: re.Pattern[str], text: str, template: str) -> str:
    """Go's ``Regexp.ReplaceAllString``: ``$`` templates, and no empty match right after a match."""
    out: list[str] = []
    last_end = 0
    search = 0
    while search <= len(text):
        found = pattern.search(text, search)
        if found is None:
            break
        start, end = found.span()
        out.append(text[last_end:start])
        if end > last_end or start == 0:
            out.append(_expand_template(template, found))
        last_end = end
        search = search + 1 if search + 1 > end else end
    out.append(text[last_end:])
    return "".join(out)


_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # U+00B5 micro sign
    "\u03bcs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_DURATION = (1 << 63) - 1


def _leading_int(text: str) -> tuple[int, str] | None:
    x = 0
    i = 0
    while i < len(text) and "0" <= text[i] <= "9":
        if x > (1 << 63) // 10:
            return None
        x = x * 10 + ord(text[i]) - 48
        if x > 1 << 63:
            return None
        i += 1
    return x, text[i:]


def _leading_fraction(text: str) -> tuple[int, float, str]:
    x = 0
    scale = 1.0
    overflow = False
    i = 0
    while i < len(text) and "0" <= text[i] <= "9":
        if not overflow:
            if x > ((1 << 63) - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(text[i]) - 48
                if y > 1 << 63:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, text[i:]


def parse_duration(text: str, error: Callable[[str], Exception] = ValueError) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds (``1h2m3.5s``, ``-1.5h``, ``300ms``), step for step."""
    original = text
    invalid = f"time: invalid duration {quote(original)}"
    negative = False
    if text and text[0] in "+-":
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if text == "":
        raise error(invalid)
    total = 0
    while text:
        if not (text[0] == "." or "0" <= text[0] <= "9"):
            raise error(invalid)
        before = len(text)
        leading = _leading_int(text)
        if leading is None:
            raise error(invalid)
        value, text = leading
        whole = before != len(text)
        fraction, scale, fractional = 0, 1.0, False
        if text.startswith("."):
            text = text[1:]
            before = len(text)
            fraction, scale, text = _leading_fraction(text)
            fractional = before != len(text)
        if not whole and not fractional:
            raise error(invalid)
        i = 0
        while i < len(text) and not (text[i] == "." or "0" <= text[i] <= "9"):
            i += 1
        if i == 0:
            raise error(f"time: missing unit in duration {quote(original)}")
        unit_text, text = text[:i], text[i:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise error(f"time: unknown unit {quote(unit_text)} in duration {quote(original)}")
        if value > (1 << 63) // unit:
            raise error(invalid)
        value *= unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > 1 << 63:
                raise error(invalid)
        total += value
        if total > 1 << 63:
            raise error(invalid)
    if negative:
        return -total
    if total > _MAX_DURATION:
        raise error(invalid)
    return total
