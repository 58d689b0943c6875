"""libnftables in-process: the same language and answers as the nft command."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from containerkit.linux.nftables import open_nftables


def test_runs_commands_and_lists_json() -> None:
    lib = open_nftables()
    if lib is None:
        pytest.skip("libnftables.so.1 is not installed (Debian package libnftables1)")
    name = f"cktest{secrets.token_hex(3)}"
    status, _out, err = lib.run(f"add table ip {name}\nadd chain ip {name} c\n")
    try:
        assert status == 0, err
        assert name in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        status, out, _err = lib.run(f"list table ip {name}", json=True, handles=True)
        items = json.loads(out)["nftables"]
        assert any(item.get("chain", {}).get("name") == "c" and "handle" in item["chain"] for item in items)
        status, _out, err = lib.run("list table ip no-such-table-here")
        assert status != 0 and "No such file or directory" in err
    finally:
        lib.run(f"delete table ip {name}")
    assert name not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
