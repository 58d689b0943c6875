"""Real registry servers on loopback for the registry tests: Debian's ``docker-registry`` (distribution 2.8).

``start_registry`` runs ``/usr/bin/docker-registry serve`` on a free 127.0.0.1 port with a temp storage
dir, in one of four modes: anonymous, htpasswd Basic, Bearer tokens from ``TokenServer`` (a small JWT
token server in a thread, the registry trusting its self-signed certificate), and ``redirect`` (the
registry's storage ``redirect`` middleware answers blob GETs with a 307 to ``BlobHost``, a second
loopback host, 127.0.0.2, that serves the storage dir and records the headers it got).

The classes live here rather than in conftest.py so that tests in other directories (daemon, client,
CLI) can start the same servers from their own fixtures.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

REGISTRY_BINARY = "/usr/bin/docker-registry"
SERVICE = "containerkit-test-registry"
ISSUER = "containerkit-test-token-issuer"
USERNAME = "alice"
PASSWORD = "s3cret:with colon"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except ValueError:
        return None
    return user, password


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_body(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server:
    """A ThreadingHTTPServer in a daemon thread; ``close()`` stops it and frees the port."""

    def __init__(self, host: str, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.host = f"{host}:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name=f"server-{self.host}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(10)


class TokenServer(_Server):
    """A Docker token server (distribution's token spec) on loopback.

    GET ``/token?service=&scope=&offline_token=`` with or without Basic credentials, and the OAuth2 POST
    form (``grant_type=password|refresh_token``). Authenticated users get every action they ask for,
    anonymous ones ``pull`` only (or nothing with ``anonymous_pull = False``). Every request is appended to
    ``requests`` so a test can count them; ``post_status`` set to e.g. 404 makes POST fail like GCR does.
    """

    def __init__(
        self,
        key: Any,
        cert_der: bytes,
        username: str = USERNAME,
        password: str = PASSWORD,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        self.key = key
        self.cert_der = cert_der
        self.username = username
        self.password = password
        self.expires_in: int | None = 300
        self.issued_at_offset = 0  # seconds added to the issued_at it reports (the JWT itself stays valid)
        self.anonymous_pull = True
        self.post_status: int | None = None
        self.refresh_tokens: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__(host, _TokenHandler)
        self.realm = f"{self.url}/token"

    def issue(self, subject: str, scopes: list[str], *, refresh: bool) -> dict[str, Any]:
        import jwt

        now = int(time.time())
        access = []
        for scope in scopes:
            typ, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            granted = wanted if subject else [a for a in wanted if a == "pull" and self.anonymous_pull]
            if granted:
                access.append({"type": typ, "name": name, "actions": granted})
        ttl = self.expires_in if self.expires_in is not None else 60
        claims = {
            "iss": ISSUER,
            "aud": SERVICE,
            "sub": subject,
            "iat": now,
            "nbf": now - 1,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        header = {"x5c": [base64.b64encode(self.cert_der).decode()]}
        token = jwt.encode(claims, self.key, algorithm="ES256", headers=header)
        issued_at = _iso(now + self.issued_at_offset)
        body: dict[str, Any] = {"token": token, "access_token": token, "issued_at": issued_at}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        if refresh and subject:
            refresh_token = uuid.uuid4().hex
            with self._lock:
                self.refresh_tokens.add(refresh_token)
            body["refresh_token"] = refresh_token
        return body

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _TokenHandler(_QuietHandler):
    @property
    def owner(self) -> TokenServer:
        return self.server.owner  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        authorization = self.headers.get("Authorization")
        self.owner.record({"method": "GET", "params": params, "authorization": authorization})
        if url.path != "/token":
            self.send_body(404, b'{"details":"not found"}')
            return
        subject = ""
        creds = _basic(authorization)
        if authorization is not None:
            if creds is not None and creds[1] in self.owner.refresh_tokens:
                pass  # an identity token as the password: what clients send where POST is missing
            elif creds != (self.owner.username, self.owner.password):
                self.send_body(401, b'{"details":"incorrect username or password"}')
                return
            subject = self.owner.username
        refresh = params.get("offline_token", ["false"])[0] == "true"
        body = self.owner.issue(subject, params.get("scope", []), refresh=refresh)
        self.send_body(200, json.dumps(body).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        self.owner.record(
            {"method": "POST", "params": form, "authorization": self.headers.get("Authorization")}
        )
        if self.owner.post_status is not None:
            self.send_body(self.owner.post_status, b'{"details":"POST not supported here"}')
            return
        grant = form.get("grant_type", [""])[0]
        subject = ""
        if grant == "password":
            if (form.get("username", [""])[0], form.get("password", [""])[0]) != (
                self.owner.username,
                self.owner.password,
            ):
                self.send_body(401, b'{"details":"incorrect username or password"}')
                return
            subject = self.owner.username
        elif grant == "refresh_token":
            if form.get("refresh_token", [""])[0] not in self.owner.refresh_tokens:
                self.send_body(401, b'{"details":"invalid refresh token"}')
                return
            subject = self.owner.username
        else:
            self.send_body(400, b'{"details":"unsupported grant_type"}')
            return
        scopes = " ".join(form.get("scope", [])).split()
        body = self.owner.issue(subject, scopes, refresh=form.get("access_type", [""])[0] == "offline")
        self.send_body(200, json.dumps(body).encode())


class BlobHost(_Server):
    """Serves a registry's storage dir on 127.0.0.2 (the "object storage" the redirect middleware points at).

    Every request's headers are kept in ``requests`` so a test can check that no ``Authorization`` came.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[dict[str, str]] = []
        super().__init__("127.0.0.2", _BlobHandler)


class _BlobHandler(_QuietHandler):
    def do_GET(self) -> None:
        owner: BlobHost = self.server.owner  # type: ignore[attr-defined]
        owner.requests.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
        relative = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        target = (owner.root / relative).resolve()
        if not target.is_relative_to(owner.root.resolve()) or not target.is_file():
            self.send_body(404, b"not found", "text/plain")
            return
        self.send_body(200, target.read_bytes(), "application/octet-stream")

    do_HEAD = do_GET


@dataclasses.dataclass
class Seen:
    """One request a ``ScriptedServer`` got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""


class ScriptedServer(_Server):
    """A loopback HTTP server whose every answer a test decides, for what a real registry will not do
    on demand: fail with 5xx or 429, drop a connection, name a realm on another host, redirect an
    authenticated request elsewhere. ``answer(seen)`` returns a ``Reply``, or ``None`` to close the
    connection without one. Every request is kept in ``requests``.
    """

    def __init__(self, answer: Callable[[Seen], Reply | None], host: str = "127.0.0.1") -> None:
        self.answer = answer
        self.requests: list[Seen] = []
        super().__init__(host, _ScriptedHandler)


class _ScriptedHandler(_QuietHandler):
    def _handle(self) -> None:
        owner: ScriptedServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.command, self.path, dict(self.headers.items()), body)
        owner.requests.append(seen)
        reply = owner.answer(seen)
        if reply is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@contextlib.contextmanager
def _running(servers: list[_Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.close()


class Registry:
    """One ``docker-registry`` process. ``host`` is ``127.0.0.1:PORT``; ``storage`` its filesystem root."""

    def __init__(
        self,
        base: Path,
        *,
        mode: str = "anonymous",
        token_server: TokenServer | None = None,
        cert_pem: bytes | None = None,
        blob_host: BlobHost | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.base = base
        self.mode = mode
        self.storage = base / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path = base / "config.yml"
        self.log = base / "registry.log"
        self.username: str | None = None
        self.password: str | None = None
        self.token_server = token_server
        self.blob_host = blob_host
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._cert_pem = cert_pem
        self._extra = dict(extra_config or {})

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls(self) -> bool:
        """Whether it serves https (``extra_config={"http": {"tls": {...}}}``)."""
        http = self._extra.get("http")
        return isinstance(http, Mapping) and bool(http.get("tls"))

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "containerkit-tests"},
        }
        if self.mode == "basic":
            import bcrypt

            assert self.username is not None and self.password is not None
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
            htpasswd = self.base / "htpasswd"
            htpasswd.write_text(f"{self.username}:{hashed}\n")
            config["auth"] = {"htpasswd": {"realm": "containerkit-test", "path": str(htpasswd)}}
        elif self.mode == "token":
            assert self.token_server is not None and self._cert_pem is not None
            bundle = self.base / "token-ca.pem"
            bundle.write_bytes(self._cert_pem)
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(bundle),
                }
            }
        elif self.mode == "redirect":
            assert self.blob_host is not None
            config["middleware"] = {
                "storage": [{"name": "redirect", "options": {"baseurl": f"{self.blob_host.url}/"}}]
            }
        _merge(config, self._extra)
        return config

    def start(self) -> None:
        if not os.path.exists(REGISTRY_BINARY):
            import pytest

            pytest.skip(f"Debian's docker-registry is not installed ({REGISTRY_BINARY} missing)")
        for _attempt in range(5):
            self.port = free_port()
            # distribution reads YAML; JSON is YAML, so no YAML writer is needed.
            self.config_path.write_text(json.dumps(self._config(), indent=1))
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    [REGISTRY_BINARY, "serve", str(self.config_path)],
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_ready():
                return
            self.stop()
            if "address already in use" not in self.log.read_text():
                break
        raise RuntimeError(f"docker-registry did not start: {self.log.read_text()[-2000:]}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            conn = (
                http.client.HTTPSConnection(
                    "127.0.0.1", self.port, timeout=2, context=ssl._create_unverified_context()
                )
                if self.tls
                else http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            )
            try:
                conn.request("GET", "/v2/")
                if conn.getresponse().status in (200, 401):
                    return True
            except OSError:
                time.sleep(0.02)
            finally:
                conn.close()
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    @property
    def credentials(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes on disk (so a test can corrupt it)."""
        algorithm, _, hexdigest = digest.partition(":")
        return self.storage / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``into``, dicts key by key (so ``{"http": {"tls": ...}}`` keeps ``addr``)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def write_tls_pair(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files: (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def make_signing_cert() -> tuple[Any, bytes, bytes]:
    """A P-256 key and a self-signed certificate for it: (key, cert DER, cert PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(Encoding.DER), cert.public_bytes(Encoding.PEM)


@contextlib.contextmanager
def start_registry(
    base: Path, mode: str = "anonymous", *, extra_config: Mapping[str, Any] | None = None
) -> Iterator[Registry]:
    """A running registry in ``mode`` (anonymous, basic, token, redirect); everything stops on exit.

    ``extra_config`` is merged into the top level of distribution's config (e.g. ``{"proxy": {...}}``
    or ``{"compatibility": {"schema1": {"enabled": True}}}``).
    """
    servers: list[_Server] = []
    with _running(servers):
        kwargs: dict[str, Any] = {"mode": mode, "extra_config": extra_config}
        if mode == "token":
            key, der, pem = make_signing_cert()
            token_server = TokenServer(key, der)
            servers.append(token_server)
            kwargs.update(token_server=token_server, cert_pem=pem)
        elif mode == "redirect":
            blob_host = BlobHost(base / "storage")
            servers.append(blob_host)
            kwargs["blob_host"] = blob_host
        elif mode not in ("anonymous", "basic"):
            raise ValueError(f"unknown registry mode {mode!r}")
        registry = Registry(base, **kwargs)
        if mode in ("basic", "token"):
            registry.username, registry.password = USERNAME, PASSWORD
        try:
            registry.start()
            yield registry
        finally:
            registry.stop()
            shutil.rmtree(base / "storage", ignore_errors=True)
