"""A bundle's config.json is written without a sync: what a power cut leaves of it (an empty
file, or none) is refused at start with an error that names it, and the container can still
be removed. A real power cut cannot be made here; truncating or unlinking the file leaves
what one can leave."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE, leftovers


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _gone(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("runtime", ["builtin", "runc"])
@pytest.mark.parametrize("damage", [_empty, _gone], ids=["empty", "missing"])
def test_start_refuses_a_lost_config(engine: ck.Engine, runtime: str, damage: Callable[[Path], None]) -> None:
    container = engine.containers.create(image=IMAGE, command=["true"], network="none", runtime=runtime)
    try:
        config = container.state_dir / "bundle" / "config.json"
        assert config.stat().st_size > 0
        damage(config)
        with pytest.raises(ck.ContainerkitError) as failed:
            container.start()
        message = str(failed.value)
        assert "config.json" in message and str(container.state_dir / "bundle") in message
        assert "create it again" in message
        assert container.status != "running"
    finally:
        container.remove(force=True)
    assert leftovers(container.id) == []
    with pytest.raises(ck.NotFound):
        engine.containers.get(container.id)
