"""The Enhancer: one model on one runtime, with shared tiling, conversions and output checks.

(Over 400 lines for now: the output checks, the auto resolution and tile progress grew here
during one release; the checks and the resolution are the next to move to modules of their
own, beside ``registry`` and ``tiling``.)
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendError, BackendUnavailableError, InputError
from ..models import load_model
from ..models.spec import AUTO_TILE, Model
from ..validation import check_int, check_precision, is_int
from . import convert
from .registry import BackendOptions, Session, check_session, get_backend
from .tiling import Tile, TilePlan, pad_to_size, plan_tiles, run_tiled

__all__ = ["AUTO_ORDER", "AUTO_TILE", "Enhancer", "check_output", "resolve_backend"]


#: Values outside this range are not a model's overshoot but a runtime returning garbage.
#: Real inputs can overshoot [0, 1] a lot: per-channel 0/1 noise drives the released ×4 model
#: to about [-1.25, 2.3] (a hypothesis counterexample, now a regression test in
#: tests/test_enhancer.py), and inputs optimised by gradient ascent (still in [0, 1]) reach
#: [-3.8, 5.0]. The bound leaves headroom beyond that while still catching garbage such as
#: 5.6e19, inf or NaN.
SANE_RANGE = (-16.0, 17.0)

#: Order in which ``backend="auto"`` tries runtimes on the CPU: fastest first, by the median
#: time of a 512×512 inference (the tile size photos run at) measured with ``dermsr bench`` on
#: a 2-core x86-64 CPU: NCNN 1335 ms, ExecuTorch 1583, ONNX Runtime 2207, PyTorch 2501
#: (docs/performance.md). NCNN comes with the base install, so ``"auto"`` always finds one.
#: On a GPU device ``"auto"`` means PyTorch, the one built-in backend that runs there.
AUTO_ORDER = ("ncnn", "executorch", "onnxruntime", "torch")
#: Order in which ``backend="auto"`` tries runtimes for a reduced ``precision`` (``auto`` with
#: the default fp32 keeps :data:`AUTO_ORDER`): the first available one that runs it. 224→896,
#: 2 threads, round-robin (docs/performance.md): OpenVINO int8 101–110 ms, OpenVINO bf16
#: 166–180, PyTorch bf16 168–174, ONNX Runtime int8 215–249 (NCNN fp32: 190–223).
REDUCED_AUTO_ORDER = ("openvino", "onnxruntime", "torch")


def resolve_backend(backend: str = "auto", device: str = "cpu", precision: str = "fp32",
                    model: Model | None = None) -> str:
    """The runtime an Enhancer with this ``backend``, ``device`` and ``precision`` would use,
    without loading it.

    A name other than ``"auto"`` is checked to be registered and returned. ``"auto"`` is, on
    the CPU, the first installed runtime of :data:`AUTO_ORDER` (fastest fp32 first, as
    measured), or for a reduced ``precision`` the first of :data:`REDUCED_AUTO_ORDER` that runs
    it; ``"torch"`` on any other device, and for a ``model`` that is not native (an
    architecture loaded through spandrel, which only the torch side runs for certain).

    >>> resolve_backend("ncnn")
    'ncnn'
    """
    if not isinstance(backend, str):
        raise InputError(f"backend must be a name, got {type(backend).__name__}")
    if backend != "auto":
        get_backend(backend)  # unknown names raise with the known ones listed
        return backend
    if device != "cpu" or (model is not None and not model.config.native):
        return "torch"
    reasons = []
    for name in AUTO_ORDER if precision == "fp32" else REDUCED_AUTO_ORDER:
        try:
            b = get_backend(name)
            availability = b.availability()
        except Exception as exc:  # a plugin that is not registered or cannot even say
            reasons.append(f"{name}: {exc}")
            continue
        if availability.available and precision in b.precisions:
            return name
        reasons.append(str(availability) if not availability.available else f"{name}: no {precision}")
    raise BackendUnavailableError(
        f"backend 'auto' found no installed runtime for {precision} (" + "; ".join(reasons)
        + "); pip install 'dermsr[ncnn]'" + ("" if precision == "fp32" else " or 'dermsr[openvino]'")
    )


#: ``progress=`` of :meth:`Enhancer.enhance`/:meth:`Enhancer.run`: None/False (nothing), True
#: (a tqdm bar with an ETA on stderr for images cut into several tiles) or a callable
#: ``progress(done, total)`` called after each tile.
Progress = bool | Callable[[int, int], Any] | None


@contextlib.contextmanager
def _tile_progress(progress: Progress, total: int) -> Iterator[Callable[[Tile], None] | None]:
    """The ``on_tile`` hook of :func:`run_tiled` that reports ``progress`` (closed afterwards)."""
    if progress is None or progress is False:
        yield None
    elif progress is True:
        if total < 2:
            yield None
            return
        from tqdm import tqdm

        with tqdm(total=total, unit="tile", desc="tiles", leave=False, file=sys.stderr,
                  dynamic_ncols=True, smoothing=0.1) as bar:
            yield lambda _tile: bar.update(1)
    elif callable(progress):
        done = 0

        def tick(_tile: Tile) -> None:
            nonlocal done
            done += 1
            progress(done, total)

        yield tick
    else:
        raise InputError(f"progress must be None, True/False or a callable(done, total), got {progress!r}")


#: A tile whose output is one constant value (a runtime that filled its output buffer, or never
#: wrote it: 10.0 or 0.0 everywhere is in range) is refused when its input differs by at least
#: one 8-bit level somewhere, or when the input is flat and the constant is more than
#: ``FLAT_TOLERANCE`` away from it. A real model's output always carries the input's structure
#: (the network adds the upsampled input to its output), so this never refuses a real result.
FLAT_TOLERANCE = 0.5


def check_output(y: np.ndarray, backend: str, x: np.ndarray | None = None) -> np.ndarray:
    """Refuse non-finite or far out-of-range output (naming the backend), then clamp to [0, 1].

    ``y`` is clamped in place and returned. Two reductions and no temporary array: a NaN
    propagates through ``min``/``max`` and an infinity is out of range, so finite in-range
    extremes prove every value finite (the mask ``np.isfinite`` would allocate is only built to
    count the bad values once an error is certain).

    With ``x``, the input ``y`` was computed from, a constant ``y`` is checked against it
    (:data:`FLAT_TOLERANCE`); that costs nothing unless ``y`` is constant.
    """
    lo, hi = float(y.min()), float(y.max())
    if not (SANE_RANGE[0] <= lo and hi <= SANE_RANGE[1]):  # NaN fails both comparisons
        bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
        if bad:
            raise BackendError(f"backend {backend!r} returned {bad} non-finite value(s): corrupted output")
        raise BackendError(
            f"backend {backend!r} returned values in [{lo:.4g}, {hi:.4g}], far outside the model's "
            f"range {SANE_RANGE}: corrupted output"
        )
    if lo == hi and x is not None and np.size(y) > 1:
        xlo, xhi = float(x.min()), float(x.max())
        if xhi - xlo >= 1 / 255 or not (xlo - FLAT_TOLERANCE <= lo <= xhi + FLAT_TOLERANCE):
            raise BackendError(
                f"backend {backend!r} returned the constant {lo:.4g} for every pixel of a "
                f"{tuple(x.shape)} input with values in [{xlo:.4g}, {xhi:.4g}]: corrupted output"
            )
    return np.clip(y, 0.0, 1.0, out=y)


class Enhancer:
    """Super-resolve images with one model on one runtime.

    Parameters
    ----------
    model:
        Built-in model name, weights path, or :class:`~dermsr.models.Model`
        (default :data:`dermsr.models.DEFAULT_MODEL`). The scale always comes from the model.
    backend:
        ``"auto"`` (default: the fastest fp32 runtime installed, see :func:`resolve_backend`),
        ``"torch"``, ``"onnxruntime"``, ``"ncnn"``, ``"executorch"`` or a plugin's name.
    device:
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (backends that support it).
    tile:
        ``"auto"`` (default: whole image up to 512 px a side, else tiles of ≤ 512 px),
        ``None`` (never tile) or a tile side in low-resolution pixels.
    tile_pad:
        Context around each tile; default the model's receptive field, which makes tiled
        output equal untiled output to float precision. Smaller values are allowed but warned.
    threads:
        Threads the runtime may use (default: the runtime's own default, all cores).
    half:
        fp16 inference, CUDA only; any non-finite fp16 output is recomputed in fp32 with a warning.
    precision:
        ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` or ``"int8"``; each backend runs the ones
        in its ``precisions`` (torch: fp32, bf16, fp16 on CUDA; onnxruntime: fp32, int8;
        openvino: fp32, bf16, int8; ncnn, executorch: fp32) and others raise an
        :class:`~dermsr.errors.InputError` naming them. int8 artifacts are calibrated and
        checked against fp32 on held-out images when built (docs/performance.md).
    calibration:
        int8 only: a folder of images like the ones you will enhance, to calibrate on
        (default: the bundled dermoscopic samples).

    The runtime session is created on first use in each process, so an Enhancer can be pickled
    or sent to worker processes; one Enhancer may be used from several threads at once.
    """

    def __init__(
        self,
        model: str | Path | Model | None = None,
        backend: str = "auto",
        *,
        device: str = "cpu",
        tile: int | str | None = "auto",
        tile_pad: int | None = None,
        threads: int | None = None,
        half: bool = False,
        precision: str = "fp32",
        calibration: str | Path | None = None,
        **backend_options: Any,
    ) -> None:
        self.model = load_model(model)
        if tile is not None and tile != "auto" and not (is_int(tile) and tile >= 1):
            raise InputError(f"tile must be 'auto', None or a positive integer, got {tile!r}")
        check_int(tile_pad, "tile_pad", lo=0, none_ok=True)
        threads = check_int(threads, "threads", lo=1, none_ok=True)
        self.tile = tile
        self.tile_pad = self.model.tile_context if tile_pad is None else int(tile_pad)
        if tile is not None and self.tile_pad < self.model.tile_context:
            rf = self.model.receptive_field
            what = ("its receptive field" if rf == self.model.tile_context
                    else f"measured or conservative; receptive field {rf if rf is not None else 'unknown'}")
            warnings.warn(
                f"tile_pad={self.tile_pad} is less than the tile context of {self.model.name!r} "
                f"({self.model.tile_context} pixels, {what}): tiled output will show seams; leave "
                "tile_pad unset for tiles that match the untiled output",
                UserWarning,
                stacklevel=2,
            )
        precision = check_precision(precision)
        if calibration is not None:
            if precision != "int8":
                raise InputError(f"calibration is only used with precision='int8', got precision={precision!r}")
            if not isinstance(calibration, (str, Path)):
                raise InputError(f"calibration must be a folder path, got {type(calibration).__name__}")
            calibration = str(calibration)
        self.options = BackendOptions(device=device, threads=threads, half=half, extra=dict(backend_options),
                                      precision=precision, calibration=calibration)
        self.backend_name = resolve_backend(backend, device, precision, self.model)
        self._backend = get_backend(self.backend_name)
        self._check_precision()
        self._backend.require()
        self._backend.check_model(self.model)
        self._session: Session | None = None
        self._session_pid: int | None = None
        self._lock = threading.Lock()  # guards session creation
        self._run_lock = threading.Lock()  # serialises runs of sessions that are not thread-safe

    # -- construction -------------------------------------------------------------------------
    def _check_precision(self) -> None:
        precision = self.options.precision
        if precision in self._backend.precisions:
            return
        from .registry import backend_names

        runs = []
        for name in backend_names():
            try:
                if precision in get_backend(name).precisions:
                    runs.append(name)
            except Exception:  # pragma: no cover - a broken plugin
                continue
        raise InputError(
            f"backend {self.backend_name!r} does not run precision {precision!r}; it runs: "
            f"{', '.join(self._backend.precisions)}. {precision} runs on: {', '.join(runs) or 'no installed backend'}"
        )

    @property
    def scale(self) -> int:
        return self.model.scale

    def __repr__(self) -> str:
        return (
            f"Enhancer(model={self.model.name!r}, backend={self.backend_name!r}, "
            f"device={self.options.device!r}, tile={self.tile!r}, tile_pad={self.tile_pad}, "
            f"threads={self.options.threads}, precision={self.options.precision!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_session"] = None
        state["_session_pid"] = None
        del state["_lock"], state["_run_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def session(self) -> Session:
        """The runtime session of this process (created on first use, never shared across fork)."""
        pid = os.getpid()
        if self._session is None or self._session_pid != pid:
            with self._lock:
                if self._session is None or self._session_pid != pid:
                    self._session = check_session(self._backend.load(self.model, self.options),
                                                  self.backend_name)
                    self._session_pid = pid
        return self._session

    # -- the core -----------------------------------------------------------------------------
    def tile_plan(self, height: int, width: int) -> TilePlan:
        """The tiles an ``height``×``width`` input would be cut into."""
        tile = self.tile
        if tile == "auto":
            tile = self.model.auto_tile if max(height, width) > self.model.auto_tile else None
        return plan_tiles(height, width, scale=self.scale, tile=tile, pad=self.tile_pad,
                          align=self.model.config.tile_align)

    def _run_session(self, x: np.ndarray) -> np.ndarray:
        session = self.session
        caps = session.capabilities
        if x.shape[0] > 1 and not caps.batch:
            # a runtime that takes one image per call gets the batch one image at a time
            return np.concatenate([self._run_session(x[i : i + 1]) for i in range(x.shape[0])])
        if caps.thread_safe:
            y = session.run(x)
        else:
            with self._run_lock:
                y = session.run(x)
        return np.asarray(y, dtype=np.float32)

    def _checked_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != self.model.config.num_in_ch:
            got = getattr(x, "shape", type(x).__name__)
            raise InputError(f"expected a float32 (N, {self.model.config.num_in_ch}, H, W) array, got {got}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x: np.ndarray, *, progress: Progress = None) -> np.ndarray:
        """float32 NCHW RGB [0, 1] → float32 NCHW RGB [0, 1] ×scale, tiled, checked and clamped.

        ``progress``: as for :meth:`enhance`.
        """
        x = self._checked_input(x)
        plan = self.tile_plan(x.shape[2], x.shape[3])
        with _tile_progress(progress, len(plan)) as on_tile:
            return run_tiled(self._run_checked, x, plan, on_tile=on_tile)

    def _run_into_uint(self, image: np.ndarray, progress: Progress = None) -> np.ndarray:
        """:meth:`enhance` of a uint8/uint16 RGB (HxWx3) or grey (HxW, HxWx1) image with no
        full-size float array: each tile's window is converted to float on its own and each
        tile's output straight into the integer result. Equal to ``restore(run(prepare(image)))``
        without the float32 copy of the input (4× a uint8 image) or the float32 canvas of the
        output (604 MB for a 2048×1536 photo, docs/performance.md)."""
        h, w = image.shape[:2]
        grey = image.ndim == 2 or image.shape[2] == 1
        x = image.reshape(h, w, -1).transpose(2, 0, 1)[None]  # an NCHW view, no copy
        if grey:  # grey runs as three equal channels: a broadcast view, still no copy
            x = np.broadcast_to(x, (1, 3, h, w))
        top = np.float32(convert.uint_max(image.dtype))
        out = np.empty((h * self.scale, w * self.scale, *image.shape[2:]), dtype=image.dtype)
        canvas = out.reshape(h * self.scale, w * self.scale, -1)

        def store(core: np.ndarray, box: tuple[int, int, int, int]) -> None:
            if grey:  # the output's channels are averaged back to one, as convert.restore does
                core = core.mean(axis=1, keepdims=True)
            canvas[box[0] : box[1], box[2] : box[3]] = convert.to_uint(
                core[0].transpose(1, 2, 0), image.dtype, scratch=True
            )

        def run_window(window: np.ndarray) -> np.ndarray:  # window: integer values as float32
            return self._run_checked(window / top)

        plan = self.tile_plan(h, w)
        with _tile_progress(progress, len(plan)) as on_tile:
            run_tiled(run_window, x, plan, sink=store, on_tile=on_tile)
        return out

    def _run_checked(self, window: np.ndarray) -> np.ndarray:
        """One tile through the runtime, checked and clamped as it comes: a corrupted tile fails
        before the rest run, and no extra pass over the whole output canvas is needed. A window
        of a size the network does not accept is padded to one it does and its output cropped
        back (:func:`~dermsr.enhance.tiling.pad_to_size`)."""
        padded = pad_to_size(window, self.model.config.size_requirements)
        y = self._run_session(padded)
        if padded is not window:
            h, w = window.shape[2] * self.scale, window.shape[3] * self.scale
            y = np.ascontiguousarray(y[:, :, :h, :w])
        if np.may_share_memory(y, window):  # never clamp a caller's buffer in place
            y = y.copy()
        return check_output(y, self.backend_name, window)

    def enhance(self, image: Any, *, progress: Progress = None) -> Any:
        """Super-resolve one image and give it back in the same kind, ×scale.

        Accepts HxWx3 RGB / HxWx4 RGBA / HxW grey NumPy arrays (uint8, uint16 or float in
        [0, 1]), torch tensors (CHW or NCHW), and file paths (returned as arrays).

        ``progress=True`` shows a tile bar with an ETA on stderr while an image cut into several
        tiles runs (a large photo); a callable ``progress(done, total)`` is called after each
        tile instead.

        >>> calls = []
        >>> _ = Enhancer(tile=8).enhance(np.zeros((10, 20, 3), np.uint8), progress=lambda *a: calls.append(a))
        >>> calls
        [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
        """
        if isinstance(image, (str, Path)):
            from ..io import read_image

            image = read_image(image)
        cfg = self.model.config
        if (isinstance(image, np.ndarray) and convert.is_uint(image.dtype) and image.size
                and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3)))
                and cfg.num_in_ch == cfg.num_out_ch == 3):
            return self._run_into_uint(image, progress)  # an 8/16-bit photo: no full-size float array
        prep = convert.prepare(image)
        y = self.run(prep.x, progress=progress)
        return convert.restore(y, prep)

    __call__ = enhance

    # -- batches ------------------------------------------------------------------------------
    @property
    def supports_batch(self) -> bool:
        """Whether this process's runtime session runs N > 1 images in one call.

        Read from the session's :class:`~dermsr.backends.Capabilities` (``batch``); sessions
        without it get one image per call.
        """
        return self.session.capabilities.batch

    def enhance_batch(self, images: Any, *, batch_size: int = 8) -> Any:
        """Super-resolve many images; results equal :meth:`enhance` called on each one.

        ``images`` is either a sequence of anything :meth:`enhance` accepts (any mix of sizes,
        dtypes, channel counts, tensors and paths; a list of the same kinds comes back, in order)
        or a whole batch: an ``(N, C, H, W)`` torch tensor or NumPy array (C = 1, 3 or 4), given
        back as a batch of the same kind and dtype.

        Images of the same size go through :meth:`run` together, ``batch_size`` at a time, when
        the runtime session supports batches (``supports_batch``); other runtimes get one image
        per call. Batched runs may change the order of float summation inside the runtime: on
        PyTorch/CPU results differ from single-image calls by at most ~4e-6 (max abs, [0, 1]),
        i.e. at most one grey level in uint8 output, in rare pixels (docs/pipelines.md).

        >>> import numpy as np
        >>> e = Enhancer(threads=1)
        >>> out = e.enhance_batch([np.zeros((8, 8, 3), np.uint8), np.zeros((4, 6), np.uint16)])
        >>> [(o.shape, o.dtype.name) for o in out]
        [((32, 32, 3), 'uint8'), ((16, 24), 'uint16')]
        >>> e.enhance_batch(np.zeros((2, 3, 5, 5), np.float32)).shape
        (2, 3, 20, 20)
        """
        batch_size = check_int(batch_size, "batch_size", lo=1)
        if convert._is_tensor(images):
            return self._enhance_tensor_batch(images, int(batch_size))
        if isinstance(images, np.ndarray):
            return self._enhance_array_batch(images, int(batch_size))
        if isinstance(images, (str, bytes, Path)) or not isinstance(images, Iterable):
            raise InputError(
                "enhance_batch expects a sequence of images or an (N, C, H, W) batch, got "
                f"{type(images).__name__}; use enhance() for a single image"
            )
        return self._enhance_list(list(images), int(batch_size))

    def _run_batched(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        """Run an (N, 3, H, W) stack through :meth:`run`, ``batch_size`` images per call."""
        step = batch_size if self.supports_batch else 1
        out: np.ndarray | None = None
        for i in range(0, x.shape[0], step):
            y = self.run(x[i : i + step])
            if out is None:
                out = np.empty((x.shape[0], *y.shape[1:]), dtype=np.float32)
            out[i : i + step] = y
        if out is None:  # pragma: no cover - callers never pass an empty stack
            raise InputError("empty batch")
        return out

    def _enhance_list(self, images: list[Any], batch_size: int) -> list[Any]:
        from ..io import read_image

        preps: list[convert.Prepared] = []
        for i, image in enumerate(images):
            if isinstance(image, (str, Path)):
                image = read_image(image)
            try:
                prep = convert.prepare(image)
            except InputError as exc:
                raise InputError(f"images[{i}]: {exc}") from exc
            if prep.x.shape[0] != 1:
                raise InputError(
                    f"images[{i}]: expected one image, got a batch of {prep.x.shape[0]} "
                    f"(shape {tuple(image.shape)}); pass the batch itself, not inside a list"
                )
            preps.append(prep)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, prep in enumerate(preps):
            groups.setdefault(prep.x.shape[2:], []).append(i)
        results: list[Any] = [None] * len(preps)
        for members in groups.values():
            stack = np.concatenate([preps[i].x for i in members])
            y = self._run_batched(stack, batch_size)
            for k, i in enumerate(members):
                results[i] = convert.restore(y[k : k + 1], preps[i])
        return results

    def _enhance_tensor_batch(self, batch: Any, batch_size: int) -> Any:
        if batch.ndim != 4:
            raise InputError(
                f"expected an (N, C, H, W) tensor batch, got shape {tuple(batch.shape)}; "
                "use enhance() for a single CHW image"
            )
        prep = convert.prepare(batch)
        return convert.restore(self._run_batched(prep.x, batch_size), prep)

    def _enhance_array_batch(self, batch: np.ndarray, batch_size: int) -> np.ndarray:
        if batch.ndim != 4 or batch.shape[1] not in (1, 3, 4):
            hint = ""
            if batch.ndim == 4 and batch.shape[3] in (1, 3, 4):
                hint = " (an NHWC batch? pass list(batch) or batch.transpose(0, 3, 1, 2))"
            raise InputError(
                f"expected an (N, C, H, W) array batch with C in (1, 3, 4), got shape {batch.shape}{hint}"
            )
        if batch.shape[0] == 0:
            raise InputError(f"batch is empty (shape {batch.shape})")
        out = self._enhance_list([frame.transpose(1, 2, 0) for frame in batch], batch_size)
        return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2))
