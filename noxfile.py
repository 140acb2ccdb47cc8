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


@nox.session
def docs_check(session: nox.Session) -> None:
    """The docs stay true: every relative link in README.md and docs/ resolves, and every
    docstring example in the package runs (doctests)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_docs.py", "src/dermsr", *session.posargs)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """ASV suite, quick and offline, against the current environment (runtimes installed).

    Benchmarks this checkout's ``src/`` (ASV_PYTHONPATH) even if dermsr is installed from
    elsewhere. Extra arguments go to ``asv run`` (e.g. ``nox -s bench -- -b EnhanceSuite``).
    """
    from pathlib import Path

    env = {"ASV_PYTHONPATH": str(Path("src").resolve())}
    session.run("asv", "machine", "--yes", external=True)
    session.run("asv", "run", "--quick", "--environment", "existing:same", "--show-stderr",
                *session.posargs, env=env, external=True)
