"""docs/compatibility.md against the Docker Engine API's OpenAPI documents and the daemon's router:
every endpoint has a row, every registered route is listed, and the status of a row says what the
route does (a 501/503 stub is "not implemented"; a real handler is "supported" or "partial")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "compatibility.md"
SPECS = [
    Path("/work/shared/specs/docker-engine-api.yaml"),
    Path("/work/shared/specs/docker-engine-api-v1.50.yaml"),
]
STATUSES = ("supported", "partial", "not implemented")
_ROW = re.compile(r"^\| `(GET|HEAD|POST|PUT|DELETE|PATCH) (/\S*)` \| ([a-z ]+?) \|")
# the daemon's placeholders for a stub that answers docker's 501 (or swarm's 503)
_STUBS = ("unsupported", "swarm")


def _shape(path: str) -> str:
    """``/images/{name:.+}/json`` and ``/images/{name}/json`` -> ``/images/{}/json``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def doc_rows() -> dict[tuple[str, str], str]:
    rows: dict[tuple[str, str], str] = {}
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        method, path, status = match.groups()
        key = (method, _shape(path))
        assert key not in rows, f"{method} {path} has two rows in {DOC.name}"
        assert status in STATUSES, f"{method} {path}: status {status!r} is none of {STATUSES}"
        rows[key] = status
    return rows


def spec_endpoints(spec: Path) -> Iterator[tuple[str, str]]:
    yaml = pytest.importorskip("yaml")
    with spec.open() as f:
        document = yaml.safe_load(f)
    for path, operations in document["paths"].items():
        for method in operations:
            if method.upper() in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"):
                yield method.upper(), path


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, str]]:
    """``(method, pattern, handler name)`` of a real daemon app on a temp engine root."""
    import containerkit as ck
    from containerkit.daemon.app import DaemonApp

    with ck.Engine(root=tmp_path_factory.mktemp("compat") / "root", forkserver=False) as engine:
        app = DaemonApp(engine)
        return [(method, pattern, handler.__name__) for method, pattern, handler in app.router.routes()]


def test_the_doc_rows_are_well_formed() -> None:
    rows = doc_rows()
    assert len(rows) > 100, "the endpoint table was not found"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_openapi_endpoint_has_a_row(spec: Path) -> None:
    if not spec.exists():
        pytest.skip(f"{spec} is not on this machine")
    rows = doc_rows()
    missing = [
        f"{method} {path}" for method, path in spec_endpoints(spec) if (method, _shape(path)) not in rows
    ]
    assert missing == [], f"endpoints of {spec.name} without a row in {DOC.name}: {missing}"


def test_every_row_is_an_openapi_endpoint() -> None:
    if not SPECS[0].exists():
        pytest.skip(f"{SPECS[0]} is not on this machine")
    known = {
        (method, _shape(path)) for spec in SPECS if spec.exists() for method, path in spec_endpoints(spec)
    }
    extra = sorted(f"{method} {path}" for method, path in doc_rows() if (method, path) not in known)
    assert extra == [], f"rows of {DOC.name} that are no Engine API endpoint: {extra}"


def test_every_registered_route_is_documented_with_its_status(routes: list[tuple[str, str, str]]) -> None:
    rows = doc_rows()
    wrong: list[str] = []
    for method, pattern, handler in routes:
        if pattern.endswith("{rest:.+}"):  # a catch-all: the rows under its prefix
            prefix = pattern[: -len("{rest:.+}")]
            covered = {
                status for (m, path), status in rows.items() if m == method and path.startswith(prefix)
            }
        else:
            found = rows.get((method, _shape(pattern)))
            covered = {found} if found is not None else set()
        if not covered:
            if handler not in _STUBS:
                wrong.append(f"{method} {pattern}: registered, no row")
            continue
        expected = {"not implemented"} if handler in _STUBS else {"supported", "partial"}
        if not covered <= expected:
            wrong.append(f"{method} {pattern}: handler {handler}, documented as {sorted(covered)}")
    assert wrong == [], "\n".join(wrong)


def test_every_supported_row_has_a_route(routes: list[tuple[str, str, str]]) -> None:
    registered = {(method, _shape(pattern)) for method, pattern, handler in routes if handler not in _STUBS}
    # the router answers HEAD with the GET route
    registered |= {("HEAD", path) for method, path in registered if method == "GET"}
    claimed = [f"{m} {p}" for (m, p), status in doc_rows().items() if status != "not implemented"]
    assert [row for row in claimed if tuple(row.split(" ", 1)) not in registered] == []
