"""HTTP to one registry: discovery, auth, redirects, retries, and the registry's errors as ours.

``RegistryTransport(domain, auth=..., options=...)`` finds the endpoint with ``GET /v2/`` (mirrors
first for docker.io pulls; https, then http for insecure and loopback hosts), learns the challenge
there, and sends each request with the ``Authorization`` its scope needs:

* a 401 carrying ``invalid_token`` / ``insufficient_scope`` (or the first 401 of a registry whose
  ``/v2/`` was open) gets one retry with a fresh token, the challenge's scope added;
* 5xx, 429 and broken connections are retried with exponential back-off, for idempotent requests
  whose body can be sent again (never POST or PATCH, never on 401, 403 or 404);
* redirects are followed here, not by requests, so ``Authorization`` is sent only to the registry's
  own scheme, host and port (distribution spec: "MUST NOT forward Authorization headers across host
  boundaries"; moby#50065 is what happens otherwise);
* an error status becomes ``NotFound``, ``Unauthorized`` or ``RegistryError`` naming the repository
  and the registry's error codes and messages, unless the caller listed it in ``accept``.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import requests
import urllib3

from containerkit.errors import ContainerkitError, NotFound, RegistryError, Unauthorized
from containerkit.images.registry.auth import Authorizer, RegistryAuth, RegistryOptions
from containerkit.images.registry.hosts import Endpoint, endpoints, is_insecure, registry_host

__all__ = ["RegistryNotFound", "RegistryTransport", "canonical_scope", "error_from_response", "parse_scopes"]

log = logging.getLogger("containerkit.registry")

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10
_NOT_FOUND_CODES = frozenset({"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"})
_AUTH_CODES = frozenset({"UNAUTHORIZED", "DENIED"})
_REPO_RE = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)(?:/|$)")
USER_AGENT = "containerkit"

Scope = str | Sequence[str] | None


def canonical_scope(scope: str) -> str:
    """``repository:name:push,pull`` with its actions in docker's order (``pull,push``, then the
    rest sorted): registries name them in any order, and the token cache keys on the text."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and name):
        return scope
    order = {"pull": 0, "push": 1}
    wanted = sorted(set(actions.split(",")) - {""}, key=lambda a: (order.get(a, 2), a))
    return f"{kind}:{name}:{','.join(wanted)}"


def parse_scopes(scope: Scope) -> tuple[str, ...]:
    """A scope argument (one string, several, or none) as a tuple."""
    if scope is None:
        return ()
    if isinstance(scope, str):
        return (scope,) if scope else ()
    return tuple(s for s in scope if s)


def _repository(url: str) -> str | None:
    match = _REPO_RE.match(urllib.parse.urlsplit(url).path)
    return match.group(1) if match else None


def _registry_errors(response: requests.Response) -> list[tuple[str, str]]:
    """(code, message) pairs of distribution's ``{"errors": [...]}`` body, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    out = []
    for entry in errors:
        if isinstance(entry, dict):
            out.append((str(entry.get("code", "")).upper(), str(entry.get("message", ""))))
    return out


def error_from_response(response: requests.Response, registry: str) -> ContainerkitError:
    """The exception for an error answer: NotFound (404, ``*_UNKNOWN``), Unauthorized (401, 403,
    ``UNAUTHORIZED``/``DENIED``) or RegistryError, naming the repository and the registry's words
    (docker's form: ``manifest unknown: manifest unknown``)."""
    status = response.status_code
    pairs = _registry_errors(response)
    codes = tuple(code for code, _ in pairs)
    words = "; ".join(f"{code.lower().replace('_', ' ')}: {message}" for code, message in pairs)
    if not words:
        words = (
            response.text.strip()[:300] if response.headers.get("Content-Type", "").startswith("text") else ""
        )
        words = words or f"{status} {response.reason}"
    repository = _repository(response.url)
    what = f"{registry}/{repository}" if repository else registry
    method = response.request.method if response.request is not None else "request"
    message = f"{what}: {words}"
    if status == 404 or (codes and set(codes) <= _NOT_FOUND_CODES):
        return RegistryNotFound(message, codes=codes, words=words)
    if status in (401, 403) or (codes and set(codes) <= _AUTH_CODES):
        return Unauthorized(message)
    return RegistryError(f"{what}: {method} answered {status}: {words}", registry_status=status, codes=codes)


class RegistryNotFound(NotFound):
    """A registry's 404: ``codes`` and ``words`` (``manifest unknown: manifest unknown``) kept, so
    a pull can say it in docker's words (``manifest for <ref> not found: <words>``)."""

    def __init__(self, message: str, *, codes: tuple[str, ...] = (), words: str = "") -> None:
        super().__init__(message)
        self.codes = codes
        self.words = words


def _refused(exc: BaseException) -> bool:
    """Whether nothing listens where ``exc`` tried to connect (ECONNREFUSED somewhere in its chain):
    no server is there, and waiting will not bring one."""
    seen: set[int] = set()
    inner: BaseException | None = exc
    while inner is not None and id(inner) not in seen:
        if isinstance(inner, ConnectionRefusedError):
            return True
        seen.add(id(inner))
        for arg in inner.args:  # urllib3 keeps its cause in args (MaxRetryError.reason)
            if isinstance(arg, BaseException) and _refused(arg):
                return True
        reason = getattr(inner, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen and _refused(reason):
            return True
        inner = inner.__cause__ or inner.__context__
    return False


def _replayable(data: Any) -> bool:
    return data is None or isinstance(data, bytes | bytearray | memoryview | str | dict)


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    """One TLS context for every connection whose certificate is not checked (an insecure or
    loopback registry): it needs no CA store."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Adapter(requests.adapters.HTTPAdapter):
    """requests leaves urllib3 to make a TLS context for each new pool of an unverified
    connection, and urllib3 loads the system's CA certificates into it (about 40 ms, the https
    try of every loopback pull) only for them to go unused: such pools share one context
    without them. (requests older than 2.32 does not call this hook and keeps its own way.)"""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[Any, Any]:  # typed dicts in newer types-requests, plain dicts before
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        kwargs: dict[str, Any] = dict(pool)
        if verify is False and "ssl_context" not in kwargs:
            kwargs["ssl_context"] = _unverified_context()
        return host, kwargs


class RegistryTransport:
    """A ``requests.Session`` for one registry, with its endpoint, challenge and token cache.

    ``domain`` is the reference's domain (``docker.io``, ``127.0.0.1:5000``). Safe to share between
    threads once :meth:`ping` has run (the first :meth:`request` runs it). ``mirrors=False`` for
    pushes, which never go to a mirror.
    """

    def __init__(
        self,
        domain: str,
        *,
        auth: RegistryAuth | None = None,
        options: RegistryOptions | None = None,
        mirrors: bool = True,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        timeout: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.domain = domain
        self.host = registry_host(domain)
        self.auth = auth or RegistryAuth()
        self.options = options or RegistryOptions()
        self.candidates = endpoints(domain, self.options, mirrors=mirrors)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        if session is None:
            session = requests.Session()
            session.mount("https://", _Adapter())
        self.session = session
        self.session.trust_env = False  # no .netrc credentials, no proxy for loopback registries
        self.session.headers["User-Agent"] = USER_AGENT
        self._current: tuple[Endpoint, Authorizer] | None = None
        self._sleep = sleep
        self._ping_lock = threading.Lock()
        if any(not e.verify_tls for e in self.candidates):
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    # -- discovery ---------------------------------------------------------------------------

    def ping(self) -> Endpoint:
        """``GET /v2/`` on each candidate until one answers 200 or 401; remembers it and its challenge."""
        return self._connected()[0]

    def _connected(self) -> tuple[Endpoint, Authorizer]:
        with self._ping_lock:
            if self._current is None:
                self._discover(self.candidates)
            assert self._current is not None
            return self._current

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint in use (None before discovery)."""
        current = self._current
        return current[0] if current is not None else None

    @property
    def authorizer(self) -> Authorizer | None:
        current = self._current
        return current[1] if current is not None else None

    def _discover(self, candidates: Sequence[Endpoint]) -> Endpoint:
        failures: list[str] = []
        for candidate in candidates:
            url = f"{candidate.url}/v2/"
            try:
                response = self._with_retries(
                    functools.partial(
                        self.session.get,
                        url,
                        verify=candidate.verify_tls,
                        timeout=self.timeout,
                        allow_redirects=False,
                    ),
                    "GET",
                    url,
                    retry_connection_errors=not self._fallback_after(candidate),
                    retry_refused=False,
                )
            except requests.RequestException as exc:
                failures.append(f"GET {url}: {_reason(exc)}")
                continue
            if response.status_code not in (200, 401):
                failures.append(f"GET {url}: {response.status_code} {response.reason}")
                continue
            scheme = urllib.parse.urlsplit(candidate.url).scheme
            authorizer = Authorizer(
                self.session, candidate.netloc, self.auth, scheme=scheme, verify_tls=candidate.verify_tls
            )
            if response.status_code == 401:
                authorizer.learn(response.headers.get("WWW-Authenticate"))
            self._current = (candidate, authorizer)
            return candidate
        raise RegistryError(f"registry {self.domain} unreachable: " + "; ".join(failures))

    def _leave_mirror(self, failed: Endpoint) -> bool:
        """After a mirror failed a request, move on to the candidates after it (dockerd's fallback from
        mirrors to the registry itself); False when none of them answers."""
        with self._ping_lock:
            if self.endpoint is not failed:
                return True  # another thread has moved on already
            log.info("registry %s: mirror %s failed; trying the next endpoint", self.domain, failed.url)
            rest = self.candidates[self.candidates.index(failed) + 1 :]
            if not rest:
                return False
            try:
                self._discover(rest)
            except RegistryError:
                return False
            return True

    def _fallback_after(self, candidate: Endpoint) -> bool:
        """Whether another candidate follows (then a refused https is no reason to wait and retry)."""
        return candidate is not self.candidates[-1]

    @property
    def base_url(self) -> str:
        return self.ping().url

    # -- requests ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: Scope,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        data: Any = None,
        stream: bool = False,
        accept: Collection[int] = (),
        timeout: float | None = None,
    ) -> requests.Response:
        """Send ``method path`` (``/v2/...`` or an absolute URL from a ``Location``) with the auth
        ``scope`` needs; an error status raises unless it is in ``accept``, and a connection that
        fails after the retries raises ``RegistryError``. A GET or HEAD that a mirror fails is sent
        again to the next endpoint (the registry itself last), as dockerd falls back."""
        while True:
            endpoint, authorizer = self._connected()
            try:
                return self._request(
                    endpoint, authorizer, method, path, scope, headers, params, data, stream, accept, timeout
                )
            except ContainerkitError:
                fallback = endpoint.mirror and method.upper() in ("GET", "HEAD") and "://" not in path
                if not (fallback and self._leave_mirror(endpoint)):
                    raise

    def _request(
        self,
        endpoint: Endpoint,
        authorizer: Authorizer,
        method: str,
        path: str,
        scope: Scope,
        headers: Mapping[str, str] | None,
        params: Any,
        data: Any,
        stream: bool,
        accept: Collection[int],
        timeout: float | None,
    ) -> requests.Response:
        scopes = list(parse_scopes(scope))
        method = method.upper()
        url = path if "://" in path else f"{endpoint.url}{path}"
        replayable = _replayable(data)
        reauthorized = False
        while True:
            try:
                response = self._with_retries(
                    lambda: self._send(
                        endpoint, authorizer, method, url, scopes, headers, params, data, stream, timeout
                    ),
                    method,
                    url,
                    retry_connection_errors=True,
                    retry_ok=method in _IDEMPOTENT and replayable,
                )
            except requests.RequestException as exc:
                what = _repository(url)
                where = f"{self.domain}/{what}" if what else self.domain
                raise RegistryError(f"{where}: {method} {url} failed: {_reason(exc)}") from exc
            if response.status_code != 401 or reauthorized or not replayable:
                break
            if not self._same_origin(response.url, endpoint):
                break  # 401 from where a redirect led: not the registry's challenge
            had_auth = "Authorization" in (response.request.headers if response.request is not None else {})
            challenges = authorizer.learn(response.headers.get("WWW-Authenticate"))
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            error = bearer.get("error") if bearer is not None else ""
            if had_auth and error not in ("invalid_token", "insufficient_scope"):
                break
            if bearer is not None:
                authorizer.invalidate(scopes)
                for extra in map(canonical_scope, bearer.get("scope").split()):
                    if extra not in scopes:
                        scopes.append(extra)
            elif not challenges or had_auth:
                break
            response.close()
            reauthorized = True
        if response.status_code >= 400 and response.status_code not in accept:
            try:
                raise error_from_response(response, self.domain)
            finally:
                response.close()
        return response

    @staticmethod
    def _same_origin(url: str, endpoint: Endpoint) -> bool:
        a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(endpoint.url)
        return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())

    def _verify(self, url: str, endpoint: Endpoint) -> bool:
        if self._same_origin(url, endpoint):
            return endpoint.verify_tls
        netloc = urllib.parse.urlsplit(url).netloc
        return not is_insecure(netloc, self.options.insecure_registries)

    def _send(
        self,
        endpoint: Endpoint,
        authorizer: Authorizer,
        method: str,
        url: str,
        scopes: Sequence[str],
        headers: Mapping[str, str] | None,
        params: Any,
        data: Any,
        stream: bool,
        timeout: float | None,
    ) -> requests.Response:
        """One request and its redirects, each hop's ``Authorization`` decided by its origin."""
        for _hop in range(_MAX_REDIRECTS + 1):
            sent = dict(headers or {})
            if self._same_origin(url, endpoint):
                authorization = authorizer.header(scopes)
                if authorization is not None:
                    sent["Authorization"] = authorization
            response = self.session.request(
                method,
                url,
                headers=sent,
                params=params,
                data=data,
                stream=stream,
                verify=self._verify(url, endpoint),
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
            if response.status_code not in _REDIRECTS or "Location" not in response.headers:
                return response
            target = urllib.parse.urljoin(response.url, response.headers["Location"])
            response.close()
            if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                raise RegistryError(f"registry {self.domain}: redirect to a non-http URL {target!r}")
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, data = "GET", None
            elif data is not None and not _replayable(data):
                raise RegistryError(f"registry {self.domain}: {method} {url} redirected with a streamed body")
            url, params = target, None  # the Location carries its own query
        raise RegistryError(f"registry {self.domain}: more than {_MAX_REDIRECTS} redirects from {url}")

    def _with_retries(
        self,
        send: Callable[[], requests.Response],
        method: str,
        url: str,
        *,
        retry_connection_errors: bool,
        retry_ok: bool = True,
        retry_refused: bool = True,
    ) -> requests.Response:
        """Run ``send``; retry 5xx/429/408 and broken connections with exponential back-off when allowed.

        ``retry_refused=False`` (discovery): a refused connection fails at once; nothing listens
        there, so waiting through the back-off only delays the error (``docker pull`` from a
        registry that is down fails at once too). A registry found before that refuses later
        (restarting) is retried like any broken connection."""
        attempt = 0
        while True:
            try:
                response = send()
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                if not (retry_ok and retry_connection_errors) or attempt >= self.retries:
                    raise
                if isinstance(exc, requests.exceptions.SSLError):
                    raise  # a TLS failure will not heal by waiting
                if not retry_refused and _refused(exc):
                    raise
                delay = self._delay(attempt, None)
                log.info(
                    "registry %s: %s %s failed (%s); retrying in %.1f s",
                    self.domain,
                    method,
                    url,
                    _reason(exc),
                    delay,
                )
            else:
                if not (retry_ok and response.status_code in _RETRY_STATUSES) or attempt >= self.retries:
                    return response
                delay = self._delay(attempt, response.headers.get("Retry-After"))
                log.info(
                    "registry %s: %s %s answered %d; retrying in %.1f s",
                    self.domain,
                    method,
                    url,
                    response.status_code,
                    delay,
                )
                response.close()
            self._sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.backoff * (2**attempt), self.max_backoff)
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), self.max_backoff * 4))
        return float(delay)

    # -- login and lifetime --------------------------------------------------------------------

    def login(self) -> str | None:
        """Check the credentials as ``docker login`` does; the identity token, if the server gave one.

        Basic: ``GET /v2/`` with them must answer 200. Bearer: the token server must grant a token
        for them (no scope, ``offline_token=true``). Raises ``Unauthorized`` when refused.
        """
        _endpoint, authorizer = self._connected()
        if authorizer.bearer is not None:
            authorizer.header([], offline=True)
            return authorizer.refresh_token
        if not authorizer.challenges:
            return None  # an open registry accepts anyone, as docker login finds
        response = self.request("GET", "/v2/", scope=None, accept=(401,))
        status = response.status_code
        response.close()
        if status == 401:
            raise Unauthorized(f"registry {self.domain}: login refused for {self.auth.username!r}")
        return None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, which says what happened (refused, reset, TLS)."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or type(inner).__name__
    return text if text == str(exc) else f"{type(exc).__name__}: {text}"
