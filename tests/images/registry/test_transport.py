"""RegistryTransport: where it connects, redirects, retries, and how registry errors come out.

Real registries where they can show it (docker-registry: discovery, errors, its redirect
middleware). Failing on purpose (5xx, 429, dropped connections, an invalid_token answer, a redirect
of an authenticated request to another host) is not something docker-registry does on demand, so a
scripted loopback server plays the registry there.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import requests.adapters

from containerkit.errors import NotFound, RegistryError, Unauthorized
from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
from containerkit.images.registry.hosts import (
    DOCKER_HUB_HOST,
    Endpoint,
    endpoints,
    is_insecure,
    is_loopback,
    reference_host,
    registry_host,
    split_host,
)
from containerkit.images.registry.transport import RegistryTransport
from tests.images.registry.servers import Registry, Reply, ScriptedServer, Seen, free_port, write_tls_pair

JSON = {"Content-Type": "application/json"}

# -- hosts ---------------------------------------------------------------------------------------


def test_hosts_loopback_and_insecure_rules() -> None:
    assert split_host("[::1]:5000") == ("::1", 5000)
    assert split_host("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert split_host("registry.example.com") == ("registry.example.com", None)
    for host in ("127.0.0.1:5000", "127.9.8.7", "[::1]:443", "localhost:5000", "LOCALHOST"):
        assert is_loopback(host) and is_insecure(host), host
    assert not is_insecure("registry.example.com:5000")
    assert is_insecure("registry.example.com:5000", ["registry.example.com:5000"])
    assert is_insecure("registry.example.com:5000", ["registry.example.com"])
    assert not is_insecure("registry.example.com:5000", ["registry.example.com:6000"])
    assert is_insecure("10.1.2.3:5000", ["10.0.0.0/8"])
    assert not is_insecure("192.168.1.1:5000", ["10.0.0.0/8"])
    assert is_insecure("reg.example:5000", ["http://reg.example:5000/"])


def test_docker_hub_endpoints_and_mirrors() -> None:
    assert registry_host("docker.io") == DOCKER_HUB_HOST
    assert registry_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert reference_host("busybox") == DOCKER_HUB_HOST
    assert reference_host("index.docker.io/team/app:1") == DOCKER_HUB_HOST
    assert reference_host("localhost:5000/team/app@sha256:" + "a" * 64) == "localhost:5000"
    options = RegistryOptions(registry_mirrors=["https://mirror.example.com", "http://127.0.0.1:5001/"])
    assert endpoints("docker.io", options) == [
        Endpoint("https://mirror.example.com", verify_tls=True, mirror=True),
        Endpoint("http://127.0.0.1:5001", verify_tls=False, mirror=True),
        Endpoint(f"https://{DOCKER_HUB_HOST}"),
    ]
    assert endpoints("docker.io", options, mirrors=False) == [Endpoint(f"https://{DOCKER_HUB_HOST}")]
    # mirrors are for docker.io only; a loopback registry is tried over https, then http
    assert endpoints("127.0.0.1:5000", options) == [
        Endpoint("https://127.0.0.1:5000", verify_tls=False),
        Endpoint("http://127.0.0.1:5000", verify_tls=False),
    ]


# -- discovery and errors against docker-registry -----------------------------------------------


def test_discovery_falls_back_from_https_to_http_on_loopback(registry: Registry) -> None:
    with RegistryTransport(registry.host) as transport:
        assert transport.ping() == Endpoint(registry.url, verify_tls=False)
        assert transport.base_url == registry.url


def test_a_host_that_is_not_listed_gets_verified_https_only() -> None:
    transport = RegistryTransport("registry.invalid:5000", retries=0)
    assert transport.candidates == [Endpoint("https://registry.invalid:5000", verify_tls=True)]
    listed = RegistryTransport(
        "registry.invalid:5000", options=RegistryOptions(insecure_registries=["registry.invalid:5000"])
    )
    assert [(e.url, e.verify_tls) for e in listed.candidates] == [
        ("https://registry.invalid:5000", False),
        ("http://registry.invalid:5000", False),
    ]


def test_unreachable_registry_names_the_host() -> None:
    port = free_port()
    delays: list[float] = []
    with (
        RegistryTransport(f"127.0.0.1:{port}", retries=2, sleep=delays.append) as transport,
        pytest.raises(RegistryError, match=rf"registry 127\.0\.0\.1:{port} unreachable: .*http://127"),
    ):
        transport.ping()
    assert delays == []  # nothing listens on either: refused at once, no back-off


def test_a_registry_that_drops_connections_is_retried_with_back_off() -> None:
    """A listener that accepts and hangs up (EOF) may be a registry starting or overloaded: the
    last endpoint is retried with back-off, unlike a refused connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def hang_up() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    delays: list[float] = []
    try:
        with (
            RegistryTransport(f"127.0.0.1:{port}", retries=2, sleep=delays.append) as transport,
            pytest.raises(RegistryError, match=rf"registry 127\.0\.0\.1:{port} unreachable"),
        ):
            transport.ping()
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        listener.close()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert delays == [0.5, 1.0]  # https is not retried (http follows); the last endpoint is


def test_registry_errors_name_the_repository_and_the_registry_words(registry: Registry) -> None:
    with RegistryTransport(registry.host) as transport:
        with pytest.raises(NotFound, match=r"127\.0\.0\.1:\d+/team/app: manifest unknown: manifest unknown"):
            transport.request("GET", "/v2/team/app/manifests/latest", scope="repository:team/app:pull")
        with pytest.raises(NotFound, match="blob unknown"):
            transport.request(
                "GET", f"/v2/team/app/blobs/sha256:{'0' * 64}", scope="repository:team/app:pull"
            )
        with pytest.raises(RegistryError, match="digest invalid") as bad:
            started = transport.request(
                "POST", "/v2/team/app/blobs/uploads/", scope="repository:team/app:push"
            )
            transport.request(
                "PUT",
                started.headers["Location"],
                scope=None,
                params={"digest": f"sha256:{'1' * 64}"},
                data=b"x",
            )
        assert bad.value.registry_status == 400 and bad.value.codes == ("DIGEST_INVALID",)
        head = transport.request(
            "HEAD", f"/v2/team/app/blobs/sha256:{'0' * 64}", scope="repository:team/app:pull", accept=(404,)
        )
        assert head.status_code == 404


def test_blob_redirect_of_docker_registry_is_followed(registry_redirect: Registry) -> None:
    data = b"redirected layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryTransport(registry_redirect.host) as transport:
        started = transport.request("POST", "/v2/r/app/blobs/uploads/", scope="repository:r/app:pull,push")
        transport.request(
            "PUT", started.headers["Location"], scope=None, params={"digest": digest}, data=data
        )
        blob = transport.request("GET", f"/v2/r/app/blobs/{digest}", scope="repository:r/app:pull")
        assert blob.content == data
        assert blob.url.startswith(registry_redirect.blob_host.url)
    assert [r["path"] for r in registry_redirect.blob_host.requests] == [
        f"/docker/registry/v2/blobs/sha256/{digest[7:9]}/{digest[7:]}/data"
    ]


# -- redirects with credentials ------------------------------------------------------------------

CREDS = RegistryAuth("user", "pw")
BASIC = "Basic " + base64.b64encode(b"user:pw").decode()


def _basic_registry(location: Callable[[Seen], str]) -> Callable[[Seen], Reply]:
    def answer(seen: Seen) -> Reply:
        if seen.headers.get("Authorization") != BASIC:
            return Reply(401, {"WWW-Authenticate": 'Basic realm="test"', **JSON}, b'{"errors":[]}')
        if seen.path.startswith("/v2/r/blobs/"):
            return Reply(307, {"Location": location(seen)})
        return Reply(200, JSON, b"{}")

    return answer


def test_authorization_is_dropped_on_a_redirect_to_another_host(
    scripted_server: Callable[..., ScriptedServer],
) -> None:
    storage = scripted_server(lambda seen: Reply(200, {}, b"blob bytes"), host="127.0.0.2")
    registry = scripted_server(_basic_registry(lambda seen: f"{storage.url}/data?sig=presigned"))
    with RegistryTransport(registry.host, auth=CREDS) as transport:
        blob = transport.request("GET", "/v2/r/blobs/sha256:ab", scope="repository:r:pull")
    assert blob.content == b"blob bytes"
    assert registry.requests[-1].headers.get("Authorization") == BASIC
    assert [s.path for s in storage.requests] == ["/data?sig=presigned"]
    assert "Authorization" not in storage.requests[0].headers


def test_authorization_is_dropped_on_a_redirect_to_another_port_of_the_same_host(
    scripted_server: Callable[..., ScriptedServer],
) -> None:
    storage = scripted_server(lambda seen: Reply(200, {}, b"same host, other port"))
    registry = scripted_server(_basic_registry(lambda seen: f"{storage.url}/data"))
    with RegistryTransport(registry.host, auth=CREDS) as transport:
        transport.request("GET", "/v2/r/blobs/sha256:ab", scope="repository:r:pull")
    assert "Authorization" not in storage.requests[0].headers


def test_authorization_is_kept_on_a_redirect_within_the_registry(
    scripted_server: Callable[..., ScriptedServer],
) -> None:
    def answer(seen: Seen) -> Reply:
        if seen.path == "/v2/r/blobs/sha256:ab":
            return Reply(307, {"Location": "/blobs-store/ab"})
        return _basic_registry(lambda seen: "")(seen)

    registry = scripted_server(answer)
    with RegistryTransport(registry.host, auth=CREDS) as transport:
        transport.request("GET", "/v2/r/blobs/sha256:ab", scope="repository:r:pull")
    assert registry.requests[-1].path == "/blobs-store/ab"
    assert registry.requests[-1].headers.get("Authorization") == BASIC


# -- retries ------------------------------------------------------------------------------------


def _open_registry(then: Callable[[Seen], Reply | None]) -> Callable[[Seen], Reply | None]:
    """Answers /v2/ with 200, everything else with ``then``."""

    def answer(seen: Seen) -> Reply | None:
        if seen.path == "/v2/":
            return Reply(200, JSON, b"{}")
        return then(seen)

    return answer


def _failing(times: int, reply: Reply | None) -> Callable[[Seen], Reply | None]:
    count = 0

    def answer(seen: Seen) -> Reply | None:
        nonlocal count
        count += 1
        return reply if count <= times else Reply(200, JSON, b'{"ok":true}')

    return answer


def _requests_to(server: ScriptedServer, path: str) -> list[Seen]:
    return [s for s in server.requests if s.path.startswith(path)]


def test_5xx_is_retried_with_exponential_back_off(scripted_server: Callable[..., ScriptedServer]) -> None:
    server = scripted_server(_open_registry(_failing(3, Reply(503, JSON, b'{"errors":[]}'))))
    delays: list[float] = []
    with RegistryTransport(server.host, sleep=delays.append) as transport:
        response = transport.request("GET", "/v2/r/manifests/1", scope="repository:r:pull")
    assert response.json() == {"ok": True}
    assert len(_requests_to(server, "/v2/r/")) == 4
    assert delays == [0.5, 1.0, 2.0]


def test_429_waits_as_long_as_retry_after_says(scripted_server: Callable[..., ScriptedServer]) -> None:
    server = scripted_server(_open_registry(_failing(1, Reply(429, {"Retry-After": "3", **JSON}, b"{}"))))
    delays: list[float] = []
    with RegistryTransport(server.host, sleep=delays.append) as transport:
        transport.request("HEAD", "/v2/r/blobs/sha256:ab", scope="repository:r:pull")
    assert delays == [3.0]


def test_retries_give_up_with_the_registry_error(scripted_server: Callable[..., ScriptedServer]) -> None:
    body = b'{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}'
    server = scripted_server(_open_registry(_failing(99, Reply(503, JSON, body))))
    delays: list[float] = []
    with (
        RegistryTransport(server.host, retries=2, sleep=delays.append) as transport,
        pytest.raises(
            RegistryError, match=r"/r: GET answered 503: unavailable: service unavailable"
        ) as failed,
    ):
        transport.request("GET", "/v2/r/manifests/1", scope="repository:r:pull")
    assert failed.value.registry_status == 503
    assert len(_requests_to(server, "/v2/r/")) == 3


def test_a_dropped_connection_is_retried_for_get(scripted_server: Callable[..., ScriptedServer]) -> None:
    server = scripted_server(_open_registry(_failing(2, None)))
    delays: list[float] = []
    with RegistryTransport(server.host, sleep=delays.append) as transport:
        assert transport.request("GET", "/v2/r/manifests/1", scope="repository:r:pull").json() == {"ok": True}
    assert len(_requests_to(server, "/v2/r/")) == 3


@pytest.mark.parametrize(
    ("status", "error"), [(404, NotFound), (401, Unauthorized), (403, Unauthorized), (400, RegistryError)]
)
def test_no_retry_on_client_errors(
    scripted_server: Callable[..., ScriptedServer], status: int, error: type[Exception]
) -> None:
    server = scripted_server(_open_registry(_failing(99, Reply(status, JSON, b'{"errors":[]}'))))
    delays: list[float] = []
    with RegistryTransport(server.host, sleep=delays.append) as transport, pytest.raises(error):
        transport.request("GET", "/v2/r/manifests/1", scope="repository:r:pull")
    assert delays == []
    assert len(_requests_to(server, "/v2/r/")) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_no_retry_for_requests_that_are_not_idempotent(
    scripted_server: Callable[..., ScriptedServer], method: str
) -> None:
    server = scripted_server(_open_registry(_failing(99, Reply(503, JSON, b'{"errors":[]}'))))
    with RegistryTransport(server.host, sleep=lambda s: None) as transport, pytest.raises(RegistryError):
        transport.request(method, "/v2/r/blobs/uploads/", scope="repository:r:push", data=b"chunk")
    assert len(_requests_to(server, "/v2/r/")) == 1


def test_no_retry_when_the_body_is_a_stream(scripted_server: Callable[..., ScriptedServer]) -> None:
    server = scripted_server(_open_registry(_failing(99, Reply(503, JSON, b'{"errors":[]}'))))
    with RegistryTransport(server.host, sleep=lambda s: None) as transport, pytest.raises(RegistryError):
        transport.request("PUT", "/v2/r/blobs/uploads/x", scope="repository:r:push", data=iter([b"a", b"b"]))
    assert len(_requests_to(server, "/v2/r/")) == 1


# -- re-authentication -----------------------------------------------------------------------------


def test_invalid_token_gets_exactly_one_fresh_token(scripted_server: Callable[..., ScriptedServer]) -> None:
    issued: list[str] = []

    def token_server(seen: Seen) -> Reply:
        issued.append(f"t{len(issued)}")
        return Reply(200, JSON, f'{{"token":"{issued[-1]}"}}'.encode())

    tokens = scripted_server(token_server)
    rejected = {"Bearer t0", "Bearer t2", "Bearer t3"}  # the first token, and every one after the second

    def registry(seen: Seen) -> Reply:
        auth = seen.headers.get("Authorization")
        if auth is not None and auth not in rejected:
            return Reply(200, JSON, b"{}")
        challenge = f'Bearer realm="{tokens.url}/token",service="svc",scope="repository:r:pull"'
        if auth is not None:
            challenge += ',error="invalid_token"'
        return Reply(401, {"WWW-Authenticate": challenge, **JSON}, b'{"errors":[{"code":"UNAUTHORIZED"}]}')

    server = scripted_server(registry)
    with RegistryTransport(server.host) as transport:
        assert transport.request("GET", "/v2/r/manifests/1", scope="repository:r:pull").status_code == 200
        assert issued == ["t0", "t1"]
        # t1 is cached; the registry now refuses it and the next two tokens: one retry, then the error
        rejected.add("Bearer t1")
        with pytest.raises(Unauthorized, match="unauthorized"):
            transport.request("GET", "/v2/r/manifests/1", scope="repository:r:pull")
        assert issued == ["t0", "t1", "t2"]


# -- mirrors ---------------------------------------------------------------------------------------


class _NoEgress(requests.adapters.BaseAdapter):
    """Mounted for Docker Hub so that a fallback past the loopback mirrors fails here, offline."""

    attempts: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.attempts.append(str(request.url))
        raise requests.ConnectionError(f"test: no traffic off loopback ({request.url})")

    def close(self) -> None:
        pass


def _offline_session() -> tuple[requests.Session, _NoEgress]:
    session, adapter = requests.Session(), _NoEgress()
    adapter.attempts = []
    session.mount(f"https://{DOCKER_HUB_HOST}", adapter)
    return session, adapter


def test_docker_hub_pulls_go_to_mirrors_and_fall_back_between_them(
    registry_factory: Callable[..., Registry],
) -> None:
    empty, seeded = registry_factory(), registry_factory()
    data = b"from the second mirror"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryTransport(seeded.host) as direct:
        started = direct.request("POST", "/v2/library/app/blobs/uploads/", scope=None)
        direct.request("PUT", started.headers["Location"], scope=None, params={"digest": digest}, data=data)
    dead = f"http://127.0.0.1:{free_port()}"
    options = RegistryOptions(registry_mirrors=[dead, empty.url, seeded.url])
    session, hub = _offline_session()
    with RegistryTransport("docker.io", options=options, session=session, retries=0) as transport:
        assert transport.ping() == Endpoint(empty.url, verify_tls=False, mirror=True)  # the dead one skipped
        blob = transport.request(
            "GET", f"/v2/library/app/blobs/{digest}", scope="repository:library/app:pull"
        )
        assert blob.content == data
        assert transport.endpoint == Endpoint(seeded.url, verify_tls=False, mirror=True)
        assert hub.attempts == []
        # past the last mirror comes Docker Hub itself, unreachable here: the mirror's answer stands
        with pytest.raises(NotFound, match=r"docker\.io/library/app: manifest unknown"):
            transport.request("GET", "/v2/library/app/manifests/none", scope="repository:library/app:pull")
        assert hub.attempts == [f"https://{DOCKER_HUB_HOST}/v2/"]


def test_pushes_never_go_to_a_mirror(registry: Registry) -> None:
    options = RegistryOptions(registry_mirrors=[registry.url])
    session, hub = _offline_session()
    transport = RegistryTransport("docker.io", options=options, mirrors=False, session=session, retries=0)
    assert [e.url for e in transport.candidates] == [f"https://{DOCKER_HUB_HOST}"]
    with pytest.raises(RegistryError, match="no traffic off loopback"):
        transport.ping()
    assert hub.attempts == [f"https://{DOCKER_HUB_HOST}/v2/"]


def test_a_connection_that_keeps_failing_is_a_registry_error(
    scripted_server: Callable[..., ScriptedServer],
) -> None:
    server = scripted_server(_open_registry(lambda seen: None))
    with (
        RegistryTransport(server.host, retries=1, sleep=lambda s: None) as transport,
        pytest.raises(
            RegistryError, match=rf"{server.host}/r: GET http://{server.host}/v2/r/manifests/1 failed"
        ),
    ):
        transport.request("GET", "/v2/r/manifests/1", scope="repository:r:pull")


def test_a_loopback_registry_with_its_own_certificate_is_spoken_to_over_https(
    registry_factory: Callable[..., Registry], tmp_path: Path
) -> None:
    cert, key = write_tls_pair(tmp_path / "tls")
    served = registry_factory(extra_config={"http": {"tls": {"certificate": str(cert), "key": str(key)}}})
    data = b"over tls"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with RegistryTransport(served.host) as transport:
        assert transport.ping() == Endpoint(f"https://{served.host}", verify_tls=False)
        started = transport.request("POST", "/v2/tls/app/blobs/uploads/", scope=None)
        assert started.headers["Location"].startswith("https://")
        transport.request(
            "PUT", started.headers["Location"], scope=None, params={"digest": digest}, data=data
        )
        assert transport.request("GET", f"/v2/tls/app/blobs/{digest}", scope=None).content == data
    # a host that is not insecure checks the certificate, which nobody signed: refused, not bypassed
    with (
        RegistryTransport(served.host, retries=0) as strict,
        pytest.raises(RegistryError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        strict.candidates = [Endpoint(f"https://{served.host}", verify_tls=True)]
        strict.ping()
