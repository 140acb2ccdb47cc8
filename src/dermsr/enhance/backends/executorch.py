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

import functools
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackendError, BackendUnavailableError, InputError
from ...models.spec import Model
from ..registry import Backend, BackendOptions
from ..tiling import plan_tiles, run_tiled
from ._common import quiet_stderr

__all__ = ["ExecuTorchBackend", "ExecuTorchSession", "PteRunner", "load_pte", "thread_count"]

NAME = "executorch"
#: backend-specific options accepted through ``Enhancer(..., **options)``
OPTIONS = ("dynamic", "max_side", "graph")
#: fixed-shape programs kept loaded per session (dynamic=False)
MAX_LOADED = 8


@functools.lru_cache(maxsize=1)
def _executorch() -> tuple[Any, Any]:
    """ExecuTorch's runtime singleton and its pybindings module (imported once, quietly).

    Importing it and first touching its thread pool make its C++ code log to stderr (cpuinfo's
    ``Failed to open midr file`` lines, a torch pytree warning); :func:`quiet_stderr` keeps
    them out of the terminal unless ``$DERMSR_VERBOSE`` is set.
    """
    try:
        with warnings.catch_warnings(), quiet_stderr():
            warnings.filterwarnings("ignore", message="This API is experimental")
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

            runtime = Runtime.get()
            portable_lib._threadpool_get_thread_count()  # cpuinfo initialises (and logs) here
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {NAME!r}: the ExecuTorch runtime cannot be imported ({exc}); "
            "pip install 'dermsr[executorch]'"
        ) from exc
    registry = getattr(runtime, "backend_registry", None)  # not in every ExecuTorch release
    if registry is not None and not registry.is_available("XnnpackBackend"):
        raise BackendUnavailableError(
            f"backend {NAME!r}: this ExecuTorch build has no XnnpackBackend "
            f"(registered: {registry.registered_backend_names})"
        )
    return runtime, portable_lib


class _Pool:
    """ExecuTorch's process-wide thread pool and the lock every execute holds."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.generation = 0  # bumped whenever the pool is replaced
        self.default: int | None = None

    def apply(self, threads: int | None) -> None:
        """Make the pool have ``threads`` threads (None: ExecuTorch's default). Lock held."""
        _, pl = _executorch()
        current = int(pl._threadpool_get_thread_count())
        if self.default is None:
            self.default = current
        want = self.default if threads is None else int(threads)
        if want != current:
            pl._unsafe_reset_threadpool(want)
            self.generation += 1


_POOL = _Pool()


def thread_count() -> int:
    """Threads in ExecuTorch's process-wide pool right now."""
    with _POOL.lock:
        return int(_executorch()[1]._threadpool_get_thread_count())


class PteRunner:
    """One ``.pte`` program's ``forward`` method, loaded from bytes this object owns.

    ``run`` takes a float32 ``(1, C, H, W)`` array and returns a new float32 array that no
    later call can overwrite. Load and execution failures raise
    :class:`~dermsr.errors.BackendError` naming the program file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        data: bytes | None = None,
        spec: Any = None,
        threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.spec = spec
        self.threads = threads
        if data is None:
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                raise BackendError(f"backend {NAME!r}: cannot read program {self.path}: {exc}") from exc
        self._data = bytes(data)
        self._program: Any = None
        self._method: Any = None
        self._generation = -1
        with _POOL.lock:
            _POOL.apply(threads)
            self._load()

    def _load(self) -> None:
        runtime, _ = _executorch()
        self._method = self._program = None
        try:
            program = runtime.load_program(self._data)
            method = program.load_method("forward")
            if method is None:
                raise RuntimeError("the program has no 'forward' method")
            meta = method.metadata
            if meta.num_inputs() != 1 or meta.num_outputs() != 1:
                raise RuntimeError(
                    f"expected 1 input and 1 output, found {meta.num_inputs()} and {meta.num_outputs()}"
                )
            sizes = tuple(meta.input_tensor_meta(0).sizes())
        except Exception as exc:
            raise BackendError(f"backend {NAME!r}: cannot load program {self.path}: {exc}") from exc
        if len(sizes) != 4 or sizes[0] != 1:
            raise BackendError(f"backend {NAME!r}: program {self.path} takes input {sizes}, not (1, C, H, W)")
        # the Program owns the memory its Method uses: keep both (and the bytes) together
        self._program, self._method = program, method
        self.channels, self.max_shape = int(sizes[1]), (int(sizes[2]), int(sizes[3]))
        self._generation = _POOL.generation

    def run(self, x: np.ndarray) -> np.ndarray:
        import torch

        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[:2] != (1, self.channels):
            got = getattr(x, "shape", type(x).__name__)
            raise InputError(f"expected a float32 (1, {self.channels}, H, W) array, got {got}")
        h, w = int(x.shape[2]), int(x.shape[3])
        fits = self.spec.accepts(h, w) if self.spec is not None else (
            h <= self.max_shape[0] and w <= self.max_shape[1]
        )
        if not fits:
            want = self.spec.describe() if self.spec is not None else f"at most {self.max_shape}"
            raise InputError(f"program {self.path} takes {want}, got a {h}×{w} input")
        # owned, C-contiguous NCHW input, referenced until the output has been copied
        x = np.ascontiguousarray(x, dtype=np.float32)
        tensor = torch.from_numpy(x)
        with _POOL.lock:
            _POOL.apply(self.threads)
            if self._generation != _POOL.generation:
                self._load()  # the pool was replaced since this method was created
            try:
                outputs = self._method.execute([tensor])
            except Exception as exc:
                raise BackendError(f"backend {NAME!r}: executing {self.path} failed: {exc}") from exc
            if len(outputs) != 1 or not isinstance(outputs[0], torch.Tensor):
                raise BackendError(f"backend {NAME!r}: {self.path} returned {len(outputs)} outputs, expected 1 tensor")
            y = np.array(outputs[0].numpy(), dtype=np.float32, copy=True)
            del outputs
        del tensor, x
        return y


def load_pte(path: str | Path, *, spec: Any = None, threads: int | None = None) -> PteRunner:
    """Load a ``.pte`` file for running; :class:`~dermsr.errors.BackendError` names the file if it fails."""
    return PteRunner(path, spec=spec, threads=threads)


def _cached_runner(model: Model, spec: Any, threads: int | None) -> PteRunner:
    """A runner for ``spec`` from the artifact cache (exported on first use).

    The cache's validation *is* the load: the runner made while validating is kept, so an
    entry is loaded once, and an entry the runtime cannot load is rebuilt.
    """
    from ...export.pte import PTE_NAME, cached_pte

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
    #: executes are serialised process-wide anyway; let the Enhancer serialise too
    thread_safe = False

    def __init__(self, model: Model, options: BackendOptions) -> None:
        from ...export.pte import GRAPHS, PteSpec, default_max_shape

        if options.device != "cpu":
            raise InputError(
                f"the executorch backend runs on the CPU (XNNPACK delegate); got device={options.device!r}"
            )
        if options.half:
            raise InputError("half=True needs a CUDA device; the executorch backend runs fp32 on the CPU")
        unknown = sorted(set(options.extra) - set(OPTIONS))
        if unknown:
            raise InputError(f"unknown executorch option(s) {unknown}; known: {list(OPTIONS)}")
        dynamic = options.extra.get("dynamic", True)
        if not isinstance(dynamic, bool):
            raise InputError(f"dynamic must be True or False, got {dynamic!r}")
        rf = model.receptive_field
        max_side = options.extra.get("max_side", default_max_shape(model)[0])
        if isinstance(max_side, bool) or not isinstance(max_side, (int, np.integer)) or max_side <= 2 * rf:
            raise InputError(
                f"max_side must be an integer > {2 * rf} (twice the receptive field), got {max_side!r}"
            )
        graph = options.extra.get("graph", GRAPHS[0])
        if graph not in GRAPHS:
            raise InputError(f"graph must be one of {GRAPHS}, got {graph!r}")
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
        # larger than the program's memory plan: exact tiles with the full receptive field
        rf = self.model.receptive_field
        plan = plan_tiles(h, w, scale=self.model.scale, tile=self.max_side - 2 * rf, pad=rf)
        return run_tiled(self._dynamic_runner.run, x, plan)

    def run(self, x: np.ndarray) -> np.ndarray:
        c = self.model.config.num_in_ch
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != c or 0 in x.shape:
            got = getattr(x, "shape", type(x).__name__)
            raise InputError(f"expected a float32 (N, {c}, H, W) array, got {got}")
        outs = [self._run_image(np.ascontiguousarray(x[i : i + 1], dtype=np.float32)) for i in range(x.shape[0])]
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)


class ExecuTorchBackend(Backend):
    name = NAME
    extra = "executorch"
    runtime_module = "executorch"

    def load(self, model: Model, options: BackendOptions) -> ExecuTorchSession:
        self.require()
        _executorch()
        return ExecuTorchSession(model, options)
