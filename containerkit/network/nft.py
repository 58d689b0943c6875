"""Running nft: in-process through libnftables where it is installed, else the ``nft`` command.

Apart from :mod:`containerkit.network.nat` (which re-exports these names) so that what every
Engine open runs, the sweep of tables whose root is gone, does not load the NAT table's code
and its port picking: a ``run --network none`` never touches a table of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from containerkit.errors import Unavailable
from containerkit.linux.nftables import open_nftables

__all__ = ["NFT_MISSING", "list_tables", "nft_available", "run"]


def run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``nft ARGS`` (``-j``, ``-a``, ``-f -`` understood): in-process through libnftables where
    it is installed (no process per call), else the ``nft`` command."""
    lib = open_nftables()
    if lib is not None:
        rest = [a for a in args if a not in ("-j", "-a")]
        commands = stdin or "" if rest == ["-f", "-"] else " ".join(rest)
        status, out, err = lib.run(commands, json="-j" in args, handles="-a" in args)
        return subprocess.CompletedProcess(["nft", *args], 1 if status else 0, out, err)
    nft = _nft_command()
    if nft is None:
        raise Unavailable(NFT_MISSING)
    try:
        return subprocess.run([nft, *args], input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise Unavailable(NFT_MISSING) from None


NFT_MISSING = (
    "bridge networks need nftables: neither libnftables nor the nft command is installed "
    "(install the Debian package nftables); networks none, host and container: work without it"
)


def _nft_command() -> str | None:
    """The ``nft`` command: on PATH, else where Debian puts it; None if it is not installed."""
    found = shutil.which("nft")
    if found is None and os.access("/usr/sbin/nft", os.X_OK):
        found = "/usr/sbin/nft"
    return found


def nft_available() -> bool:
    """Whether nftables can be driven here (libnftables in-process, or the ``nft`` command)."""
    return open_nftables() is not None or _nft_command() is not None


def list_tables(family: str = "ip") -> list[str]:
    """Names of the host's nft tables of ``family`` (for sweeping tables whose owner is gone);
    none where nftables is not installed (then nobody can have made one through us)."""
    if not nft_available():
        return []
    done = run(["-j", "list", "tables", family])
    if done.returncode != 0 or not done.stdout.strip():
        return []
    items = json.loads(done.stdout).get("nftables", [])
    return [str(item["table"]["name"]) for item in items if "table" in item]
