"""Docker's firewall state, recreated without dockerd, for the current network namespace.

What dockerd 28 (28.0-28.2, iptables backend) leaves on a host with its default bridge and no
container: the ``filter`` FORWARD policy DROP, jumps to ``DOCKER-USER`` (``-j RETURN``) and
``DOCKER-FORWARD`` (``DOCKER-CT``, ``DOCKER-ISOLATION-STAGE-1/2``, ``DOCKER-BRIDGE`` ->
``DOCKER``), the ``nat`` DOCKER chain and masquerade of 172.17.0.0/16, a ``docker0`` bridge,
IP forwarding, and br_netfilter's ``net.bridge.bridge-nf-call-iptables=1`` (per network
namespace on this kernel: checked by :func:`install`). Written through ``iptables-restore``,
so it lands where the host's ``iptables`` puts rules (iptables-nft here), as dockerd's does.

Only ever applied inside a throwaway network namespace (``ip netns exec``): the tests running
beside it on the host are not affected, and deleting the namespace removes all of it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

DOCKER_RULES = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER ! -i docker0 -o docker0 -j DROP
-A DOCKER-BRIDGE -o docker0 -j DOCKER
-A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1
-A DOCKER-FORWARD -j DOCKER-BRIDGE
-A DOCKER-FORWARD -i docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
"""

BR_NF_CALL_IPTABLES = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _sh(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def install(netns: str) -> None:
    """Docker's state in the named network namespace (``ip netns`` name) made by the caller."""
    ns = ("ip", "netns", "exec", netns)
    _sh(*ns, "ip", "link", "add", "docker0", "type", "bridge")
    _sh(*ns, "ip", "addr", "add", "172.17.0.1/16", "dev", "docker0")
    _sh(*ns, "ip", "link", "set", "docker0", "up")
    _sh(*ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    _sh(*ns, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
    _sh(*ns, "iptables-restore", "-w", stdin=DOCKER_RULES)


def snapshot(netns: str | None = None) -> str:
    """``iptables-save`` of filter and nat without counters and comment lines: equal
    snapshots mean the same chains, policies and rules in the same order."""
    prefix = ("ip", "netns", "exec", netns) if netns else ()
    text = _sh(*prefix, "iptables-save", "-t", "filter") + _sh(*prefix, "iptables-save", "-t", "nat")
    lines = [re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(lines)


def ours(text: str) -> list[str]:
    """Rules in a snapshot that carry a containerkit comment."""
    return [line for line in text.splitlines() if "containerkit:" in line]


def without_ours(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "containerkit:" not in line)
