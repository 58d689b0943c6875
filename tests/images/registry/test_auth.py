"""Challenges, docker's AuthConfig, realm checks, and the token flow against a real registry.

The token flow runs against Debian's docker-registry with the suite's token server
(``registry_token``); the realm-on-another-host case needs a registry that names such a realm, which
the real one does only from its config, so a scripted loopback server plays that registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

import pytest

from containerkit.errors import InvalidArgument, NotFound, RegistryError, Unauthorized
from containerkit.images.registry.auth import RegistryAuth, RegistryOptions, check_realm
from containerkit.images.registry.challenge import parse_challenges
from containerkit.images.registry.transport import RegistryTransport
from tests.images.registry.servers import (
    PASSWORD,
    USERNAME,
    Registry,
    Reply,
    ScriptedServer,
    Seen,
    TokenServer,
    make_signing_cert,
)

# -- challenges ---------------------------------------------------------------------------------


def test_bearer_challenge_with_commas_in_the_scope() -> None:
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:team/app:pull,push",error="insufficient_scope"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:team/app:pull,push",
        "error": "insufficient_scope",
    }


def test_several_challenges_in_one_header() -> None:
    header = 'Basic realm="Registry Realm", Bearer realm="http://127.0.0.1:1/t", service=svc, scope="a:b:c,d"'
    basic, bearer = parse_challenges(header)
    assert (basic.scheme, dict(basic.params)) == ("basic", {"realm": "Registry Realm"})
    assert bearer.scheme == "bearer"
    assert bearer.get("realm") == "http://127.0.0.1:1/t"
    assert bearer.get("service") == "svc"
    assert bearer.get("scope") == "a:b:c,d"


def test_quoted_escapes_case_and_spaces_around_equals() -> None:
    [challenge] = parse_challenges('BEARER Realm = "a \\"quoted\\" realm, with comma" ,Service="x"')
    assert challenge.scheme == "bearer"
    assert challenge.get("realm") == 'a "quoted" realm, with comma'
    assert challenge.get("service") == "x"


def test_repeated_scope_keeps_every_value() -> None:
    [challenge] = parse_challenges('Bearer realm="r",scope="repository:a:pull",scope="repository:b:pull"')
    assert challenge.get("scope").split() == ["repository:a:pull", "repository:b:pull"]


def test_token68_and_bare_schemes() -> None:
    negotiate, basic = parse_challenges("Negotiate abc+/def==, Basic")
    assert (negotiate.scheme, negotiate.token68, dict(negotiate.params)) == ("negotiate", "abc+/def==", {})
    assert (basic.scheme, dict(basic.params)) == ("basic", {})
    assert parse_challenges("") == []
    assert parse_challenges(" , ,") == []


# -- RegistryAuth and RegistryOptions -------------------------------------------------------------


def test_x_registry_auth_decodes_base64url_without_padding() -> None:
    payload = {"username": "bob", "password": "p>?~", "serveraddress": "127.0.0.1:5000"}
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    auth = RegistryAuth.from_header(encoded)
    assert (auth.username, auth.password, auth.server_address) == ("bob", "p>?~", "127.0.0.1:5000")
    assert RegistryAuth.from_header(auth.to_header()) == auth
    standard = base64.b64encode(json.dumps(payload).encode()).decode()
    assert RegistryAuth.from_header(standard) == auth


def test_x_registry_auth_field_names_and_the_auth_field() -> None:
    inner = base64.b64encode(b"carol:pw:with:colons").decode()
    header = base64.urlsafe_b64encode(json.dumps({"Auth": inner, "IdentityToken": "it"}).encode()).decode()
    auth = RegistryAuth.from_header(header)
    assert (auth.username, auth.password, auth.identity_token) == ("carol", "pw:with:colons", "it")
    assert RegistryAuth.from_header("").is_anonymous
    assert RegistryAuth.from_header(base64.b64encode(b"{}").decode()).is_anonymous
    assert "pw" not in repr(RegistryAuth("u", "pw", "tok"))


@pytest.mark.parametrize(
    "bad", ["%%%", base64.b64encode(b"not json").decode(), base64.b64encode(b"[1]").decode()]
)
def test_x_registry_auth_that_does_not_decode_is_invalid(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
        RegistryAuth.from_header(bad)


def test_registry_options_validate_their_entries() -> None:
    options = RegistryOptions(
        insecure_registries=["10.0.0.0/8", "reg.local:5000"], registry_mirrors="http://m:5001"
    )
    assert options.insecure_registries == ("10.0.0.0/8", "reg.local:5000")
    assert options.registry_mirrors == ("http://m:5001",)
    assert (options.max_concurrent_downloads, options.max_concurrent_uploads) == (3, 5)
    with pytest.raises(InvalidArgument, match=r"10\.0\.0\.0/99"):
        RegistryOptions(insecure_registries=["10.0.0.0/99"])
    with pytest.raises(InvalidArgument, match="ftp://m"):
        RegistryOptions(registry_mirrors=["ftp://m"])
    with pytest.raises(InvalidArgument, match="max_concurrent_downloads"):
        RegistryOptions(max_concurrent_downloads=0)


# -- realm checks ----------------------------------------------------------------------------------


def test_realm_rules() -> None:
    # Docker Hub: an https realm on another host gets the credentials
    assert check_realm("https://auth.docker.io/token", "registry-1.docker.io", registry_scheme="https")
    # a loopback registry and its token server on the same address, another port (our tests, ggcr#2302)
    assert check_realm("http://127.0.0.1:9999/token", "127.0.0.1:5000", registry_scheme="http")
    # another loopback host over plain http: allowed, but without credentials
    assert not check_realm("http://127.0.0.2:9999/token", "127.0.0.1:5000", registry_scheme="http")
    # a public registry naming loopback, metadata or private addresses: refused (CVE-2020-15157)
    for realm in ("https://127.0.0.1/token", "https://169.254.169.254/latest", "https://10.1.2.3/t"):
        with pytest.raises(RegistryError, match="refusing token realm"):
            check_realm(realm, "registry.example.com", registry_scheme="https")
    # an https registry does not send anyone to a plain-http realm
    with pytest.raises(RegistryError, match="plain-http"):
        check_realm("http://auth.example.com/token", "registry.example.com", registry_scheme="https")
    with pytest.raises(RegistryError, match="not an http"):
        check_realm("file:///etc/passwd", "registry.example.com", registry_scheme="https")


# -- the token flow against docker-registry -------------------------------------------------------


def _push_blob(transport: RegistryTransport, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    scope = f"repository:{repository}:pull,push"
    started = transport.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
    done = transport.request(
        "PUT", started.headers["Location"], scope=scope, params={"digest": digest}, data=data
    )
    assert done.status_code == 201
    return digest


def test_anonymous_pull_token_but_no_push(registry_token: Registry) -> None:
    with RegistryTransport(registry_token.host, auth=RegistryAuth(USERNAME, PASSWORD)) as alice:
        digest = _push_blob(alice, "team/app", b"layer bytes")
    with RegistryTransport(registry_token.host) as anonymous:
        blob = anonymous.request("GET", f"/v2/team/app/blobs/{digest}", scope="repository:team/app:pull")
        assert blob.content == b"layer bytes"
        with pytest.raises(Unauthorized, match=r"team/app.*authentication required"):
            anonymous.request("POST", "/v2/team/app/blobs/uploads/", scope="repository:team/app:pull,push")
    requests = registry_token.token_server.requests
    assert all(r["authorization"] is None for r in requests[-3:])  # the anonymous ones


def test_wrong_password_is_unauthorized_naming_the_user(registry_token: Registry) -> None:
    with (
        RegistryTransport(registry_token.host, auth=RegistryAuth(USERNAME, "wrong")) as transport,
        pytest.raises(Unauthorized, match=f"token server .* refused the credentials of '{USERNAME}'"),
    ):
        transport.request("GET", "/v2/team/app/tags/list", scope="repository:team/app:pull")


def test_tokens_are_cached_per_scope(registry_token: Registry) -> None:
    server = registry_token.token_server
    with RegistryTransport(registry_token.host, auth=RegistryAuth(USERNAME, PASSWORD)) as transport:
        digest = _push_blob(transport, "cache/me", b"cached")
        after_push = len(server.requests)
        assert after_push == 1  # POST and PUT shared the pull,push token
        for _ in range(3):
            transport.request("HEAD", f"/v2/cache/me/blobs/{digest}", scope="repository:cache/me:pull")
        assert len(server.requests) == after_push + 1  # one more for the pull-only scope set
        transport.request("HEAD", f"/v2/cache/me/blobs/{digest}", scope="repository:cache/me:pull,push")
        assert len(server.requests) == after_push + 1


def test_expired_token_is_fetched_again(registry_token: Registry) -> None:
    server = registry_token.token_server
    server.expires_in = 60
    server.issued_at_offset = -120  # issued two minutes ago for 60 s: already stale when it arrives
    with RegistryTransport(registry_token.host) as transport:
        for _ in range(2):
            with pytest.raises(NotFound, match="repository name not known"):
                transport.request("GET", "/v2/none/here/tags/list", scope="repository:none/here:pull")
    assert len(server.requests) == 2
    server.issued_at_offset = 0
    server.expires_in = None  # no expires_in: 60 s, so the token is reused
    with RegistryTransport(registry_token.host) as transport:
        for _ in range(2):
            with pytest.raises(NotFound):
                transport.request("GET", "/v2/none/here/tags/list", scope="repository:none/here:pull")
    assert len(server.requests) == 3


def test_insufficient_scope_gets_one_retry_with_the_wider_scope(registry_token: Registry) -> None:
    server = registry_token.token_server
    with RegistryTransport(registry_token.host, auth=RegistryAuth(USERNAME, PASSWORD)) as transport:
        # asked with a pull scope only: the registry answers insufficient_scope naming pull,push
        started = transport.request("POST", "/v2/wider/app/blobs/uploads/", scope="repository:wider/app:pull")
        assert started.status_code == 202
    scopes = [r["params"].get("scope") for r in server.requests]
    assert scopes == [
        ["repository:wider/app:pull"],
        ["repository:wider/app:pull", "repository:wider/app:pull,push"],
    ]


def test_login_returns_an_identity_token_that_later_pulls_use_with_post(registry_token: Registry) -> None:
    server = registry_token.token_server
    with RegistryTransport(registry_token.host, auth=RegistryAuth(USERNAME, PASSWORD)) as transport:
        identity = transport.login()
    assert identity is not None and identity in server.refresh_tokens
    assert server.requests[-1]["params"]["offline_token"] == ["true"]
    with RegistryTransport(registry_token.host, auth=RegistryAuth(identity_token=identity)) as transport:
        _push_blob(transport, "oauth/app", b"via a refresh token")
    last = server.requests[-1]
    assert last["method"] == "POST"
    assert last["params"]["grant_type"] == ["refresh_token"]
    assert last["params"]["scope"] == ["repository:oauth/app:pull,push"]


def test_oauth_post_falls_back_to_get_where_there_is_none(registry_token: Registry) -> None:
    server = registry_token.token_server
    with RegistryTransport(registry_token.host, auth=RegistryAuth(USERNAME, PASSWORD)) as transport:
        identity = transport.login()
    assert identity is not None
    server.post_status = 404  # GCR's answer to the OAuth2 POST
    with RegistryTransport(
        registry_token.host, auth=RegistryAuth(USERNAME, identity_token=identity)
    ) as transport:
        _push_blob(transport, "fallback/app", b"via GET")
    post, get = server.requests[-2:]
    assert (post["method"], get["method"]) == ("POST", "GET")
    assert base64.b64decode(get["authorization"].split()[1]).decode() == f"{USERNAME}:{identity}"


def test_login_with_a_wrong_password_is_refused(registry_token: Registry, registry_basic: Registry) -> None:
    for registry in (registry_token, registry_basic):
        with (
            RegistryTransport(registry.host, auth=RegistryAuth(USERNAME, "nope")) as transport,
            pytest.raises(Unauthorized),
        ):
            transport.login()
    with RegistryTransport(registry_basic.host, auth=RegistryAuth(USERNAME, PASSWORD)) as transport:
        assert transport.login() is None


def test_basic_auth_registry(registry_basic: Registry) -> None:
    with RegistryTransport(registry_basic.host, auth=RegistryAuth(*registry_basic.credentials or ())) as user:
        digest = _push_blob(user, "basic/app", b"basic")
    with RegistryTransport(registry_basic.host) as anonymous, pytest.raises(Unauthorized, match="basic/app"):
        anonymous.request("GET", f"/v2/basic/app/blobs/{digest}", scope="repository:basic/app:pull")


def test_a_realm_on_another_host_gets_no_credentials(
    scripted_server: Callable[..., ScriptedServer],
) -> None:
    """A registry on 127.0.0.1 that sends clients to a token server on 127.0.0.2 over plain http."""
    key, der, _pem = make_signing_cert()
    elsewhere = TokenServer(key, der, host="127.0.0.2")
    try:

        def registry(seen: Seen) -> Reply:
            if seen.headers.get("Authorization", "").startswith("Bearer "):
                return Reply(200, {"Content-Type": "application/json"}, b"{}")
            challenge = f'Bearer realm="{elsewhere.realm}",service="svc"'
            return Reply(401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, b"{}")

        fake = scripted_server(registry)
        with RegistryTransport(fake.host, auth=RegistryAuth(USERNAME, PASSWORD)) as transport:
            response = transport.request("GET", "/v2/x/y/tags/list", scope="repository:x/y:pull")
        assert response.status_code == 200
        assert len(elsewhere.requests) == 1
        assert elsewhere.requests[0]["authorization"] is None
        assert "account" not in elsewhere.requests[0]["params"]
    finally:
        elsewhere.close()


def test_scopes_are_put_in_dockers_order() -> None:
    from containerkit.images.registry.transport import canonical_scope

    assert canonical_scope("repository:team/app:push,pull") == "repository:team/app:pull,push"
    assert canonical_scope("repository:127.0.0.1:5000/x:delete,push,pull") == (
        "repository:127.0.0.1:5000/x:pull,push,delete"
    )
    assert canonical_scope("registry:catalog:*") == "registry:catalog:*"
    assert canonical_scope("odd") == "odd"
