"""The ``dermsr`` command line: ``main(argv) -> int``, one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` (cheap: no runtime imports) and
``run(args) -> int``. Errors raised on purpose (:class:`~dermsr.errors.DermsrError`) print
one line on stderr and exit 2, and so does a missing optional dependency (naming the
``pip install 'dermsr[...]'`` that brings it); any other exception prints one line too and
exits 1 (bad user input never shows a traceback); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import DermsrError

__all__ = ["main", "run"]

#: Subcommand modules, in the order ``dermsr --help`` lists them.
SUBCOMMANDS = ("enhance", "degrade", "export", "info", "bench", "train", "evaluate", "study")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dermsr",
        description="Super-resolve dermatology images with Real-ESRGAN's compact network on "
        "PyTorch, NCNN, ExecuTorch or ONNX Runtime, and prove the runtimes agree.",
    )
    parser.add_argument("--version", action="version", version=f"dermsr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="let runtimes' own log lines through to stderr (sets DERMSR_VERBOSE=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"dermsr.cli.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if args.verbose:
        os.environ["DERMSR_VERBOSE"] = "1"  # worker processes inherit it
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("dermsr: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # an optional dependency a code path needed
        from .._extras import extra_for, install_hint

        extra = extra_for(exc.name or "")
        if args.debug or extra is None:
            raise
        print(f"dermsr {args.command}: error: this needs {exc.name!r}, not installed: "
              f"{install_hint(extra)}", file=sys.stderr)
        return 2
    except (DermsrError, OSError) as exc:
        if args.debug:
            raise
        print(f"dermsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # not raised on purpose: still one line, the traceback on request
        if args.debug:
            raise
        print(f"dermsr {args.command}: unexpected error: {type(exc).__name__}: {exc} "
              "(run 'dermsr --debug ...' for the traceback, and please report it)", file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
