"""NCNN backend: the model as an NCNN ``.param``/``.bin`` pair, run by Tencent's ncnn on the CPU.

The files are written from the model's NumPy weights by
:func:`dermsr.models.ncnn_write.ncnn_files` (no torch, no PNNX: this is the runtime of the
light install) and kept in the artifact cache keyed by the model's weights hash and the ncnn
version. The graph, the blob names (``in0``/``out0``) and the float32 ``.bin`` are those PNNX
writes for the same model (:mod:`dermsr.export.ncnn`, the path ``dermsr export --format ncnn``
and the reference study's conversion take), so every model, the built-in ones included, runs
the same way and matches PyTorch to ~1e-5. (Real-ESRGAN's released NCNN files of the
built-in model hold the same fp16 weights; their float32 copy is exact.)

Memory safety: ``ncnn.Mat(array)`` wraps the NumPy buffer without owning
it, and the Mat returned by ``Extractor.extract`` points into the extractor's memory. So each
call keeps its contiguous input array referenced until the output has been *copied* into a
NumPy array, and only then lets the Mats and the extractor go. A new ``Extractor`` is made
per image, which makes concurrent calls on one ``Net`` safe (ncnn's documented pattern).

Every ncnn status code is checked; a failure raises :class:`~dermsr.errors.BackendError`
naming the backend and the file, never a bare integer. ``threads`` sets
``net.opt.num_threads`` (default: every core this process may use). fp16/bf16 storage and
arithmetic are switched off (fp32 results), unless ``half=True`` asks for ncnn's fp16 path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import BackendError, InputError
from ...models.spec import Model
from ..registry import Availability, Backend, BackendOptions, Capabilities
from ._common import (
    check_batch,
    check_precision,
    default_threads,
    modules_availability,
    reject_extra,
)

__all__ = ["NcnnBackend", "NcnnSession", "check_options", "ncnn_artifact"]

NAME = "ncnn"
PARAM_NAME = "model.ncnn.param"
BIN_NAME = "model.ncnn.bin"


def check_options(options: BackendOptions) -> None:
    """Refuse options this backend cannot honour (it runs fp32 on the CPU only: bf16 storage
    gave 50 dB against fp32 and was slower, and int8 needs NCNN's C++ calibration tools, which
    its Python package does not ship; docs/backends/ncnn.md)."""
    reject_extra(NAME, options.extra)
    check_precision(NAME, options, NcnnBackend.precisions)
    if options.device != "cpu":
        raise InputError(
            f"the ncnn backend runs on the CPU; expected device='cpu', got {options.device!r}"
        )


def ncnn_artifact(model: Model) -> tuple[Path, Path]:
    """Paths of the cached ``.param``/``.bin`` for ``model`` (written from its weights on first use)."""
    from ...export.cache import cached_artifact
    from ...export.manifest import tool_versions
    from ...models.ncnn_write import ncnn_files

    def build(folder: Path) -> None:
        param, weights = ncnn_files(model)
        (folder / PARAM_NAME).write_text(param, encoding="ascii")
        (folder / BIN_NAME).write_bytes(weights)

    parts = {"weights_dtype": "float32", "blobs": "in0/out0", "writer": "numpy-v1", "tools": tool_versions(("ncnn",))}
    folder = cached_artifact("ncnn", model.sha256, parts, build)
    return folder / PARAM_NAME, folder / BIN_NAME


class NcnnSession:
    """One loaded ``ncnn.Net``; ``run`` maps float32 (N, C, H, W) to float32 (N, C, sH, sW)."""

    backend = NAME
    #: N > 1 images run one after another in one call
    capabilities = Capabilities(thread_safe=True, batch=True)

    def __init__(
        self,
        param: str | Path,
        binf: str | Path,
        options: BackendOptions,
        *,
        channels: int = 3,
        scale: int | None = None,
        input_name: str = "in0",
        output_name: str = "out0",
    ) -> None:
        import ncnn

        check_options(options)
        self.param, self.bin = Path(param), Path(binf)
        self.channels, self.scale = channels, scale
        self.input_name, self.output_name = input_name, output_name
        net = ncnn.Net()
        opt = net.opt
        opt.num_threads = int(options.threads or default_threads())
        opt.use_vulkan_compute = False
        half = bool(options.half)
        opt.use_fp16_storage = opt.use_fp16_packed = opt.use_fp16_arithmetic = half
        opt.use_bf16_storage = False
        for path, loader, what in ((self.param, net.load_param, "param"), (self.bin, net.load_model, "model")):
            if not path.is_file():
                raise BackendError(f"backend {NAME!r}: file not found: {path}")
            ret = loader(str(path))
            if ret != 0:
                hint = "not a valid NCNN .param" if what == "param" else "weights truncated or not matching the .param"
                raise BackendError(
                    f"backend {NAME!r} could not load {path}: ncnn Net.load_{what} returned {ret} ({hint})"
                )
        names_in, names_out = list(net.input_names()), list(net.output_names())
        if input_name not in names_in or output_name not in names_out:
            raise BackendError(
                f"backend {NAME!r}: {self.param} has inputs {names_in} and outputs {names_out}; "
                f"expected {input_name!r} -> {output_name!r}"
            )
        self._net = net

    def _run_one(self, chw: np.ndarray) -> np.ndarray:
        import ncnn

        src = np.ascontiguousarray(chw, dtype=np.float32)  # owned here for the whole call
        ex = self._net.create_extractor()
        mat_in = ncnn.Mat(src)
        ret = ex.input(self.input_name, mat_in)
        if ret != 0:
            raise BackendError(f"backend {NAME!r} ({self.param}): Extractor.input returned {ret}")
        ret, mat_out = ex.extract(self.output_name)
        if ret != 0:
            raise BackendError(
                f"backend {NAME!r} ({self.param}): Extractor.extract({self.output_name!r}) returned "
                f"{ret} for a {src.shape} input"
            )
        y = np.array(mat_out, dtype=np.float32, copy=True)  # copy before the Mat / extractor die
        del mat_out, mat_in, ex
        del src  # only now may the input buffer go
        return y

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(NAME, x, self.channels)
        outs = []
        for i in range(x.shape[0]):
            y = self._run_one(x[i])
            h, w = x.shape[2:]
            want = None if self.scale is None else (h * self.scale, w * self.scale)
            if y.ndim != 3 or (want is not None and y.shape[1:] != want):
                raise BackendError(
                    f"backend {NAME!r} ({self.param}) returned shape {y.shape} for a {x.shape[1:]} "
                    f"input; expected (C, {want[0] if want else 'H*s'}, {want[1] if want else 'W*s'})"
                )
            outs.append(y)
        return outs[0][None] if len(outs) == 1 else np.stack(outs)  # one image: no extra copy

    def raw_call(self):
        """A fresh extractor, ``input(in0, Mat(x[0]))``, ``extract(out0)``, copied to NumPy.

        The copy is part of the raw call: the extracted Mat points into the extractor's memory
        and must be copied before the extractor goes (ncnn's Python binding keeps no reference).
        """
        import ncnn

        net, in_name, out_name = self._net, self.input_name, self.output_name

        def call(x: np.ndarray):
            src = np.ascontiguousarray(x[0])
            ex = net.create_extractor()
            mat = ncnn.Mat(src)
            ex.input(in_name, mat)
            _, out = ex.extract(out_name)
            y = np.array(out, copy=True)
            del out, mat, ex, src
            return y

        return call


class NcnnBackend(Backend):
    """Tencent ncnn (CPU): installed with dermsr itself (``pip install 'dermsr[ncnn]'`` if missing)."""

    name = NAME
    extra = "ncnn"
    runtime_module = "ncnn"
    #: import names needed (the files are written without any converter)
    modules = ("ncnn",)
    #: the files are written for SRVGGNetCompact and RRDBNet (:mod:`dermsr.models.ncnn_write`)
    native_only = True

    def availability(self) -> Availability:
        return modules_availability(self.name, self.modules, self.extra or "ncnn", self.version())

    def load(self, model: Model, options: BackendOptions) -> NcnnSession:
        self.require()
        self.check_model(model)
        check_options(options)  # bad options fail before a possibly slow conversion
        param, binf = ncnn_artifact(model)
        return NcnnSession(param, binf, options, channels=model.config.num_in_ch, scale=model.scale)
