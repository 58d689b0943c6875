"""The network service stands on what it is given (a root, the metadata stores, state dirs),
never on an ``Engine``: built here from a bare database, it brings a network's bridge and nft
rules up and takes them down, and the engine modules around it import no ``Engine``."""

from __future__ import annotations

import ast
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit.engine
from containerkit.engine.network_service import NetworkService
from containerkit.network import bridge
from containerkit.network.nat import list_tables, nft_available
from containerkit.runtime.task import Task
from containerkit.storage.metadata import Database

_ENGINE_DIR = Path(containerkit.engine.__file__).parent


@pytest.fixture
def service(tmp_path: Path) -> Iterator[NetworkService]:
    if os.geteuid() != 0 or not nft_available():
        pytest.skip("bridges need root and nftables")
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    db = Database(root / "metadata.db")
    svc = NetworkService(root, db.networks, db.containers, lambda cid: Task(cid, root / "containers" / cid))
    try:
        yield svc
    finally:  # whatever the test left up: its bridges, the table, the root's registration
        for record in db.networks.all():
            if bridge.bridge_exists(record.bridge):
                svc.remove_network(record)
        svc.nat.remove_all()
        db.close()


def test_service_without_engine_brings_a_network_up_and_down(service: NetworkService) -> None:
    record = service.create_network(
        service.new_record(f"svc-{secrets.token_hex(3)}", None, None, False, None)
    )
    assert record.bridge.startswith(service.prefix + "b")
    assert bridge.bridge_exists(record.bridge)
    assert service.nat.name in list_tables()
    service.remove_network(record)
    assert not bridge.bridge_exists(record.bridge)
    assert service.nat.name not in list_tables()  # the last bridge of the root takes the table along


@pytest.mark.parametrize("module", ["network_service.py", "networks.py"])
def test_network_modules_do_not_import_the_engine(module: str) -> None:
    tree = ast.parse((_ENGINE_DIR / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert "containerkit.engine.engine" not in imported
    assert not [m for m in imported if m and m.startswith("containerkit.engine._")], imported
