"""Run ExecuTorch ``.pte`` programs from Python: the runtime, its thread pool and the runner.

Shared by the export (which loads every program once before writing it, so a program that
cannot load is never shipped) and by the ``executorch`` backend (:mod:`dermsr.enhance.backends.executorch`,
which documents the buffer-ownership rules this runner keeps). Nothing here imports
ExecuTorch or torch until a program is loaded or run.
"""

from __future__ import annotations

import functools
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError, BackendUnavailableError, InputError
from ..machine import quiet_stderr

__all__ = ["NAME", "PteRunner", "load_pte", "thread_count"]

#: The runtime's name in messages (the backend's registry name).
NAME = "executorch"


@functools.lru_cache(maxsize=1)
def _executorch() -> tuple[Any, Any]:
    """ExecuTorch's runtime singleton and its pybindings module (imported once, quietly).

    Importing it and first touching its thread pool make its C++ code log to stderr (cpuinfo's
    ``Failed to open midr file`` lines, a torch pytree warning); :func:`dermsr.machine.quiet_stderr`
    keeps them out of the terminal unless ``$DERMSR_VERBOSE`` is set.
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

    def execute_raw(self, x: np.ndarray) -> np.ndarray:
        """``method.execute([torch.from_numpy(x)])`` with no checks and no lock, output copied
        (ExecuTorch may reuse its buffer): the runtime's own call, for overhead measurement."""
        import torch

        out = self._method.execute([torch.from_numpy(x)])
        return np.array(out[0].numpy(), copy=True)

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
