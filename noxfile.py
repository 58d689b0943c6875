"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (root, Debian: run scripts/install-system-deps first)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "containerkit", "tests", "benchmarks")
    session.run("ruff", "format", "--check", "containerkit")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy")
    session.run("mypy", "containerkit")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side timings against the peers that are installed (docker, podman, runc, umoci)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
