"""Finding 10: default limits. A pids limit for every container (Podman's 2048 unless the spec or
the engine says otherwise), and json-file logs that rotate instead of filling the disk."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE

# The shell is pid 1 of the container and forks ``sleep`` until a fork fails; a fork failure
# ends a non-interactive ash, so the count is kept in a file and read back by the outer shell
# with builtins only (no fork is left to spare once the limit is reached).
FORK_UNTIL_FAILURE = (
    "sh -c 'n=0; while [ $n -lt {cap} ]; do sleep 120 & n=$((n+1)); echo $n > /tmp/n; done' "
    "2>/dev/null; read n < /tmp/n; echo count=$n"
)


def _fork_count(engine: ck.Engine, runtime: str, cap: int, **fields: object) -> int:
    c = engine.containers.run(
        IMAGE, ["sh", "-c", FORK_UNTIL_FAILURE.format(cap=cap)], runtime=runtime, **fields
    )
    try:
        assert c.wait(timeout=120) == 0
        out = (c.logs() or b"").decode()
    finally:
        c.remove(force=True)  # the sleeps die with the container's pid namespace
    match = re.search(r"count=(\d+)", out)
    assert match, out
    return int(match.group(1))


def _pids_limit(engine: ck.Engine, runtime: str, **fields: object) -> int | None:
    c = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, **fields)
    try:
        return c.stats().pids_limit
    finally:
        c.remove(force=True)


def test_default_container_cannot_fork_past_2048(engine: ck.Engine, runtime: str) -> None:
    count = _fork_count(engine, runtime, cap=3000)
    # pid 1 (sh) and the inner sh count against the limit too
    assert 2000 <= count <= 2046, count


def test_pids_limit_settings(engine: ck.Engine, runtime: str) -> None:
    assert _pids_limit(engine, runtime) == 2048
    assert _pids_limit(engine, runtime, resources=ck.Resources(pids=100)) == 100
    assert _pids_limit(engine, runtime, resources=ck.Resources(pids=-1)) is None


@pytest.fixture
def small_default_engine(security_root: Path) -> Iterator[ck.Engine]:
    """A second engine on the same root whose default pids limit is 64."""
    with ck.Engine(root=security_root, default_pids_limit=64, forkserver=False) as eng:
        yield eng


def test_engine_default_pids_limit(small_default_engine: ck.Engine, runtime: str) -> None:
    assert _pids_limit(small_default_engine, runtime) == 64
    assert _fork_count(small_default_engine, runtime, cap=200) <= 62
    assert _pids_limit(small_default_engine, runtime, resources=ck.Resources(pids=500)) == 500


def test_pids_validation() -> None:
    for bad in (0, -2, True, "10"):
        with pytest.raises(ck.errors.InvalidArgument, match="pids"):
            ck.Resources(pids=bad)  # type: ignore[arg-type]
    assert ck.Resources(pids=-1).effective(2048).pids is None
    assert ck.Resources().effective(2048).pids == 2048
    assert ck.Resources().effective(None).pids is None
    assert ck.Resources(pids=7).effective(2048).pids == 7
    with pytest.raises(ck.errors.InvalidArgument, match="default_pids_limit"):
        ck.Engine(root="/nonexistent-never-made", default_pids_limit=-5)
