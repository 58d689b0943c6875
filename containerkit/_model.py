"""``@model``: ``attrs.frozen`` whose ``__repr__``, ``__eq__`` and ``__hash__`` are written once, here.

attrs writes those three methods as source for each class and compiles it when the class is
built, at import: about a third of each model's build time, paid by every process that imports
the module (a command-line ``run`` builds some sixty classes before its container starts). The
ones here read the fields from the class's attrs metadata when called and behave as attrs' own:
the same repr (its recursion guard included), equality by the fields that take part in it with
their ``eq_key`` applied, ``NotImplemented`` against another class, and a hash over the same
fields. Everything else (``__init__``, validators, converters, slots, ``evolve``) is attrs'.

For type checkers ``model`` *is* ``attrs.frozen``, so the attrs plugin types the classes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

__all__ = ["model"]

_repring = threading.local()


def _repr(self: Any) -> str:
    seen: set[int] | None = getattr(_repring, "ids", None)
    if seen is None:
        seen = _repring.ids = set()
    if id(self) in seen:
        return "..."
    seen.add(id(self))
    try:
        parts = []
        for a in type(self).__attrs_attrs__:
            if a.repr is False:
                continue
            value = getattr(self, a.name) if a.init else getattr(self, a.name, attrs.NOTHING)
            parts.append(f"{a.name}={repr(value) if a.repr is True else a.repr(value)}")
        name = type(self).__qualname__.rsplit(">.", 1)[-1]
        return f"{name}({', '.join(parts)})"
    finally:
        seen.discard(id(self))


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    result: Any = True
    for a in type(self).__attrs_attrs__:
        if not a.eq:
            continue
        mine, theirs = getattr(self, a.name), getattr(other, a.name)
        if a.eq_key is not None:
            mine, theirs = a.eq_key(mine), a.eq_key(theirs)
        result = mine == theirs
        if not result:
            return result
    return result


def _hash(self: Any) -> int:
    cls = type(self)
    values: list[Any] = [cls.__module__, cls.__qualname__]
    for a in cls.__attrs_attrs__:
        if a.hash is True or (a.hash is None and a.eq is True):
            value = getattr(self, a.name)
            values.append(a.eq_key(value) if a.eq_key is not None else value)
    return hash(tuple(values))


def _model(maybe_cls: type | None = None, /, **options: Any) -> Any:
    """``attrs.frozen(**options)`` with the shared methods (a class's own ones are kept)."""
    if {"repr", "eq", "hash", "unsafe_hash", "order", "cache_hash"} & options.keys():
        raise TypeError(f"model() sets repr, eq and hash itself: {sorted(options)}")

    def wrap(cls: type) -> type:
        for name, method in (("__repr__", _repr), ("__eq__", _eq), ("__hash__", _hash)):
            if name not in cls.__dict__:
                setattr(cls, name, method)
        built: type = attrs.frozen(cls, repr=False, eq=False, **options)
        return built

    return wrap if maybe_cls is None else wrap(maybe_cls)


if TYPE_CHECKING:
    from attrs import frozen as model
else:
    model: Callable[..., Any] = _model
