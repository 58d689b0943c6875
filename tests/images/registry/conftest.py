"""Registry fixtures: Debian's ``docker-registry`` on a free 127.0.0.1 port, one per test.

Each yields a ``servers.Registry`` with ``.host`` (``127.0.0.1:PORT``), ``.url``, ``.credentials``
(``(username, password)`` or ``None``), ``.storage`` (its data dir) and ``.blob_path(digest)``.
``registry_token`` also has ``.token_server`` (``.requests`` counts token requests), and
``registry_redirect`` has ``.blob_host`` (127.0.0.2, ``.requests`` holds the headers it got).
``registry_factory(mode, extra_config=...)`` starts more, e.g. a pull-through proxy.
``scripted_server(answer, host=...)`` starts a loopback server that answers as a test says, for what
the real registry will not do on demand (5xx, dropped connections, realms on another host).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.images.registry.servers import Registry, Reply, ScriptedServer, Seen, start_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """Anonymous: pull and push without credentials."""
    with start_registry(tmp_path / "registry", "anonymous") as running:
        yield running


@pytest.fixture
def registry_basic(tmp_path: Path) -> Iterator[Registry]:
    """htpasswd (bcrypt) Basic auth; ``.credentials`` are the one user's."""
    with start_registry(tmp_path / "registry-basic", "basic") as running:
        yield running


@pytest.fixture
def registry_token(tmp_path: Path) -> Iterator[Registry]:
    """Bearer tokens from an in-suite JWT token server the registry trusts; anonymous users may pull."""
    pytest.importorskip("jwt")
    with start_registry(tmp_path / "registry-token", "token") as running:
        yield running


@pytest.fixture
def registry_redirect(tmp_path: Path) -> Iterator[Registry]:
    """Blob GETs answered with a 307 to a second loopback host (127.0.0.2) serving the storage dir."""
    with start_registry(tmp_path / "registry-redirect", "redirect") as running:
        yield running


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    """``registry_factory("anonymous", extra_config={...})``: more registries, all stopped at teardown."""
    with ExitStack() as stack:
        count = 0

        def start(mode: str = "anonymous", *, extra_config: dict[str, Any] | None = None) -> Registry:
            nonlocal count
            count += 1
            base = tmp_path / f"registry-{mode}-{count}"
            return stack.enter_context(start_registry(base, mode, extra_config=extra_config))

        yield start


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """``scripted_server(answer, host="127.0.0.1")``: see ``servers.ScriptedServer``; stopped at teardown."""
    started: list[ScriptedServer] = []

    def start(answer: Callable[[Seen], Reply | None], host: str = "127.0.0.1") -> ScriptedServer:
        server = ScriptedServer(answer, host)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
