"""ONNX Runtime backend: the model exported to ONNX (dynamic batch/height/width), run by ORT.

The ONNX file is built by :func:`dermsr.export.onnx.onnx_bytes` and kept in the artifact
cache (:mod:`dermsr.export.cache`), keyed by the model's weights hash, the opset and the
versions of torch/onnx/onnxscript/onnxruntime; later sessions reuse it. ``precision="int8"``
runs the QDQ int8 graph of :func:`dermsr.export.quantize.int8_onnx` (calibrated, gated
against fp32 on held-out images, cached by precision and calibration set).
``threads`` sets ``SessionOptions.intra_op_num_threads`` (default: every core this process
may use). ``device="cuda"``/``"cuda:N"`` uses the CUDAExecutionProvider when the installed
onnxruntime has it (``onnxruntime-gpu``). ORT's ``InferenceSession.run`` may be called from
several threads at once (ORT documents sessions as thread-safe for ``Run``).
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import numpy as np

from ...errors import BackendError, BackendUnavailableError, InputError
from ...models.spec import Model
from ..registry import Availability, Backend, BackendOptions, Capabilities
from ._common import (
    check_batch,
    check_precision,
    default_threads,
    modules_availability,
    reject_extra,
)

__all__ = ["OnnxRuntimeBackend", "OnnxRuntimeSession", "check_options", "onnx_artifact", "parse_ort_device"]

NAME = "onnxruntime"


def parse_ort_device(device: str) -> tuple[str, int]:
    """``"cpu"`` → ``("cpu", 0)``; ``"cuda"`` / ``"cuda:N"`` → ``("cuda", N)``.

    >>> parse_ort_device("cuda:1")
    ('cuda', 1)
    """
    if not isinstance(device, str):
        raise InputError(f"device must be a string like 'cpu' or 'cuda:0', got {device!r}")
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu", 0
    if kind == "cuda" and (not index or index.isdigit()):
        return "cuda", int(index or 0)
    raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def onnx_artifact(model: Model) -> Path:
    """Path of the cached fp32 ONNX file for ``model`` (exported on first use;
    :func:`dermsr.export.onnx.cached_onnx`)."""
    from ...export.onnx import cached_onnx

    return cached_onnx(model)


def check_options(options: BackendOptions) -> tuple[str, int]:
    """Refuse options this backend cannot honour; returns the parsed device."""
    reject_extra(NAME, options.extra)
    check_precision(NAME, options, OnnxRuntimeBackend.precisions)
    if options.half:
        raise InputError(
            "half=True is not supported by the onnxruntime backend (it runs the fp32 graph); "
            "use backend='torch' with a CUDA device for fp16"
        )
    return parse_ort_device(options.device)


class OnnxRuntimeSession:
    """An ``onnxruntime.InferenceSession`` over one ONNX file (float32 NCHW in and out)."""

    backend = NAME
    #: the exported graph has a dynamic batch axis
    capabilities = Capabilities(thread_safe=True, batch=True)

    def __init__(self, path: str | Path, options: BackendOptions, *, channels: int = 3,
                 quantization: dict | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.channels = channels
        self.precision = options.precision
        #: for int8: recipe, calibration set and the fidelity gate's figures (quantization.json)
        self.quantization = quantization
        kind, index = check_options(options)
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(options.threads or default_threads())
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only; failures are raised as BackendError below
        providers: list = ["CPUExecutionProvider"]
        if kind == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendUnavailableError(
                    f"device {options.device!r} requested but this onnxruntime has no "
                    "CUDAExecutionProvider; pip install onnxruntime-gpu"
                )
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as exc:
            raise BackendError(f"backend {NAME!r} could not load {self.path}: {exc}") from exc
        self.input_name = self._sess.get_inputs()[0].name
        self.output_name = self._sess.get_outputs()[0].name
        self.providers = self._sess.get_providers()

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(NAME, x, self.channels)
        try:
            (y,) = self._sess.run([self.output_name], {self.input_name: x})
        except Exception as exc:
            raise BackendError(f"backend {NAME!r} failed running {self.path} on {x.shape}: {exc}") from exc
        return np.asarray(y, dtype=np.float32)

    def raw_call(self):
        """``InferenceSession.run(None, {input: x})`` on this session's own ORT session."""
        sess, name = self._sess, self.input_name

        def call(x: np.ndarray):
            return sess.run(None, {name: x})[0]

        return call


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime; needs ``pip install 'dermsr[onnx]'`` (onnxruntime, onnx, onnxscript, torch)."""

    name = NAME
    extra = "onnx"
    runtime_module = "onnxruntime"
    #: int8: the QDQ graph of :mod:`dermsr.export.quantize`, gated against fp32 when built
    precisions = ("fp32", "int8")
    #: import names needed: the runtime, and the exporter that builds the file (torch.onnx)
    modules = ("onnxruntime", "onnx", "onnxscript", "torch")

    def version(self) -> str | None:
        for dist in ("onnxruntime", "onnxruntime-gpu"):
            try:
                return md.version(dist)
            except md.PackageNotFoundError:
                continue
        return None

    def availability(self) -> Availability:
        return modules_availability(self.name, self.modules, self.extra or "onnx", self.version())

    def load(self, model: Model, options: BackendOptions) -> OnnxRuntimeSession:
        self.require()
        check_options(options)  # bad options fail before a possibly slow export
        if options.precision == "int8":
            from ...export.quantize import INT8_FILE, int8_onnx, read_report

            folder = int8_onnx(model, options.calibration)
            return OnnxRuntimeSession(folder / INT8_FILE, options, channels=model.config.num_in_ch,
                                      quantization=read_report(folder))
        return OnnxRuntimeSession(onnx_artifact(model), options, channels=model.config.num_in_ch)
