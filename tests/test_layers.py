"""Imports point down only (DESIGN.md "Layers"): checked on the source, inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import containerkit

PACKAGE = Path(containerkit.__file__).parent

# _model: the models' decorator (attrs.frozen with shared repr, eq and hash), beneath spec;
# _log: a logger that imports logging when it first logs
# _forkready: whether this process may fork, once idle background threads were ended
_BASE = {"spec", "errors", "times", "_model", "_log", "_forkready"}
# What each part may import from containerkit, besides itself. storage/ unpacks layers with
# images/unpack (the content side of an image) into snapshot dirs.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "spec": {"errors", "_model"},
    "_model": set(),
    "_log": set(),
    "_forkready": set(),
    "times": {"errors"},
    "linux": _BASE,
    "images": _BASE | {"linux"},
    "storage": _BASE | {"linux", "images"},
    "runtime": _BASE | {"linux"},
    "network": _BASE | {"linux"},
    "engine": _BASE | {"linux", "images", "storage", "runtime", "network", "dockerfile"},
    # the Dockerfile language (parser, shell lexer, .dockerignore): pure, the builder uses it
    "dockerfile": _BASE,
    # Docker's JSON both ways, pure: the daemon, the client and the CLI translate through it
    "dockerapi": _BASE,
    "client": _BASE | {"dockerapi"},
    # the front-ends reach containers through the engine only (never a state dir, a runtime file
    # or a store); the daemon's one linux import is staging, for its own request-body spools
    "daemon": _BASE | {"engine", "dockerapi", "linux"},
    "cli": _BASE | {"api", "engine", "dockerapi", "client", "_inprocess", "_reaper", "wait"},
    "testing": _BASE | {"api", "engine", "client", "_inprocess", "_reaper", "wait"},
    "wait": _BASE | {"api", "engine", "_inprocess"},
    # the session reaper: labels and expiry, and whether a session's process still lives
    "_reaper": _BASE | {"linux"},
    # the protocols Engine and Client both satisfy: above both, so neither imports it
    "api": _BASE,
    # mypy's check that both sides satisfy api (never imported at run time)
    "_conformance": _BASE | {"api", "engine", "client", "runtime"},
    # narrows an api object to the in-process Engine's type (for cli/, testing/, wait.py)
    "_inprocess": _BASE | {"api", "engine"},
}


def _part(module: Path) -> str:
    relative = module.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imported_parts(module: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "containerkit" and node.level == 0:
            # ``from containerkit import api``: the part is the name imported
            names = [f"containerkit.{alias.name}" for alias in node.names if _is_part(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "containerkit" and len(parts) > 1:
                found.add(parts[1])
    return found


def _is_part(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def test_imports_point_down() -> None:
    wrong = []
    for module in sorted(PACKAGE.rglob("*.py")):
        part = _part(module)
        if part not in ALLOWED:
            continue
        for imported in _imported_parts(module) - {part}:
            if imported not in ALLOWED[part]:
                wrong.append(f"{module.relative_to(PACKAGE.parent)} imports containerkit.{imported}")
    assert wrong == []


_BELOW_ENGINE = {"linux", "images", "storage", "runtime", "network", "build"}


def test_front_ends_import_engine_level_names_only() -> None:
    """cli/, testing/ and wait.py name no layer under the engine (a state dir's files are the
    runtime Task's business); the daemon only linux.staging, for its own spooled bodies."""
    for part in ("cli", "testing", "wait"):
        assert not ALLOWED[part] & _BELOW_ENGINE, part
    assert ALLOWED["daemon"] & _BELOW_ENGINE == {"linux"}
    linux_used = set()
    for module in (PACKAGE / "daemon").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "containerkit.linux":
                linux_used.update(f"containerkit.linux.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("containerkit.linux."):
                linux_used.add(str(node.module))
            elif isinstance(node, ast.Import):
                linux_used.update(a.name for a in node.names if a.name.startswith("containerkit.linux"))
    assert linux_used == {"containerkit.linux.staging"}


def test_api_sits_above_engine_and_client() -> None:
    """api.py holds only protocols; engine/ and client/ satisfy them without importing them."""
    assert ALLOWED["api"] == _BASE
    assert "api" not in ALLOWED["engine"] | ALLOWED["client"]
    assert _imported_parts(PACKAGE / "api.py") <= _BASE


def test_dockerapi_imports_only_spec_and_errors() -> None:
    """The Docker shapes are pure translation: nothing below the front-ends imports them."""
    assert ALLOWED["dockerapi"] == _BASE
    for module in (PACKAGE / "dockerapi").rglob("*.py"):
        assert _imported_parts(module) - {"dockerapi"} <= _BASE, module.name
    users = {_part(m) for m in PACKAGE.rglob("*.py") if "dockerapi" in _imported_parts(m)} - {"dockerapi"}
    assert users <= {"daemon", "client", "cli"}


def test_conformance_check_is_never_imported() -> None:
    """The mypy-only module imports both Engine and Client: nothing may load it at run time."""
    importers = [
        str(m.relative_to(PACKAGE.parent))
        for m in PACKAGE.rglob("*.py")
        if "_conformance" in _imported_parts(m) or "containerkit._conformance" in _module_names(m)
    ]
    assert importers == []


def test_only_linux_uses_ctypes() -> None:
    users = [
        str(m.relative_to(PACKAGE.parent))
        for m in PACKAGE.rglob("*.py")
        if "ctypes" in {n.split(".")[0] for n in _module_names(m)} and _part(m) != "linux"
    ]
    assert users == []


def _module_names(module: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_shim_does_not_import_the_spawner() -> None:
    """The spawner runs shims; the shim knows only the Launcher protocol (no circle)."""
    runtime = PACKAGE / "runtime"
    for name in ("shim.py", "launcher.py", "request.py"):
        module = runtime / name
        names = _module_names(module) | _imported_runtime_names(module)
        assert not [n for n in names if n.split(".")[-1] == "spawner"], name


def _imported_runtime_names(module: Path) -> set[str]:
    """``x`` of every ``from containerkit.runtime import x`` (or ``from . import x``)."""
    return {
        alias.name
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module == "containerkit.runtime" or node.level > 0)
        for alias in node.names
    }
