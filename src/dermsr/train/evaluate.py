"""Former home of the protocol evaluation, now :mod:`dermsr.evaluate.scorecard` (re-exported
here) and the ``dermsr evaluate`` command.

``python -m dermsr.train.evaluate`` says what to run instead: the same flags work with
``dermsr evaluate`` (``--all-images --data DIR`` became ``--unseen DIR``).
"""

from __future__ import annotations

import sys

from ..evaluate.scorecard import PROTOCOLS, format_markdown, meets_targets, protocol_pair, scorecard

__all__ = ["PROTOCOLS", "format_markdown", "meets_targets", "protocol_pair", "scorecard"]

MOVED = ("python -m dermsr.train.evaluate moved: run `dermsr evaluate` with the same flags "
         "(--data DIR scores the held-out split; --all-images --data DIR is now --unseen DIR)")

if __name__ == "__main__":  # pragma: no cover - exercised in tests through a subprocess
    print(MOVED, file=sys.stderr)
    raise SystemExit(2)
