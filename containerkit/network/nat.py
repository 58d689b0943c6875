"""NAT, isolation and published ports in ONE nftables table of our own.

Layout of ``table ip <name>`` (default ``containerkit``)::

    set bridges        ifnames of our non-internal and internal bridges
    chain prerouting   nat/dstnat:  fib daddr type local jump ports
    chain output       nat/-100:    fib daddr type local jump ports   (the host itself, 127.0.0.1 too)
    chain ports        one DNAT rule per published port, comment "port:<owner>:<host>:<port>/<proto>:..."
    chain postrouting  nat/srcnat:  per network "net:<bridge>": masquerade out, hairpin, 127.0.0.0/8
    chain forward      filter/0:    per network "net:<bridge>": isolation / internal drops

Every rule carries a comment naming its owner, so removing a container or network deletes
exactly its rules (by handle, in one transaction) and ``remove_all`` drops the table without
touching anyone else's rules. Published ports use DNAT, not a userland proxy: the kernel does
the copying (no process per port, no throughput cost), and ``127.0.0.1:<port>`` works through
``route_localnet`` on the bridge plus a masquerade of 127.0.0.0/8 sources into it, as docker
does with its proxy disabled. The forward policy stays ``accept``: we only drop what crosses
between our bridges or leaves an internal one; the host's own firewall still applies.

Read-check-write sequences hold an ``flock`` on ``lock_path``, so several engines (processes)
sharing a table never publish the same port twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from containerkit._model import model
from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotFound, Unavailable
from containerkit.network._ifname import check_ifname
from containerkit.network.nft import NFT_MISSING, list_tables, nft_available
from containerkit.network.nft import run as _nft
from containerkit.network.ports import (
    PublishedPort,
    check_owner,
    normalize_host_ip,
    pick_free_port,
    probe_free,
)
from containerkit.network.sysctl import enable_ip_forward, set_route_localnet
from containerkit.spec import PortBinding

__all__ = [
    "NFT_MISSING",
    "NatTable",
    "Rule",
    "list_tables",
    "nft_available",
]

_PICK_ATTEMPTS = 20


@model
class Rule:
    chain: str
    handle: int
    comment: str


class NatTable:
    """Our nft table. ``name`` lets tests (and separate engine roots) keep apart."""

    def __init__(
        self, name: str = "containerkit", *, lock_path: str | os.PathLike[str] | None = None
    ) -> None:
        check_ifname(name)  # same charset; keeps the name safe to splice into nft input
        self.name = name
        self.lock_path = Path(lock_path or f"/run/containerkit/nft-{name}.lock")

    # -- nft plumbing ---------------------------------------------------------------------------

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return _nft(args, stdin)

    def _apply(self, commands: Sequence[str]) -> None:
        """Run ``commands`` as one nft transaction: all of them happen, or none."""
        if not commands:
            return
        done = self._run(["-f", "-"], "\n".join(commands) + "\n")
        if done.returncode != 0:
            raise ContainerkitError(f"nft table {self.name}: {done.stderr.strip()}")

    def _listing(self) -> list[dict[str, Any]] | None:
        done = self._run(["-j", "-a", "list", "table", "ip", self.name])
        if done.returncode != 0:
            if "No such file or directory" in done.stderr:
                return None
            raise ContainerkitError(f"nft list table ip {self.name}: {done.stderr.strip()}")
        items: list[dict[str, Any]] = json.loads(done.stdout)["nftables"]
        return items

    def _port_rules(self) -> list[Rule] | None:
        """The rules of chain ``ports`` alone (None: no table or no such chain): a fraction of
        the whole table's listing, which grows with every network, on each start and removal."""
        done = self._run(["-j", "-a", "list", "chain", "ip", self.name, "ports"])
        if done.returncode != 0:
            if "No such file or directory" in done.stderr:
                return None
            raise ContainerkitError(f"nft list chain ip {self.name} ports: {done.stderr.strip()}")
        return self._rules_of(json.loads(done.stdout)["nftables"])

    @staticmethod
    def _rules_of(listing: list[dict[str, Any]] | None) -> list[Rule]:
        found = []
        for item in listing or []:
            rule = item.get("rule")
            if rule and "comment" in rule:
                found.append(Rule(rule["chain"], rule["handle"], rule["comment"]))
        return found

    def rules(self) -> list[Rule]:
        """Our rules that carry a comment, in table order."""
        return self._rules_of(self._listing())

    def exists(self) -> bool:
        return self._listing() is not None

    def _skeleton(self, listing: list[dict[str, Any]] | None) -> list[str]:
        """Commands creating what is missing of the table, set, chains and jump rules.

        Only what is missing: re-adding a hooked chain costs ~20 ms of kernel commit.
        """
        t = f"ip {self.name}"
        have = {("chain", i["chain"]["name"]) for i in listing or [] if "chain" in i}
        have |= {("set", i["set"]["name"]) for i in listing or [] if "set" in i}
        hooks = {
            "prerouting": "type nat hook prerouting priority dstnat; policy accept;",
            "output": "type nat hook output priority -100; policy accept;",
            "postrouting": "type nat hook postrouting priority srcnat; policy accept;",
            "forward": "type filter hook forward priority filter; policy accept;",
        }
        commands = [] if listing is not None else [f"add table {t}"]
        if ("set", "bridges") not in have:
            commands.append(f"add set {t} bridges {{ type ifname; }}")
        if ("chain", "ports") not in have:
            commands.append(f"add chain {t} ports")
        for chain, spec in hooks.items():
            if ("chain", chain) in have:
                continue
            commands.append(f"add chain {t} {chain} {{ {spec} }}")
            if chain in ("prerouting", "output"):
                commands.append(f"add rule {t} {chain} fib daddr type local jump ports")
        return commands

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The table's lock. :meth:`remove_all` deletes the lock file with the table (one per
        engine root would pile up in /run otherwise), so a lock taken on a file that was
        deleted meanwhile is dropped and taken again on the current one."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with open(self.lock_path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    current = os.stat(self.lock_path).st_ino
                except FileNotFoundError:
                    current = -1
                if current != os.fstat(handle.fileno()).st_ino:
                    continue
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
                return

    def _delete(self, rules: Sequence[Rule]) -> list[str]:
        return [f"delete rule ip {self.name} {r.chain} handle {r.handle}" for r in rules]

    # -- networks -------------------------------------------------------------------------------

    def ensure_network(self, bridge: str, subnet: str | IPv4Network, *, internal: bool = False) -> None:
        """Rules for the network on ``bridge``; idempotent, replaces what was there for it.

        Not internal: masquerade of ``subnet`` leaving through any other interface, hairpin
        masquerade (a container reaching a published port on its own bridge), masquerade of
        127.0.0.0/8 into the bridge (published ports on 127.0.0.1), ``route_localnet`` on the
        bridge and host IP forwarding. Internal: nothing leaves or enters the bridge by
        forwarding. Both: no forwarding to any other of our bridges.
        """
        check_ifname(bridge)
        if not nft_available():
            raise Unavailable(NFT_MISSING)
        try:
            net = IPv4Network(subnet)
        except ValueError:
            raise InvalidArgument(f"invalid subnet {subnet!r} for bridge {bridge}") from None
        tag = f'comment "net:{bridge}"'
        t = f"ip {self.name}"
        wanted = [
            f'add element {t} bridges {{ "{bridge}" }}',
            f'add rule {t} forward iifname "{bridge}" oifname @bridges oifname != "{bridge}" drop {tag}',
        ]
        if internal:
            wanted += [
                f'add rule {t} forward iifname "{bridge}" oifname != "{bridge}" drop {tag}',
                f'add rule {t} forward oifname "{bridge}" iifname != "{bridge}" drop {tag}',
            ]
        else:
            wanted += [
                f'add rule {t} postrouting ip saddr {net} oifname != "{bridge}" masquerade {tag}',
                f'add rule {t} postrouting oifname "{bridge}" ip saddr {net} ct status dnat masquerade {tag}',
                f'add rule {t} postrouting oifname "{bridge}" ip saddr 127.0.0.0/8 masquerade {tag}',
            ]
            try:
                set_route_localnet(bridge)
            except NotFound:
                raise NotFound(f"bridge {bridge} does not exist") from None
            enable_ip_forward()
        with self._locked():
            listing = self._listing()
            old = [r for r in self._rules_of(listing) if r.comment == f"net:{bridge}"]
            self._apply([*self._skeleton(listing), *self._delete(old), *wanted])

    def remove_network(self, bridge: str) -> None:
        """Drop the rules of the network on ``bridge``; a network we do not know is fine."""
        check_ifname(bridge)
        if not nft_available():
            return  # nothing could have been added through us
        with self._locked():
            listing = self._listing()
            if listing is None:
                return
            old = [r for r in self._rules_of(listing) if r.comment == f"net:{bridge}"]
            commands = self._delete(old)
            # "delete element" fails on a missing element; "add" first makes it idempotent
            t = f"ip {self.name}"
            commands += [
                f'add element {t} bridges {{ "{bridge}" }}',
                f'delete element {t} bridges {{ "{bridge}" }}',
            ]
            self._apply(commands)

    # -- published ports ------------------------------------------------------------------------

    def published(self, owner: str | None = None) -> list[PublishedPort]:
        """What the rule set says is published (by ``owner``, or by anyone)."""
        return self._ports_of(self.rules(), owner)

    @staticmethod
    def _ports_of(rules: Sequence[Rule], owner: str | None) -> list[PublishedPort]:
        ports = []
        for rule in rules:
            port = PublishedPort.from_comment(rule.comment)
            if port is not None and (owner is None or port.owner == owner):
                ports.append(port)
        return ports

    def publish(self, binding: PortBinding, container_ip: str, *, owner: str) -> PublishedPort:
        """Publish one port; see :meth:`publish_many`."""
        return self.publish_many([binding], container_ip, owner=owner)[0]

    def publish_many(
        self, bindings: Sequence[PortBinding], container_ip: str, *, owner: str
    ) -> list[PublishedPort]:
        """DNAT each binding's host address and port to ``container_ip``, all or nothing.

        A port held by a host socket, or already published by us (on the same address or on
        0.0.0.0), is a Conflict naming ``host_ip:port/proto``; then no rule is added.
        ``host_port=0`` resolves to a port free on the host and in our table.
        """
        check_owner(owner)
        try:
            target = str(IPv4Address(container_ip))
        except ValueError:
            raise InvalidArgument(f"invalid container ip {container_ip!r}") from None
        with self._locked():
            rules = self._port_rules()
            skeleton: list[str] = []
            if rules is None:  # no table yet, or a network's rules were never made
                listing = self._listing()
                rules, skeleton = self._rules_of(listing), self._skeleton(listing)
            taken = self._ports_of(rules, None)
            made: list[PublishedPort] = []
            for binding in bindings:
                host_ip = normalize_host_ip(binding.host_ip)
                proto = binding.protocol
                port = binding.host_port or self._pick(host_ip, proto, [*taken, *made])
                for other in (*taken, *made):
                    if other.overlaps(host_ip, port, proto):
                        raise Conflict(
                            f"host port {host_ip}:{port}/{proto} is already published "
                            f"(to {other.container_ip}:{other.container_port} by {other.owner})"
                        )
                probe_free(host_ip, port, proto)
                made.append(
                    PublishedPort(
                        owner=owner,
                        protocol=proto,
                        host_ip=host_ip,
                        host_port=port,
                        container_ip=target,
                        container_port=binding.container_port,
                    )
                )
            t = f"ip {self.name}"
            commands = skeleton
            for p in made:
                match = "" if p.host_ip == "0.0.0.0" else f"ip daddr {p.host_ip} "
                commands.append(
                    f"add rule {t} ports {match}{p.protocol} dport {p.host_port} "
                    f'dnat to {p.container_ip}:{p.container_port} comment "{p.comment()}"'
                )
            self._apply(commands)
        return made

    def _pick(self, host_ip: str, proto: str, taken: Sequence[PublishedPort]) -> int:
        for _ in range(_PICK_ATTEMPTS):
            port = pick_free_port(host_ip, proto)
            if not any(p.overlaps(host_ip, port, proto) for p in taken):
                return port
        raise Conflict(f"no free host port found on {host_ip}/{proto}")

    def unpublish(self, owner: str) -> list[PublishedPort]:
        """Remove every port rule of ``owner`` in one transaction; returns what was removed."""
        check_owner(owner)
        with self._locked():
            rules = self._port_rules() or []
            mine = [
                (r, p)
                for r in rules
                if (p := PublishedPort.from_comment(r.comment)) is not None and p.owner == owner
            ]
            self._apply(self._delete([r for r, _ in mine]))
        return [p for _, p in mine]

    def remove_all(self) -> None:
        """Drop our whole table (every network and port rule); fine if it is not there."""
        if not nft_available():
            return
        with self._locked():
            if self.exists():
                self._apply([f"delete table ip {self.name}"])
            self.lock_path.unlink(missing_ok=True)
