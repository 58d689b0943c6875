"""A generated name is one no container has: a candidate that is taken is passed over."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import containerkit as ck
from containerkit.engine import _names

from .conftest import IMAGE


def test_a_generated_name_skips_the_taken_ones(engine: ck.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    first = engine.containers.create(image=IMAGE, command=["true"], name="eager_turing")
    try:
        candidates: Iterator[str] = iter(["eager_turing", "eager_turing", "calm_hopper"])
        monkeypatch.setattr(_names, "random_name", lambda: next(candidates))
        second = engine.containers.create(image=IMAGE, command=["true"])
        try:
            assert second.name == "calm_hopper"
        finally:
            second.remove()
    finally:
        first.remove()
