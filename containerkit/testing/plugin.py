"""The pytest plugin: fixtures that run containers, and logs in the report when a test fails.

Registered through the ``pytest11`` entry point, so installing containerkit is enough; no
``conftest.py`` import. Fixtures (each one's Name / Scope / Depends in its docstring):

* ``containerkit_engine``: the engine (or client) shared by the session;
* ``containerkit_session``: the session's id and labels, for things you create yourself;
* ``containerkit_run``: start a container, wait until it is ready, remove it after the test;
* ``containerkit_image``: an image from a rootfs directory or tar next to the test;
* ``containerkit_busybox``: a small busybox image built offline from Debian's ``busybox-static``.

Options (each also an environment variable): ``--containerkit-root`` (``CONTAINERKIT_ROOT``),
``--containerkit-host`` (``CONTAINERKIT_HOST``), ``--containerkit-ttl`` (``CONTAINERKIT_TTL``),
``--containerkit-log-lines``, and ``--containerkit-require`` to fail instead of skip.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from containerkit import api
from containerkit import wait as _wait
from containerkit.engine.frontend import write_busybox_rootfs
from containerkit.errors import ContainerkitError, InvalidArgument, NotFound, Unavailable
from containerkit.spec import ContainerStatus, Image
from containerkit.testing.images import (
    image_by_name,
    image_from_dockerfile,
    image_from_rootfs,
    looks_like_path,
)
from containerkit.testing.session import DEFAULT_TTL, ContainerkitSession, open_backend
from containerkit.testing.session import new_session_id as _new_session_id

__all__ = [
    "containerkit_busybox",
    "containerkit_engine",
    "containerkit_image",
    "containerkit_run",
    "containerkit_session",
]

MARKER = "containerkit"
_USED = pytest.StashKey[list[api.ContainerHandle]]()
_STATE = pytest.StashKey["_PluginState"]()


class _PluginState:
    """Per pytest process: the reason containers cannot run (asked once) and the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.session: ContainerkitSession | None = None
        self.unavailable: str | None = None

    def option(self, name: str, env: str) -> str | None:
        value = self.config.getoption(name)
        return str(value) if value not in (None, "") else os.environ.get(env) or None

    def open(self) -> ContainerkitSession:
        if self.session is not None:
            return self.session
        if self.unavailable is not None:
            self.refuse(self.unavailable)
        host = self.option("containerkit_host", "CONTAINERKIT_HOST")
        root = self.option("containerkit_root", "CONTAINERKIT_ROOT")
        ttl = float(self.option("containerkit_ttl", "CONTAINERKIT_TTL") or DEFAULT_TTL)
        backend = None
        try:
            backend = open_backend(host=host, root=root)
        except Unavailable as exc:
            self.unavailable = str(exc)
        if backend is None:
            self.refuse(self.unavailable or "unknown reason")
        self.session = ContainerkitSession(backend, ttl=ttl, session_id=_new_session_id())
        self.config.add_cleanup(self.finish)  # also runs after Ctrl-C
        self.session.start()
        return self.session

    def finish(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.finish()

    def refuse(self, reason: str) -> NoReturn:
        if self.config.getoption("containerkit_require"):
            pytest.fail(f"containers cannot run: {reason}", pytrace=False)
        pytest.skip(f"containers cannot run: {reason}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("containerkit", "containers for tests (containerkit)")
    group.addoption(
        "--containerkit-root",
        default=None,
        help="engine root for in-process containers; images are cached there across sessions "
        "(default: $CONTAINERKIT_ROOT, else /var/lib/containerkit)",
    )
    group.addoption(
        "--containerkit-host",
        default=None,
        help="drive a containerkitd (or Docker-compatible daemon) through containerkit.Client instead "
        "(default: $CONTAINERKIT_HOST)",
    )
    group.addoption(
        "--containerkit-ttl",
        default=None,
        help=f"seconds before what this session creates counts as expired for other hosts "
        f"(default: $CONTAINERKIT_TTL, else {DEFAULT_TTL:g})",
    )
    group.addoption(
        "--containerkit-log-lines",
        type=int,
        default=50,
        help="log lines of each container shown in the report of a failed test (default: 50)",
    )
    group.addoption(
        "--containerkit-require",
        action="store_true",
        default=False,
        help="fail, instead of skip, the tests that need containers when containers cannot run (for CI)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the test needs containers; skipped with the reason where they cannot run",
    )
    config.stash[_STATE] = _PluginState(config)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker(MARKER) is not None:
        item.config.stash[_STATE].open()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        lines = item.config.getoption("containerkit_log_lines")
        for container in item.stash.get(_USED, []):
            title, text = _log_section(container, lines)
            report.sections.append((title, text))
    return report


def _log_section(container: api.ContainerHandle, lines: int) -> tuple[str, str]:
    name = f"{container.name or '?'} ({container.id[:12]})"
    try:
        status = str(container.status)
        code = container.exit_code if ContainerStatus.of(status).has_stopped else None
        logs = bytes(container.logs(tail=lines)).decode("utf-8", "replace")
    except NotFound:
        return f"containerkit logs: {name}", "(the container was removed during the test)"
    except ContainerkitError as exc:
        return f"containerkit logs: {name}", f"(cannot read its logs: {exc})"
    state = status if code is None else f"{status}, exit status {code}"
    return f"containerkit logs: {name}, {state}, last {lines} lines", logs or "(no output)"


@pytest.fixture(scope="session")
def containerkit_session(request: pytest.FixtureRequest) -> Iterator[ContainerkitSession]:
    """Name: containerkit_session. Scope: session. Depends: nothing.

    The session's backend, id and labels. On first use it sweeps what earlier sessions left
    whose owner is dead (or, on another host, whose expiry passed); at the end of the session
    it removes everything labelled with its id. Skips (``--containerkit-require``: fails) with
    one reason when containers cannot run.
    """
    state = request.config.stash[_STATE]
    yield state.open()
    state.finish()


@pytest.fixture(scope="session")
def containerkit_engine(containerkit_session: ContainerkitSession) -> api.Backend:
    """Name: containerkit_engine. Scope: session. Depends: containerkit_session.

    The in-process :class:`~containerkit.Engine` on ``--containerkit-root``, or a ``Client`` when
    ``--containerkit-host`` is given. Containers you create through it directly are yours to
    remove; pass ``labels=containerkit_session.labels`` to have the session sweep them.
    """
    return containerkit_session.backend


@pytest.fixture
def containerkit_run(
    request: pytest.FixtureRequest, containerkit_session: ContainerkitSession
) -> Iterator[Callable[..., api.ContainerHandle]]:
    """Name: containerkit_run. Scope: function. Depends: containerkit_session.

    ``containerkit_run(image, command=None, *, wait=None, wait_timeout=60, **fields)`` starts a
    container (``fields`` as for ``containers.run``), waits for ``wait`` (a
    :mod:`containerkit.wait` strategy) and returns it. Every container started is removed at
    the end of the test, passed or failed; a failed test's report shows its last log lines.
    """
    used: list[api.ContainerHandle] = []
    request.node.stash[_USED] = used

    def run(
        image: str | Image,
        command: Sequence[str] | str | None = None,
        /,
        *,
        wait: _wait.Strategy | None = None,
        wait_timeout: float = _wait.DEFAULT_TIMEOUT,
        **fields: Any,
    ) -> api.ContainerHandle:
        container = containerkit_session.run(image, command, **fields)
        used.append(container)
        if wait is not None:
            _wait.until(container, wait, timeout=wait_timeout)
        return container

    yield run
    for container in reversed(used):
        with contextlib.suppress(NotFound):
            container.remove(force=True, volumes=True)


@pytest.fixture
def containerkit_image(
    request: pytest.FixtureRequest, containerkit_session: ContainerkitSession
) -> Callable[..., Image]:
    """Name: containerkit_image. Scope: function. Depends: containerkit_session.

    ``containerkit_image("rootfs/", tag=None, config=None)`` imports a rootfs directory or tar
    (a path relative to the test file's directory) and returns the
    :class:`~containerkit.Image`. Images are cached in the engine root by a digest of their
    input: an unchanged rootfs is imported once across tests, sessions and workers.
    ``containerkit_image("127.0.0.1:5000/team/app:1.2")`` (a name that is no file there) is
    the engine's image of that name, pulled first when the engine does not have it.
    ``containerkit_image(dockerfile="app/Dockerfile", context=None, buildargs=None,
    target=None, tag=None)`` builds a Dockerfile (relative to the test file; its context is
    its directory unless given) with the engine's builder, whose cache makes a rebuild cheap.
    """
    base = request.path.parent

    def build(
        path: str | os.PathLike[str] | None = None,
        *,
        tag: str | None = None,
        config: Mapping[str, Any] | None = None,
        dockerfile: str | os.PathLike[str] | None = None,
        context: str | os.PathLike[str] | None = None,
        buildargs: Mapping[str, str] | None = None,
        target: str | None = None,
    ) -> Image:
        if dockerfile is not None:
            if path is not None or config is not None:
                raise InvalidArgument("containerkit_image: give a path or a dockerfile, not both")
            return image_from_dockerfile(
                containerkit_session.backend,
                base / dockerfile,
                context=base / context if context is not None else None,
                tag=tag,
                buildargs=buildargs,
                target=target,
            )
        if path is None:
            raise InvalidArgument("containerkit_image: a rootfs path, an image name or dockerfile= is needed")
        source = base / path
        if isinstance(path, str) and config is None and not source.exists() and not looks_like_path(path):
            return image_by_name(containerkit_session.backend, path, tag=tag)
        return image_from_rootfs(containerkit_session.backend, source, tag=tag, config=config)

    return build


@pytest.fixture(scope="session")
def containerkit_busybox(containerkit_session: ContainerkitSession) -> Image:
    """Name: containerkit_busybox. Scope: session. Depends: containerkit_session.

    A busybox image (every applet, ``/etc/passwd`` with ``root``, ``nobody`` and ``app`` =
    uid 1000), built offline from Debian's ``busybox-static`` and imported once per engine root
    (its tar is byte-for-byte the same each time, so the digest tag finds it again). Pass it
    to ``containerkit_run`` as the image. Skips with the reason when busybox is missing.
    """
    with tempfile.TemporaryDirectory(prefix="containerkit-busybox-") as tmp:
        try:
            tar = write_busybox_rootfs(Path(tmp) / "busybox.tar")
        except Unavailable as exc:
            pytest.skip(f"containerkit_busybox: {exc}")
        return image_from_rootfs(containerkit_session.backend, tar, config={"Cmd": ["sh"]})
