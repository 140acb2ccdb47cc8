"""ExecuTorch backend: the model as an XNNPACK-delegated ``.pte`` program run by ExecuTorch.

This runs the same kind of program file a phone app ships (see ``docs/backends/executorch.md``)
through ExecuTorch's documented Python runtime, ``executorch.runtime.Runtime``
(``load_program`` → ``load_method("forward")`` → ``execute``).

How every input size is handled: by default the session exports *one* program whose height
and width are dynamic from 1 up to ``max_side`` (548 for the 16-conv model: the Enhancer's
auto tile plus the receptive field on both sides). Any window up to that size runs as is, so
clipped border tiles and tiny images get exactly the model's own zero padding; a larger window
is cut into tiles with the full receptive field as context (exact, see
:mod:`dermsr.enhance.tiling`). ``dynamic=False`` instead exports one fixed-shape program per
distinct window shape (correct too, but each new shape costs an export). The program's output
stage is rewritten exactly before export (``graph``, see :mod:`dermsr.export.deploy`).

Buffer ownership — the failure the reference study blamed for corrupted ExecuTorch outputs:

* the program bytes, the ``Program`` and its ``Method`` are kept together for the session's
  life: dropping the ``Program`` while its ``Method`` is still used crashes (measured here);
* the input is a C-contiguous float32 NCHW tensor that stays referenced until the output has
  been copied (a non-contiguous, e.g. channels-last, tensor gives wrong output silently);
* the output is copied into a fresh NumPy array before the lock is released, so the next
  ``execute`` cannot overwrite it;
* every ``execute`` in the process is serialised by one lock: the methods of a program share
  planned memory, and ExecuTorch's thread pool is one per process.

Threads: ExecuTorch's XNNPACK delegate uses one process-wide pool (default: all cores). The
only Python control is the experimental ``portable_lib._unsafe_reset_threadpool``; it
replaces the pool, and an XNNPACK method created before keeps a pointer to the old one, so
after every reset the affected sessions reload their program before running again.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...export.pte import GRAPHS, PTE_NAME, PteSpec, cached_pte, default_graph, default_max_shape
from ...export.pte_runner import NAME, PteRunner, _executorch, load_pte, thread_count
from ...models.spec import Model
from ...validation import check_int
from ..registry import Backend, BackendOptions, Capabilities
from ..tiling import plan_tiles, run_tiled
from ._common import check_precision

__all__ = ["ExecuTorchBackend", "ExecuTorchSession", "PteRunner", "load_pte", "thread_count"]

#: backend-specific options accepted through ``Enhancer(..., **options)``
OPTIONS = ("dynamic", "max_side", "graph")
#: fixed-shape programs kept loaded per session (dynamic=False)
MAX_LOADED = 8


def _cached_runner(model: Model, spec: Any, threads: int | None) -> PteRunner:
    """A runner for ``spec`` from the artifact cache (exported on first use).

    The cache's validation *is* the load: the runner made while validating is kept, so an
    entry is loaded once, and an entry the runtime cannot load is rebuilt.
    """
    made: list[PteRunner] = []

    def validate(folder: Path) -> None:
        made.append(PteRunner(folder / PTE_NAME, spec=spec, threads=threads))

    folder = cached_pte(model, spec, validate=validate)
    runner = made[-1] if made else PteRunner(folder / PTE_NAME, spec=spec, threads=threads)
    runner.path = folder / PTE_NAME  # a fresh build is validated before it is moved into place
    return runner


class ExecuTorchSession:
    """A model on ExecuTorch + XNNPACK; see the module docstring for shapes and buffers."""

    backend = NAME
    #: executes are serialised process-wide anyway, so the Enhancer serialises too; N > 1
    #: images run one after another in one call
    capabilities = Capabilities(thread_safe=False, batch=True)

    def __init__(self, model: Model, options: BackendOptions) -> None:
        if options.device != "cpu":
            raise InputError(
                f"the executorch backend runs on the CPU (XNNPACK delegate); got device={options.device!r}"
            )
        if options.half:
            raise InputError("half=True needs a CUDA device; the executorch backend runs fp32 on the CPU")
        check_precision(NAME, options, ExecuTorchBackend.precisions)
        unknown = sorted(set(options.extra) - set(OPTIONS))
        if unknown:
            raise InputError(f"unknown executorch option(s) {unknown}; known: {list(OPTIONS)}")
        dynamic = options.extra.get("dynamic", True)
        if not isinstance(dynamic, bool):
            raise InputError(f"dynamic must be True or False, got {dynamic!r}")
        rf = model.tile_context
        max_side = options.extra.get("max_side", default_max_shape(model)[0])
        check_int(max_side, f"max_side (more than twice the tile context {rf})", lo=2 * rf + 1)
        graph = options.extra.get("graph")
        if graph is not None and graph not in GRAPHS:
            raise InputError(f"graph must be one of {GRAPHS}, got {graph!r}")
        graph = default_graph(model, graph)
        self.model = model
        self.graph = graph
        self.dynamic = dynamic
        self.max_side = int(max_side)
        self.threads = options.threads
        self._spec_cls = PteSpec
        self._fixed: OrderedDict[tuple[int, int], PteRunner] = OrderedDict()
        self._dynamic_runner = (
            _cached_runner(model, PteSpec((self.max_side, self.max_side), True, graph), self.threads)
            if dynamic
            else None
        )

    def _fixed_runner(self, h: int, w: int) -> PteRunner:
        runner = self._fixed.get((h, w))
        if runner is None:
            runner = _cached_runner(self.model, self._spec_cls((h, w), False, self.graph), self.threads)
            self._fixed[(h, w)] = runner
            while len(self._fixed) > MAX_LOADED:
                self._fixed.popitem(last=False)
        else:
            self._fixed.move_to_end((h, w))
        return runner

    def _run_image(self, x: np.ndarray) -> np.ndarray:
        h, w = int(x.shape[2]), int(x.shape[3])
        if self._dynamic_runner is None:
            return self._fixed_runner(h, w).run(x)
        if h <= self.max_side and w <= self.max_side:
            return self._dynamic_runner.run(x)
        # larger than the program's memory plan: tiles with the model's tile context (the full
        # receptive field for SRVGGNetCompact: exact)
        rf = self.model.tile_context
        plan = plan_tiles(h, w, scale=self.model.scale, tile=self.max_side - 2 * rf, pad=rf)
        return run_tiled(self._dynamic_runner.run, x, plan)

    def run(self, x: np.ndarray) -> np.ndarray:
        c = self.model.config.num_in_ch
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != c or 0 in x.shape:
            got = getattr(x, "shape", type(x).__name__)
            raise InputError(f"expected a float32 (N, {c}, H, W) array, got {got}")
        outs = [self._run_image(np.ascontiguousarray(x[i : i + 1], dtype=np.float32)) for i in range(x.shape[0])]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

    def raw_call(self):
        """The loaded program's ``forward`` (:meth:`PteRunner.execute_raw`): the dynamic-shape
        program, or the fixed-shape one for the input's shape; the output copied."""
        def call(x: np.ndarray):
            runner = self._dynamic_runner or self._fixed_runner(int(x.shape[2]), int(x.shape[3]))
            return runner.execute_raw(x)

        return call


class ExecuTorchBackend(Backend):
    name = NAME
    extra = "executorch"
    runtime_module = "executorch"
    #: programs are lowered from SRVGGNetCompact and RRDBNet (:func:`dermsr.export.pte.lower_to_pte`)
    native_only = True

    def load(self, model: Model, options: BackendOptions) -> ExecuTorchSession:
        self.require()
        self.check_model(model)
        _executorch()
        return ExecuTorchSession(model, options)
