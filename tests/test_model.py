"""``@model`` behaves as ``attrs.frozen``: the same repr, equality and hash, from methods it shares.

Each check builds one class twice from the same body, once with each decorator, and compares
what the two do with the same values.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from containerkit import spec
from containerkit._model import _eq, _hash, _repr, model
from containerkit.storage import records


def _body() -> dict[str, Any]:
    return {
        "__annotations__": {"name": "str", "secret": "str", "label": "str", "size": "int", "derived": "int"},
        "name": attrs.field(),
        "secret": attrs.field(default="x", repr=False),  # kept out of the repr
        "label": attrs.field(default="", eq=str.lower),
        "size": attrs.field(default=0, repr=lambda v: f"{v} bytes", eq=False),  # a repr of its own, no eq
        "derived": attrs.field(init=False, default=7),
    }


def _pair(**options: Any) -> tuple[type, type]:
    ours = model(type("Thing", (), _body()), **options)
    theirs = attrs.frozen(type("Thing", (), _body()), **options)
    return ours, theirs


@pytest.mark.parametrize("options", [{}, {"kw_only": True}])
def test_repr_is_attrs_repr(options: dict[str, Any]) -> None:
    ours, theirs = _pair(**options)
    values = {"name": "a'b", "secret": "s", "label": "L", "size": 3}
    assert (
        repr(ours(**values))
        == repr(theirs(**values))
        == "Thing(name=\"a'b\", label='L', size=3 bytes, derived=7)"
    )


def test_equality_and_hash_are_attrs_ones() -> None:
    ours, theirs = _pair()
    for cls in (ours, theirs):
        a, b = cls(name="n", label="Web", size=1), cls(name="n", label="WEB", size=2)
        assert a == b  # size takes no part, label compares lowered
        assert not a != b  # noqa: SIM202 (the != of the class)
        assert hash(a) == hash(cls(name="n", label="Web", size=1))
        assert a != cls(name="m", label="Web")
        assert (a == 3) is False and a != 3
        assert len({a, cls(name="n", label="Web", size=5)}) == 1
    assert ours(name="n") != theirs(name="n")  # another class: NotImplemented both ways


def test_a_class_keeps_its_own_methods_and_stays_frozen() -> None:
    def own_repr(self: Any) -> str:
        return "mine"

    cls = model(type("Own", (), {"__annotations__": {"x": "int"}, "x": attrs.field(), "__repr__": own_repr}))
    item = cls(x=1)
    assert repr(item) == "mine"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        item.x = 2
    with pytest.raises(TypeError, match="repr, eq and hash"):
        model(type("Bad", (), {}), eq=False)


def test_a_value_that_holds_itself_reprs_as_attrs_does() -> None:
    shown = []
    for cls in _pair():
        holder: list[Any] = []
        item = cls(name=holder)
        holder.append(item)
        shown.append(repr(item))
    assert shown[0] == shown[1] == "Thing(name=[...], label='', size=0 bytes, derived=7)"


def test_the_models_use_it() -> None:
    # spec's models and the metadata records: the classes a command-line verb builds at import
    for cls in (spec.ContainerSpec, spec.Mount, spec.Resources, spec.Event, records.ContainerRecord):
        assert cls.__eq__ is _eq and cls.__hash__ is _hash and cls.__repr__ is _repr
    container = spec.ContainerSpec(image="busybox", command=["true"])
    assert container == spec.ContainerSpec(image="busybox", command=["true"])
    assert hash(container) == hash(spec.ContainerSpec(image="busybox", command=["true"]))
    assert repr(container).startswith("ContainerSpec(image='busybox', ")
    assert attrs.evolve(container, image="other") != container
