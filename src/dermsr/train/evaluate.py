"""Former home of the protocol evaluation: use ``dermsr evaluate`` (:mod:`dermsr.evaluate.scorecard`).

``python -m dermsr.train.evaluate --data DIR [--all-images] --model M ...`` still works and
runs ``dermsr evaluate --data DIR`` (or ``--unseen DIR``) with the same options.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..evaluate.scorecard import PROTOCOLS, format_markdown, meets_targets, protocol_pair, scorecard

__all__ = ["PROTOCOLS", "format_markdown", "main", "meets_targets", "protocol_pair", "scorecard"]


def main(argv: Sequence[str] | None = None) -> int:
    """Translate the old flags (``--data DIR [--all-images]``) and run ``dermsr evaluate``."""
    import sys

    from ..cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    if "--all-images" in args:
        args.remove("--all-images")
        args = ["--unseen" if a == "--data" else a for a in args]
    return cli_main(["evaluate", *args])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
