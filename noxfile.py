"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``, ``nox -s docs_check``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, exactly as the README and CI run it."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint over sources, tests, examples and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")
