"""How an exported program writes SRVGGNetCompact's output stage (torch-free, so the export
modules and the backends can name the choices without importing PyTorch).

The first is the default; :mod:`dermsr.export.deploy` implements each as an exact rewrite.
"""

from __future__ import annotations

__all__ = ["GRAPHS"]

#: ``residual-first``, ``deconv`` or ``as-written`` (see :mod:`dermsr.export.deploy`).
GRAPHS = ("residual-first", "deconv", "as-written")
