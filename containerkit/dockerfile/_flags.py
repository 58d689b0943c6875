"""An instruction's ``--name[=value]`` flags, checked as BuildKit's ``BFlags`` checks them."""

from __future__ import annotations

__all__ = ["FlagError", "Flags", "suggest"]


class FlagError(Exception):
    """A flag the instruction does not take, or a bad value; worded as BuildKit words it."""


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def suggest(value: str, options: list[str], *, case_sensitive: bool) -> str | None:
    """The option within edit distance 2 of ``value`` (BuildKit's ``suggest.Search``), if any."""
    wanted = value if case_sensitive else value.lower()
    match: str | None = None
    best = 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return None
        distance = _distance(wanted, candidate)
        if distance < best:
            best = distance
            match = candidate
    if match is None or case_sensitive:
        return match
    if value == value.lower():
        return match.lower()
    if value == value.upper():
        return match.upper()
    return match


class Flags:
    """The flags one instruction was given, and the ones it declares (bool, string, strings)."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.kinds: dict[str, str] = {}
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.used: set[str] = set()

    def add_bool(self, name: str) -> None:
        self.kinds[name] = "bool"
        self.values[name] = "false"

    def add_string(self, name: str, default: str = "") -> None:
        self.kinds[name] = "string"
        self.values[name] = default

    def add_strings(self, name: str) -> None:
        self.kinds[name] = "strings"
        self.lists[name] = []

    def string(self, name: str) -> str:
        return self.values[name]

    def bool(self, name: str) -> bool:
        return self.values[name] == "true"

    def strings(self, name: str) -> tuple[str, ...]:
        return tuple(self.lists[name])

    def parse(self) -> None:
        """Check every flag given against the declared ones (BuildKit's ``BFlags.Parse``)."""
        for arg in self.args:
            if arg == "--":
                return
            if not arg.startswith("--"):
                raise FlagError(f"arg should start with -- : {arg}")
            flag_name, has_value, value = arg.partition("=")
            name = flag_name[2:]
            kind = self.kinds.get(name)
            if kind is None:
                message = f"unknown flag: {flag_name}"
                match = suggest(name, list(self.kinds), case_sensitive=True)
                raise FlagError(message + (f" (did you mean {match}?)" if match else ""))
            if name in self.used and kind != "strings":
                raise FlagError(f"duplicate flag specified: {flag_name}")
            self.used.add(name)
            if kind == "bool":
                if has_value and value == "":
                    raise FlagError(f"missing a value on flag: {flag_name}")
                if value.lower() in ("true", ""):
                    self.values[name] = "true"
                elif value.lower() == "false":
                    self.values[name] = "false"
                else:
                    raise FlagError(f"expecting boolean value for flag {flag_name}, not: {value}")
            elif not has_value:
                raise FlagError(f"missing a value on flag: {flag_name}")
            elif kind == "string":
                self.values[name] = value
            else:
                self.lists[name].append(value)
