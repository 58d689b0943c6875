"""Links and nft tables with our naming whose root is unknown are swept by the next Engine."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.engine.network_service import reap_vanished_roots
from containerkit.network import bridge
from containerkit.network.nat import NatTable, list_tables


@pytest.fixture
def orphan_prefix() -> str:
    # A prefix no root hashes to in this test run: random hex, never registered.
    return "ck" + secrets.token_hex(3)[:5]


def test_unregistered_links_and_tables_are_reaped(orphan_prefix: str, engine_root: Path) -> None:
    name = f"{orphan_prefix}b{secrets.token_hex(4)[:7]}"
    bridge.ensure_bridge(name, "10.254.77.1/24")
    table = NatTable(orphan_prefix)
    table.ensure_network(name, "10.254.77.0/24")
    assert bridge.bridge_exists(name) and orphan_prefix in list_tables()
    with ck.Engine(root=engine_root):  # opening a root sweeps what no root owns
        pass
    assert not bridge.bridge_exists(name)
    assert orphan_prefix not in list_tables()


def test_registered_root_is_left_alone(engine: ck.Engine) -> None:
    net = engine.networks.create(f"keep-{secrets.token_hex(3)}")
    try:
        reap_vanished_roots()
        assert bridge.bridge_exists(net.bridge)
    finally:
        net.remove()
