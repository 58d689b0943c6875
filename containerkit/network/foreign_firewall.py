"""Accept rules for our bridges in a foreign iptables firewall (Docker's ``FORWARD`` DROP).

dockerd sets the ``filter`` table's ``FORWARD`` policy to DROP and turns on
``bridge-nf-call-iptables``, so forwarded and even bridged traffic of our networks meets
Docker's chains. A drop verdict in any base chain is final: our own nft table cannot accept
what Docker's chain drops. So, as netavark, LXD and libvirt do, we put accept rules where that
firewall looks: the ``DOCKER-USER`` chain when it exists (Docker jumps there first and never
touches its content), else the top of ``FORWARD``, through the ``iptables`` the host uses
(``iptables-nft`` or ``iptables-legacy``: Docker's rules live where that command puts them).

Per bridge ``B`` (each rule commented ``containerkit:B``)::

    -i B -j ACCEPT                                              containers to each other and out
    -o B -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT   replies coming back
    -o B -m conntrack --ctstate DNAT -j ACCEPT                  published ports

Isolation between our bridges and of internal networks stays in our nft table: its drop
still applies after an accept here. Nothing is added where no iptables ``filter`` table
exists (a host without a foreign firewall: no process is run at all), policies are never
changed and chains never flushed; removal deletes only rules that carry our comment. The cost
is per bridge (two ``iptables`` processes when it comes up), nothing per container.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from containerkit._model import model
from containerkit.errors import ContainerkitError
from containerkit.linux.nftables import open_nftables
from containerkit.network._ifname import check_ifname
from containerkit.network.nft import list_tables

__all__ = [
    "COMMENT_PREFIX",
    "Iptables",
    "allow_bridge",
    "bridges_with_rules",
    "detect",
    "forget_bridge",
    "forget_prefix",
    "interfaces_in_forward",
    "rules_for",
]

COMMENT_PREFIX = "containerkit:"
_USER_CHAIN = "DOCKER-USER"
_LEGACY_TABLES = Path("/proc/net/ip_tables_names")


@model
class Iptables:
    """The host's ``iptables``: its backend and the matching ``iptables-restore``."""

    backend: Literal["nft", "legacy"]
    command: str
    restore: str

    def run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return _run([self.command, *args], stdin)

    def run_restore(self, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
        return _run([self.restore, *args], stdin)


def _run(argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ContainerkitError(f"cannot run {argv[0]}: {exc}") from exc


def detect() -> Iptables | None:
    """The ``iptables`` on PATH (or in /usr/sbin) and its backend; None if there is none.

    The backend is read from where the alternatives symlinks lead (no process); an unusual
    install is asked with ``iptables -V``.
    """
    command = shutil.which("iptables")
    if command is None and os.path.exists("/usr/sbin/iptables"):
        command = "/usr/sbin/iptables"
    if command is None:
        return None
    restore = os.path.join(os.path.dirname(command), "iptables-restore")
    if not os.path.exists(restore):
        restore = shutil.which("iptables-restore") or restore
    real = os.path.basename(os.path.realpath(command))
    backend: Literal["nft", "legacy"]
    if "legacy" in real:
        backend = "legacy"
    elif "nft" in real:
        backend = "nft"
    else:
        try:
            version = subprocess.run([command, "-V"], capture_output=True, text=True, check=False).stdout
        except OSError:
            return None
        backend = "legacy" if "legacy" in version else "nft"
    return Iptables(backend, command, restore)


def _filter_table_exists(fw: Iptables) -> bool:
    """Whether an iptables ``filter`` table exists (some firewall manages forwarding), cheaply."""
    if fw.backend == "legacy":
        try:
            return "filter" in _LEGACY_TABLES.read_text().split()
        except OSError:
            return False
    return "filter" in list_tables("ip")


def rules_for(bridge: str) -> list[str]:
    """Our rule specs for ``bridge`` (without chain), in the order they sit in the chain."""
    tag = f'-m comment --comment "{COMMENT_PREFIX}{bridge}"'
    return [
        f"-i {bridge} {tag} -j ACCEPT",
        f"-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED {tag} -j ACCEPT",
        f"-o {bridge} -m conntrack --ctstate DNAT {tag} -j ACCEPT",
    ]


@model
class _Rule:
    chain: str
    spec: str  # as ``iptables -S`` prints it, without ``-A <chain>``
    owner: str  # the bridge named in our comment


def _listing(fw: Iptables) -> tuple[set[str], list[_Rule]] | None:
    """The filter table's chains and our rules in it; None when there is no filter table."""
    if not _filter_table_exists(fw):
        return None
    done = fw.run(["-w", "-t", "filter", "-S"])
    if done.returncode != 0 and "incompatible" in done.stderr:
        return None  # an nftables table named filter, not iptables': no iptables firewall
    if done.returncode != 0:
        raise ContainerkitError(f"{fw.command} -t filter -S: {done.stderr.strip()}")
    chains = {"INPUT", "FORWARD", "OUTPUT"}
    ours = []
    for line in done.stdout.splitlines():
        if line.startswith("-N "):
            chains.add(line[3:].strip())
            continue
        if not line.startswith("-A ") or COMMENT_PREFIX not in line:
            continue
        words = shlex.split(line)
        try:
            comment = words[words.index("--comment") + 1]
        except (ValueError, IndexError):
            continue
        if comment.startswith(COMMENT_PREFIX):
            chain, _, spec = line[3:].partition(" ")
            ours.append(_Rule(chain, spec, comment[len(COMMENT_PREFIX) :]))
    return chains, ours


def _restore(fw: Iptables, lines: Iterable[str]) -> None:
    """Apply ``lines`` to the filter table in one ``iptables-restore --noflush`` (all or none)."""
    body = list(lines)
    if not body:
        return
    text = "*filter\n" + "\n".join(body) + "\nCOMMIT\n"
    done = fw.run_restore(["-w", "--noflush"], text)
    if done.returncode != 0:
        raise ContainerkitError(f"{fw.restore} --noflush (filter table): {done.stderr.strip()}")


def allow_bridge(bridge: str, fw: Iptables | None = None) -> str | None:
    """Accept ``bridge``'s traffic in the host's iptables firewall; idempotent.

    Returns the chain the rules went into, or None when there is no iptables filter table
    (then nothing drops our traffic and nothing is added).
    """
    check_ifname(bridge)
    fw = fw or detect()
    if fw is None:
        return None
    found = _listing(fw)
    if found is None:
        return None
    chains, ours = found
    chain = _USER_CHAIN if _USER_CHAIN in chains else "FORWARD"
    wanted = rules_for(bridge)
    mine = [r for r in ours if r.owner == bridge]
    if [(r.chain, r.spec) for r in mine] == [(chain, spec) for spec in wanted]:
        return chain  # already there, as iptables -S prints them back
    deletes = [f"-D {r.chain} {r.spec}" for r in mine]
    inserts = [f"-I {chain} 1 {spec}" for spec in reversed(wanted)]
    _restore(fw, [*deletes, *inserts])
    return chain


def forget_bridge(bridge: str, fw: Iptables | None = None) -> int:
    """Delete every rule of ours for ``bridge`` (in any chain); the number deleted."""
    check_ifname(bridge)
    return _forget(lambda owner: owner == bridge, fw)


def forget_prefix(prefix: str, fw: Iptables | None = None) -> int:
    """Delete our rules for every bridge whose name starts with ``prefix`` (a vanished root's)."""
    check_ifname(prefix)
    return _forget(lambda owner: owner.startswith(prefix), fw)


def _forget(match: Callable[[str], bool], fw: Iptables | None) -> int:
    fw = fw or detect()
    if fw is None:
        return 0
    found = _listing(fw)
    if found is None:
        return 0
    doomed = [r for r in found[1] if match(r.owner)]
    _restore(fw, [f"-D {r.chain} {r.spec}" for r in doomed])
    return len(doomed)


def bridges_with_rules(fw: Iptables | None = None) -> set[str]:
    """Bridges that have rules of ours in the host's iptables firewall."""
    fw = fw or detect()
    if fw is None:
        return set()
    found = _listing(fw)
    return {r.owner for r in found[1]} if found else set()


def interfaces_in_forward(tables: Iterable[str] | None = None) -> set[str]:
    """Interface names that rules of the iptables-nft ``FORWARD`` and ``DOCKER-USER`` chains
    match on, read in-process through libnftables (well under a millisecond, no process): how
    the orphan sweep finds accept rules a crash left behind. Empty where there is no such
    table, no libnftables, or the host's iptables is legacy (then the sweep goes by links and
    nft tables alone). ``tables``: ``list_tables("ip")`` when the caller has it already."""
    if "filter" not in (list_tables("ip") if tables is None else tables):
        return set()
    lib = open_nftables()
    fw = detect()
    if lib is None or fw is None or fw.backend != "nft":
        return set()
    found: set[str] = set()
    for chain in ("FORWARD", _USER_CHAIN):
        status, out, _ = lib.run(f"list chain ip filter {chain}", json=True)
        if status or not out.strip():
            continue
        for item in json.loads(out).get("nftables", []):
            for expr in item.get("rule", {}).get("expr", []):
                found.update(_ifname_matched(expr))
    return found


def _ifname_matched(expr: object) -> list[str]:
    """``["br0"]`` for the nft JSON expression ``iifname "br0"`` (or ``oifname``), else []."""
    match = expr.get("match") if isinstance(expr, dict) else None
    left = match.get("left") if isinstance(match, dict) else None
    meta = left.get("meta") if isinstance(left, dict) else None
    right = match.get("right") if isinstance(match, dict) else None
    if isinstance(meta, dict) and meta.get("key") in ("iifname", "oifname") and isinstance(right, str):
        return [right]
    return []
