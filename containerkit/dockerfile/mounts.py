"""``RUN --mount=...`` values, read as BuildKit's ``commands_runmount.go`` reads them.

The parser checks each value once without expanding variables (only ``from=`` must not use
one); the builder calls ``parse_mount`` again with its expander to get the final mount.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable

import attrs

from ._flags import suggest

__all__ = ["MountError", "RunMount", "parse_mount"]

_TYPES = ["bind", "cache", "tmpfs", "secret", "ssh"]
_SHARING = ["shared", "private", "locked"]
_KEYS = [
    "type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode",
    "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env",
]  # fmt: skip
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?\Z")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class MountError(Exception):
    """A ``--mount`` value BuildKit refuses; worded as BuildKit words it."""


@attrs.frozen
class RunMount:
    """One ``--mount``: ``type`` bind (default), cache, tmpfs, secret or ssh."""

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = False
    size_limit: int = 0
    cache_id: str = ""
    sharing: str = ""
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MountError(f"invalid value for {key}: {value}")


def _uint(key: str, value: str, base: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(ch not in digits for ch in value) or int(value, base) >= 2**32:
        raise MountError(f"invalid value {value} for {key}")
    return int(value, base)


def _ram_in_bytes(value: str) -> int:
    found = _SIZE.match(value)
    if found is None:
        raise MountError(f"invalid value for size: {value}")
    unit = 1024 ** ("kmgtp".index(found.group(2).lower()) + 1) if found.group(2) else 1
    return int(float(found.group(1)) * unit)


def parse_mount(value: str, expand: Callable[[str], str] | None) -> RunMount:
    """One ``--mount`` value; with ``expand`` None, only what needs no variables is checked."""
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as error:
        raise MountError(f"failed to parse csv mounts: {error}") from None
    m: dict[str, object] = {"type": "bind"}
    readonly_auto = True
    for field in fields:
        key, has_value, item = field.partition("=")
        key = key.lower()
        if not has_value:
            if expand is None:
                continue
            if key in ("readonly", "ro"):
                m["readonly"], readonly_auto = True, False
            elif key in ("readwrite", "rw"):
                m["readonly"], readonly_auto = False, False
            elif key == "required" and m["type"] in ("secret", "ssh"):
                m["required"] = True
            elif key == "required":
                raise MountError(f"unexpected key '{key}' for mount type '{m['type']}'")
            else:
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            continue
        if expand is not None:
            item = expand(item)
        elif key == "from":
            at = item.find("$")
            if at != -1 and at != len(item) - 1:
                raise MountError(f"'{key}' doesn't support variable expansion, define alias stage instead")
        else:
            continue
        if key == "type":
            if item.lower() not in _TYPES:
                match = suggest(item, _TYPES, case_sensitive=True)
                hint = f" (did you mean {match}?)" if match else ""
                raise MountError(f'unsupported mount type "{item}"{hint}')
            m["type"] = item.lower()
        elif key == "from":
            m["from_"] = item
        elif key in ("source", "src"):
            m["source"] = item
        elif key in ("target", "dst", "destination"):
            m["target"] = item
        elif key in ("readonly", "ro"):
            m["readonly"], readonly_auto = _bool(key, item), False
        elif key in ("readwrite", "rw"):
            m["readonly"], readonly_auto = not _bool(key, item), False
        elif key == "required":
            if m["type"] not in ("secret", "ssh"):
                raise MountError(f"unexpected key '{key}' for mount type '{m['type']}'")
            m["required"] = _bool(key, item)
        elif key == "size":
            if m["type"] != "tmpfs":
                raise MountError(f"unexpected key '{key}' for mount type '{m['type']}'")
            m["size_limit"] = _ram_in_bytes(item)
        elif key == "id":
            m["cache_id"] = item
        elif key == "sharing":
            if item.lower() not in _SHARING:
                match = suggest(item, _SHARING, case_sensitive=True)
                hint = f" (did you mean {match}?)" if match else ""
                raise MountError(f'unsupported sharing value "{item}"{hint}')
            m["sharing"] = item.lower()
        elif key == "mode":
            m["mode"] = _uint(key, item, 8)
        elif key in ("uid", "gid"):
            m[key] = _uint(key, item, 10)
        elif key == "env":
            m["env"] = item
        else:
            match = suggest(key, _KEYS, case_sensitive=True)
            hint = f" (did you mean {match}?)" if match else ""
            raise MountError(f"unexpected key '{key}' in '{field}'{hint}")
    kind = m["type"]
    if kind not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if m.get(name) is not None:
                raise MountError(f'{name} not allowed for "{kind}" type mounts')
    if readonly_auto:
        m["readonly"] = kind not in ("cache", "tmpfs")
    if kind == "secret":
        if m.get("from_"):
            raise MountError("secret mount should not have a from")
        if m.get("sharing"):
            raise MountError("secret mount should not define sharing")
        if not m.get("source") and not m.get("target") and not m.get("cache_id"):
            raise MountError("invalid secret mount. one of source, target required")
        if m.get("source") and m.get("cache_id"):
            raise MountError("both source and id can't be set")
    if m.get("sharing") and kind != "cache":
        raise MountError(f"invalid cache sharing set for {kind} mount")
    return RunMount(**m)  # type: ignore[arg-type]
