"""Hypothesis strategies for ``ContainerSpec`` fields, shaped as the create body can carry them.

Two things the JSON cannot keep, so the strategies do not make them: the order of port
bindings across different ports (``PortBindings`` is a map keyed by port, so bindings come
back grouped by port), and the order of tmpfs mounts among the others (``Tmpfs`` is its own
map, read after ``Mounts``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from containerkit.spec import ContainerSpec, Healthcheck, Mount, PortBinding, Resources, RestartPolicy

_WORD = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), min_size=1, max_size=12)
_ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_NAME = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_ALNUM),
    st.text(_ALNUM + "_.-", min_size=1, max_size=12),
)
_PATH = st.lists(st.text(_ALNUM + "_.-", min_size=1, max_size=8), min_size=1, max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
_ENV_KEY = st.builds(
    lambda first, rest: first + rest, st.sampled_from(_ALNUM[:52] + "_"), st.text(_ALNUM + "_", max_size=8)
)
_IP = st.sampled_from(["0.0.0.0", "127.0.0.1", "10.1.2.3", "::1", "fd00::5"])
_CAPS = st.lists(
    st.sampled_from(["NET_ADMIN", "SYS_PTRACE", "CHOWN", "ALL", "NET_RAW"]), unique=True, max_size=3
)


def _bind() -> st.SearchStrategy[Mount]:
    return st.builds(
        Mount,
        type=st.just("bind"),
        source=_PATH,
        target=_PATH,
        read_only=st.booleans(),
        options=st.sampled_from([(), ("rshared",), ("rslave",), ("private",)]),
    )


def _volume() -> st.SearchStrategy[Mount]:
    return st.builds(
        Mount,
        type=st.just("volume"),
        source=st.one_of(st.just(""), _NAME),
        target=_PATH,
        read_only=st.booleans(),
        options=st.sampled_from([(), ("nocopy",)]),
    )


def _tmpfs_mounts() -> st.SearchStrategy[list[Mount]]:
    one = st.builds(
        Mount,
        type=st.just("tmpfs"),
        target=_PATH,
        read_only=st.booleans(),
        options=st.sampled_from([(), ("size=64m",), ("size=1m", "mode=1777"), ("noexec", "nosuid")]),
    )
    return st.lists(one, max_size=2, unique_by=lambda m: m.target)


def _ports() -> st.SearchStrategy[list[PortBinding]]:
    binding = st.tuples(_IP, st.integers(0, 65535))
    grouped = st.dictionaries(
        st.tuples(st.integers(1, 65535), st.sampled_from(["tcp", "udp"])),
        st.lists(binding, min_size=1, max_size=2),
        max_size=3,
    )
    return grouped.map(
        lambda by_port: [
            PortBinding(container_port=port, protocol=proto, host_ip=ip, host_port=host)  # type: ignore[arg-type]
            for (port, proto), entries in by_port.items()
            for ip, host in entries
        ]
    )


def _resources() -> st.SearchStrategy[Resources]:
    return st.builds(
        Resources,
        memory=st.one_of(st.none(), st.integers(6 << 20, 1 << 40)),
        memory_swap=st.one_of(st.none(), st.integers(1, 1 << 40)),
        cpus=st.one_of(st.none(), st.integers(1, 64_000).map(lambda n: n / 1000)),
        cpu_shares=st.one_of(st.none(), st.integers(2, 262144)),
        pids=st.one_of(st.none(), st.just(-1), st.integers(1, 1 << 20)),
    )


def _network_and_aliases() -> st.SearchStrategy[tuple[str, list[str]]]:
    plain = st.tuples(st.sampled_from(["none", "host"]), st.just([]))
    attached = st.tuples(
        st.one_of(
            st.sampled_from(["bridge", "container:abc123"]), _NAME.filter(lambda n: n not in ("none", "host"))
        ),
        st.lists(_NAME, max_size=2),
    )
    return st.one_of(plain, attached)


@st.composite
def container_specs(draw: st.DrawFn) -> ContainerSpec:
    network, aliases = draw(_network_and_aliases())
    mounts = draw(st.lists(st.one_of(_bind(), _volume()), max_size=3)) + draw(_tmpfs_mounts())
    fields: dict[str, Any] = {
        "image": draw(st.sampled_from(["busybox", "localhost:5000/a/b:1.0", "sha256:" + "ab" * 32])),
        "command": draw(st.one_of(st.none(), st.lists(_ANY_TEXT, max_size=3))),
        "entrypoint": draw(st.one_of(st.none(), st.lists(_WORD, max_size=2))),
        "name": draw(st.one_of(st.none(), _NAME)),
        "env": draw(st.dictionaries(_ENV_KEY, _ANY_TEXT, max_size=3)),
        "workdir": draw(st.one_of(st.none(), _PATH)),
        "user": draw(st.one_of(st.none(), st.sampled_from(["1000", "nobody", "1000:1000"]))),
        "hostname": draw(st.one_of(st.none(), _NAME)),
        "labels": draw(st.dictionaries(_WORD, _ANY_TEXT, max_size=3)),
        "mounts": mounts,
        "resources": draw(_resources()),
        "tty": draw(st.booleans()),
        "stdin_open": draw(st.booleans()),
        "stdin_once": draw(st.booleans()),
        "read_only": draw(st.booleans()),
        "cap_add": draw(_CAPS),
        "cap_drop": draw(_CAPS),
        "privileged": draw(st.booleans()),
        "no_new_privileges": draw(st.booleans()),
        "security_opt": draw(
            st.lists(
                st.sampled_from(
                    ["seccomp=unconfined", "apparmor=unconfined", "label=disable", "seccomp=builtin"]
                ),
                unique=True,
                max_size=2,
            )
        ),
        "init": draw(st.booleans()),
        "auto_remove": draw(st.booleans()),
        "stop_signal": draw(st.one_of(st.none(), st.sampled_from(["SIGTERM", "SIGKILL", "SIGUSR1", "9"]))),
        "stop_timeout": draw(st.one_of(st.none(), st.integers(0, 3600))),
        "network": network,
        "ports": draw(_ports()),
        "aliases": aliases,
        "dns": draw(st.lists(_IP, max_size=2)),
        "extra_hosts": draw(st.dictionaries(_NAME, _IP, max_size=2)),
        "mac_address": draw(st.one_of(st.none(), st.just("02:42:ac:11:00:02"))),
        "runtime": draw(st.sampled_from(["builtin", "runc", "crun"])),
        "userns": draw(st.sampled_from([None, "host"])),
        "log_driver": "json-file",
        "log_opts": draw(st.sampled_from([{}, {"max-size": "10m", "max-file": "3"}])),
        "healthcheck": draw(st.one_of(st.none(), _healthchecks())),
    }
    if not fields["auto_remove"]:  # dockerd refuses the two together
        fields["restart_policy"] = draw(_restart_policies())
    return ContainerSpec(**fields)


def _restart_policies() -> st.SearchStrategy[RestartPolicy]:
    return st.one_of(
        st.sampled_from(["no", "always", "unless-stopped", "on-failure"]).map(
            lambda n: RestartPolicy(name=n)
        ),
        st.integers(1, 10).map(lambda n: RestartPolicy(name="on-failure", maximum_retry_count=n)),
    )


_DURATION = st.one_of(st.just(0.0), st.integers(1, 3_600_000).map(lambda ms: ms / 1000))  # whole ms


def _healthchecks() -> st.SearchStrategy[Healthcheck]:
    tests = st.one_of(
        st.just(()),
        st.just(("NONE",)),
        st.lists(_WORD, min_size=1, max_size=3).map(lambda args: ("CMD", *args)),
        _ANY_TEXT.filter(bool).map(lambda text: ("CMD-SHELL", text)),
    )
    return st.builds(
        Healthcheck,
        test=tests,
        interval=_DURATION,
        timeout=_DURATION,
        start_period=_DURATION,
        start_interval=_DURATION,
        retries=st.integers(0, 10),
    )
