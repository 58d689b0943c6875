"""``WWW-Authenticate`` parsed as RFC 7235 challenges with RFC 6750 auth-params.

A header may carry several challenges (``Basic realm="x", Bearer realm="y",service="z"``), and a
quoted value may hold commas (``scope="repository:a:pull,push"``) and backslash escapes, so the
header is tokenised, never split on commas. A repeated parameter (some registries repeat ``scope``)
keeps every value, joined by spaces as the OAuth2 form joins scopes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

__all__ = ["Challenge", "parse_challenges"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SPACE = re.compile(r"[ \t]*")


@attrs.frozen
class Challenge:
    """One challenge: ``scheme`` lowercased, parameter names lowercased, values unquoted."""

    scheme: str
    params: Mapping[str, str] = attrs.field(factory=dict)
    token68: str | None = None

    def get(self, name: str, default: str = "") -> str:
        return self.params.get(name.lower(), default)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        match = _SPACE.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()

    def skip_separators(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t,":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str | None:
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    def quoted(self) -> str:
        """A quoted-string starting at ``pos`` (an unterminated one runs to the end of the header)."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif char == '"':
                break
            else:
                out.append(char)
        return "".join(out)

    def at_param(self) -> bool:
        """Whether a ``name=`` auth-param (not a new challenge's scheme) starts at ``pos``."""
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            return False
        rest = _SPACE.match(self.text, match.end())
        assert rest is not None
        after = rest.end()
        return after < len(self.text) and self.text[after] == "=" and self.text[after : after + 2] != "=="


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value; garbage between them is skipped, never raised."""
    scan = _Scanner(header)
    challenges: list[Challenge] = []
    while True:
        scan.skip_separators()
        if scan.pos >= len(scan.text):
            return challenges
        scheme = scan.token()
        if scheme is None:
            scan.pos += 1  # not a token: skip the character and look for the next challenge
            continue
        params: dict[str, str] = {}
        token68: str | None = None
        scan.skip_space()
        if not scan.at_param():
            match = _TOKEN68.match(scan.text, scan.pos)
            if match is not None:
                rest = _SPACE.match(scan.text, match.end())
                assert rest is not None
                if rest.end() >= len(scan.text) or scan.text[rest.end()] == ",":
                    token68 = match.group()
                    scan.pos = match.end()
        while token68 is None:
            scan.skip_space()
            if not scan.at_param():
                break
            name = scan.token()
            assert name is not None
            scan.skip_space()
            scan.pos += 1  # "="
            scan.skip_space()
            value = scan.quoted() if scan.peek() == '"' else (scan.token() or "")
            key = name.lower()
            params[key] = f"{params[key]} {value}" if key in params else value
            scan.skip_space()
            if scan.peek() != ",":
                break
            checkpoint = scan.pos
            scan.skip_separators()
            if not scan.at_param():
                scan.pos = checkpoint
                break
        challenges.append(Challenge(scheme.lower(), params, token68))
