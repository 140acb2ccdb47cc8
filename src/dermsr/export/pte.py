"""Export the model to an ExecuTorch program (``.pte``) with the XNNPACK delegate.

The pipeline is the one ExecuTorch documents for CPU/mobile deployment (ExecuTorch 1.x,
"Exporting to ExecuTorch" and "XNNPACK Backend" pages)::

    torch.export.export(net, example, dynamic_shapes=...)
      -> executorch.exir.to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])
      -> .to_executorch().buffer          # the bytes of model.pte

Before export the output stage is rewritten exactly (:mod:`dermsr.export.deploy`): by default
the residual is added before the PixelShuffle through a 0/1 1×1 convolution, so no nearest
upsampling is left for ExecuTorch's portable kernels.

A program is built for a :class:`PteSpec`: either one fixed input shape, or a dynamic height
and width from 1 up to a maximum (``torch.export.Dim``). ExecuTorch plans its memory for the
largest shape when the program is loaded, so the maximum costs memory even when smaller
inputs are fed. Programs are cached (:func:`cached_pte`) under the model's weights hash, the
spec and the exporting tools' versions; :func:`export_pte` copies one out beside a manifest
that tells an app how to feed it.

Nothing here imports torch or executorch until a function needs them.

>>> PteSpec((224, 224), dynamic=False).accepts(224, 224), PteSpec((64, 64), dynamic=True).accepts(7, 13)
(True, True)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExportError, InputError
from ..models import load_model
from ..models.foreign import check_native
from ..models.spec import Model, ModelConfig
from ..validation import is_int
from .cache import cached_artifact
from .graphs import GRAPHS
from .manifest import build_manifest, tool_versions, write_export
from .pte_runner import load_pte

__all__ = [
    "CACHE_KIND",
    "DEFAULT_TILE_SHAPE",
    "GRAPHS",
    "PTE_NAME",
    "PteSpec",
    "cached_pte",
    "default_max_shape",
    "delegation_report",
    "export_pte",
    "lower_to_pte",
]

PTE_NAME = "model.pte"
REPORT_NAME = "export-report.json"
CACHE_KIND = "executorch"
#: The reference study's input size (224×224 → 896×896).
DEFAULT_TILE_SHAPE = (224, 224)
#: Distributions whose versions change the program (part of the cache key and the manifest).
TOOLS = ("executorch", "torch")
#: Bump when the export recipe changes, so old cache entries are not reused.
RECIPE = "xnnpack-fp32-v4"
#: Name of the program's method an app calls.
METHOD = "forward"


def _shape(value: Any, what: str) -> tuple[int, int]:
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(is_int(v) and v >= 1 for v in value)
    )
    if not ok:
        raise InputError(f"{what} must be (height, width) with positive integers, got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class PteSpec:
    """What input a program accepts, and how its graph is written.

    ``dynamic=False``: exactly ``shape`` (height, width). ``dynamic=True``: any height and
    width from 1 to ``shape`` (the maximum the memory plan is sized for). Batch is always 1.
    ``graph`` is how the output stage is written (:data:`GRAPHS`, :mod:`dermsr.export.deploy`):
    ``"residual-first"`` (default), ``"deconv"`` (everything in XNNPACK, even with dynamic
    shapes, a little slower) or ``"as-written"``.
    """

    shape: tuple[int, int]
    dynamic: bool = False
    graph: str = "residual-first"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _shape(self.shape, "shape"))
        if self.graph not in GRAPHS:
            raise InputError(f"graph must be one of {GRAPHS}, got {self.graph!r}")
        if self.dynamic and min(self.shape) < 2:
            raise InputError(f"a dynamic program needs a maximum of at least 2×2, got {self.shape}")

    @property
    def min_shape(self) -> tuple[int, int]:
        return (1, 1) if self.dynamic else self.shape

    def accepts(self, height: int, width: int) -> bool:
        """Whether a ``height``×``width`` input may be fed (feeding any other crashes or fails)."""
        if self.dynamic:
            return 1 <= height <= self.shape[0] and 1 <= width <= self.shape[1]
        return (height, width) == self.shape

    def describe(self) -> str:
        if self.dynamic:
            return f"dynamic 1..{self.shape[0]} × 1..{self.shape[1]}"
        return f"fixed {self.shape[0]}×{self.shape[1]}"

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dynamic": self.dynamic, "graph": self.graph}

    def cache_parts(self) -> dict[str, Any]:
        """Everything besides the weights that determines the program's bytes."""
        return {"recipe": RECIPE, **self.to_dict(), "tools": tool_versions(TOOLS)}


def default_graph(model: Model, graph: str | None = None) -> str:
    """``graph`` checked for ``model``: the output-stage rewrites exist for SRVGGNetCompact only
    (default ``residual-first``); any other architecture is exported as written."""
    if isinstance(model.config, ModelConfig):
        return GRAPHS[0] if graph is None else graph
    if graph not in (None, "as-written"):
        raise InputError(f"graph={graph!r} rewrites SRVGGNetCompact's output stage; {model.name!r} is "
                         f"a {model.architecture}, exported as written (graph='as-written')")
    return "as-written"


def default_max_shape(model: Model) -> tuple[int, int]:
    """Largest window the :class:`~dermsr.Enhancer` sends with ``tile="auto"``: the auto tile
    plus the model's tile context on both sides (548×548 for the 16-conv model)."""
    side = model.auto_tile + 2 * model.tile_context
    return side, side


def delegation_report(graph_module: Any) -> dict[str, Any]:
    """Which operators of a lowered program run inside the XNNPACK delegate and which do not.

    Uses ExecuTorch's own ``get_delegation_info`` (``executorch.devtools.backend_debug``).
    Node names are edge-dialect operators (``aten_convolution_default`` ...); ``getitem``
    unpacks a delegate's outputs and ``sym_size``/``mul`` are shape arithmetic of dynamic
    programs, not kernels.
    """
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    ops = {
        op: {"xnnpack": int(b.delegated), "portable": int(b.non_delegated)}
        for op, b in sorted(info.delegation_by_operator.items())
    }
    return {
        "delegate": "XnnpackBackend",
        "delegated_subgraphs": int(info.num_delegated_subgraphs),
        "delegated_nodes": int(info.num_delegated_nodes),
        "non_delegated_nodes": int(info.num_non_delegated_nodes),
        "by_operator": ops,
    }


def lower_to_pte(model: str | Path | Model | None, spec: PteSpec) -> tuple[bytes, dict[str, Any]]:
    """Export ``model`` for ``spec`` and lower it to XNNPACK: the ``.pte`` bytes and a report.

    The report holds the delegation breakdown (:func:`delegation_report`) and the seconds each
    step took. Raises :class:`~dermsr.errors.ExportError` if any step fails.
    """
    model = load_model(model)
    check_native(model, "ExecuTorch export")
    try:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise ExportError(
            f"exporting to ExecuTorch needs the executorch package: pip install 'dermsr[executorch]' ({exc})"
        ) from exc

    net = model.to_torch()
    if spec.graph != "as-written":
        from .deploy import DeployableSRVGG

        net = DeployableSRVGG(net, spec.graph).eval()
    c = model.config.num_in_ch
    if spec.dynamic:
        # example inside the range but not 1 (torch.export specialises sizes 0 and 1)
        example = torch.zeros(1, c, min(spec.shape[0], 32), min(spec.shape[1], 32))
        h = torch.export.Dim("height", min=1, max=spec.shape[0])
        w = torch.export.Dim("width", min=1, max=spec.shape[1])
        dynamic_shapes: Any = ({2: h, 3: w},)
    else:
        example = torch.zeros(1, c, *spec.shape)
        dynamic_shapes = None
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            exported = torch.export.export(net, (example,), dynamic_shapes=dynamic_shapes, strict=False)
        t1 = time.perf_counter()
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        t2 = time.perf_counter()
        delegation = delegation_report(edge.exported_program().graph_module)
        program = edge.to_executorch()
        data = bytes(program.buffer)
        t3 = time.perf_counter()
        # bytes the runtime allocates for activations when it loads the method (ExecuTorch
        # schema: buffer 0 is reserved, the rest are the memory-planned arenas)
        planned = int(sum(program.executorch_program.execution_plan[0].non_const_buffer_sizes[1:]))
    except Exception as exc:
        raise ExportError(
            f"exporting {model.name} to ExecuTorch ({spec.describe()}, graph {spec.graph!r}) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    seconds = {"torch_export": t1 - t0, "lower": t2 - t1, "to_executorch": t3 - t2, "total": t3 - t0}
    report = {
        "spec": spec.to_dict(),
        "delegation": delegation,
        "memory_planned_bytes": planned,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    return data, report


def cached_pte(
    model: str | Path | Model | None,
    spec: PteSpec,
    *,
    validate: Callable[[Path], None] | None = None,
) -> Path:
    """Folder of the cache entry holding ``model.pte`` (and ``export-report.json``) for ``spec``.

    Built with :func:`lower_to_pte` on first use, then reused by every process; ``validate``
    (e.g. loading the program) runs on each entry before it is handed out, and an entry that
    fails it is rebuilt.
    """
    model = load_model(model)

    def build(folder: Path) -> None:
        data, report = lower_to_pte(model, spec)
        (folder / PTE_NAME).write_bytes(data)
        (folder / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True))

    return cached_artifact(CACHE_KIND, model.sha256, spec.cache_parts(), build, validate)


def export_pte(
    model: str | Path | Model | None,
    out_dir: str | Path,
    *,
    tile_shape: tuple[int, int] | None = DEFAULT_TILE_SHAPE,
    dynamic: bool = True,
    graph: str | None = None,
) -> Path:
    """Write ``model.pte`` and ``dermsr-manifest.json`` into ``out_dir``; return the manifest path.

    ``dynamic=True`` (default): the program takes any height × width from 1×1 up to
    ``tile_shape`` (224×224 by default, the reference study's size; ``None``: the Enhancer's
    largest window, see :func:`default_max_shape`), so an app can run the clipped tiles at an
    image's border exactly; memory is planned for the maximum. ``dynamic=False``: exactly
    ``tile_shape`` and nothing else. ``graph`` selects the exact rewrite of SRVGGNetCompact's
    output stage (:class:`PteSpec`; default ``residual-first``, other architectures as written). Measurements behind these defaults: ``docs/backends/executorch.md``.
    The program is loaded once with the ExecuTorch runtime before it is written, so a
    program that cannot load is never shipped.
    """
    model = load_model(model)
    check_native(model, "ExecuTorch export")
    if not isinstance(dynamic, bool):
        raise InputError(f"dynamic must be True or False, got {dynamic!r}")
    if tile_shape is None:
        if not dynamic:
            raise InputError("a fixed-shape program needs tile_shape=(height, width); got None")
        tile_shape = default_max_shape(model)
    spec = PteSpec(_shape(tile_shape, "tile_shape"), dynamic, default_graph(model, graph))

    folder = cached_pte(model, spec, validate=lambda f: load_pte(f / PTE_NAME, spec=spec))
    data = (folder / PTE_NAME).read_bytes()
    report = json.loads((folder / REPORT_NAME).read_text())
    manifest = build_manifest(
        model,
        fmt="executorch",
        files={"program": PTE_NAME},
        input_name="x",
        output_name="output",
        tile_shape=None if spec.dynamic else spec.shape,
        tools=TOOLS,
        extra={
            "executorch": {
                "method": METHOD,
                "inputs": "one tensor at index 0 (batch 1); outputs: one tensor at index 0",
                "dynamic": spec.dynamic,
                "graph": spec.graph,
                "min_shape": list(spec.min_shape),
                "max_shape": list(spec.shape),
                "memory_planned_for": [1, model.config.num_in_ch, *spec.shape],
                "memory_planned_bytes": report["memory_planned_bytes"],
                "delegation": report["delegation"],
                "recipe": RECIPE,
                "sha256": _sha256(data),
            }
        },
    )
    return write_export(out_dir, {PTE_NAME: data}, manifest)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
