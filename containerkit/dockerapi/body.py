"""Typed, case-insensitive access to Docker request JSON.

moby decodes bodies with Go's ``encoding/json``: keys match case-insensitively (docker-py sends
``detachKeys``, the CLI ``DetachKeys``), ``null`` is the same as absent and unknown keys are
ignored. Wrong types are a 400 that names the field by its full path.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from containerkit.errors import InvalidArgument

__all__ = ["Body"]


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


class Body:
    """A JSON object at ``path`` (``"HostConfig"``, ``""`` for the top)."""

    def __init__(self, data: Any, path: builtins.str = "") -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"{path or 'request body'}: expected a JSON object, got {_type_name(data)}")
        self._data = data
        self._lower = {str(k).lower(): k for k in data}
        self.path = path

    def _field(self, key: builtins.str) -> builtins.str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: builtins.str) -> Any:
        real = self._lower.get(key.lower())
        return None if real is None else self._data[real]

    def has(self, key: builtins.str) -> bool:
        return self.raw(key) is not None

    def _typed(self, key: builtins.str, kinds: tuple[type, ...], what: builtins.str) -> Any:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise InvalidArgument(
                f"{self._field(key)}: expected {what}, got {_type_name(value)} {value!r:.60}"
            )
        return value

    def str(self, key: builtins.str, default: builtins.str = "") -> builtins.str:
        value = self._typed(key, (str,), "a string")
        return default if value is None else value

    def opt_str(self, key: builtins.str) -> builtins.str | None:
        value = self._typed(key, (str,), "a string")
        return value or None

    def bool(self, key: builtins.str, default: bool = False) -> bool:
        value = self._typed(key, (bool,), "a boolean")
        return default if value is None else value

    def int(self, key: builtins.str, default: int = 0) -> int:
        value = self._typed(key, (int,), "an integer")
        return default if value is None else value

    def obj(self, key: builtins.str) -> Body:
        return Body(self._typed(key, (dict,), "an object"), self._field(key))

    def str_list(self, key: builtins.str) -> list[builtins.str] | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, builtins.str):  # docker accepts "Cmd": "echo hi" as one word list
            return [value]
        if not isinstance(value, list) or not all(isinstance(x, builtins.str) for x in value):
            raise InvalidArgument(f"{self._field(key)}: expected an array of strings, got {value!r:.80}")
        return list(value)

    def str_map(self, key: builtins.str) -> dict[builtins.str, builtins.str]:
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, builtins.str) for v in value.values()):
            raise InvalidArgument(f"{self._field(key)}: expected an object of strings, got {value!r:.80}")
        return {str(k): v for k, v in value.items()}

    def names(self) -> list[builtins.str]:
        return [str(k) for k in self._data]

    def items(self) -> list[tuple[builtins.str, Any]]:
        return [(str(k), v) for k, v in self._data.items()]
