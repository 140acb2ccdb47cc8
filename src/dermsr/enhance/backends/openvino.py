"""OpenVINO backend (CPU): fp32, bf16 and int8; needs ``pip install 'dermsr[openvino]'``.

A plugin like any other: registered under the entry-point group ``dermsr.backends`` by
dermsr's own ``pyproject.toml``. It reads the same cached ONNX file as the ``onnxruntime``
backend (:func:`dermsr.export.onnx.cached_onnx`) and compiles it for the CPU with
``INFERENCE_PRECISION_HINT``:

- ``"fp32"``: ``f32``, set explicitly — on a CPU with bf16 units OpenVINO would otherwise
  pick bf16 by itself.
- ``"bf16"``: ``bf16`` (needs AVX-512 BF16 or AMX; refused on CPUs without them, where it
  would be emulated and slow).
- ``"int8"``: the QDQ int8 graph of :func:`dermsr.export.quantize.int8_onnx` (the recipe that
  keeps the skip path and the body's output float, gated with ONNX Runtime), without the pairs
  on the convolutions' outputs (:func:`~dermsr.export.quantize.without_conv_output_quantizers`:
  OpenVINO then fuses convolution, PReLU and requantization), converted to OpenVINO IR
  (``model.xml``/``model.bin``), whose QuantizeLinear/DequantizeLinear pairs OpenVINO's
  low-precision transformations turn into int8 (VNNI) convolutions. The IR is
  gated again with OpenVINO itself against OpenVINO fp32 on the held-out crops before it is
  cached (``quantization.json`` holds both runtimes' figures).

``threads`` sets ``INFERENCE_NUM_THREADS`` (default: every core this process may use). One
infer request per session, so runs are serialised (``thread_safe=False``); the graph has a
dynamic batch axis (``batch=True``).
"""

from __future__ import annotations

import json
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

__all__ = ["OpenVINOBackend", "OpenVINOSession", "openvino_int8"]

NAME = "openvino"
IR_FILE = "model.xml"
#: distributions whose versions identify an OpenVINO int8 artifact
OV_TOOLS = ("openvino", "torch", "onnx", "onnxscript", "onnxruntime")


def _compile(core, model, precision_hint: str, threads: int):
    return core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": int(threads),
        "INFERENCE_PRECISION_HINT": precision_hint,
        "PERFORMANCE_HINT": "LATENCY",
    })


def _runner(compiled):
    request = compiled.create_infer_request()

    def call(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()

    return call


def openvino_int8(model: Model, calibration: str | Path | None = None) -> Path:
    """Folder of the cached, gated OpenVINO int8 IR of ``model`` (built on first use)."""
    import openvino as ov

    from ...export.cache import cached_artifact
    from ...export.manifest import tool_versions
    from ...export.onnx import cached_onnx
    from ...export.quantize import (
        DEFAULT_RECIPE,
        INT8_FILE,
        MIN_PSNR_VS_FP32,
        RECIPE_VERSION,
        REPORT_FILE,
        calibration_set,
        check_fidelity,
        int8_onnx,
        measure_fidelity,
        read_report,
        without_conv_output_quantizers,
    )

    calib = calibration_set(calibration)
    qdq = int8_onnx(model, calibration)  # gated with ONNX Runtime first

    def build(folder: Path) -> None:
        import tempfile

        core = ov.Core()
        with tempfile.TemporaryDirectory(prefix="dermsr-ov-") as tmp:
            onnx_file = Path(tmp) / INT8_FILE
            onnx_file.write_bytes(without_conv_output_quantizers((qdq / INT8_FILE).read_bytes()))
            ov.save_model(core.read_model(str(onnx_file)), str(folder / IR_FILE), compress_to_fp16=False)
        threads = default_threads()
        reference = _runner(_compile(core, core.read_model(str(cached_onnx(model))), "f32", threads))
        candidate = _runner(_compile(core, core.read_model(str(folder / IR_FILE)), "f32", threads))
        report = measure_fidelity(reference, candidate, calib.held_out_pairs(), precision="int8",
                                  runtime=NAME, threshold=MIN_PSNR_VS_FP32)
        check_fidelity(report, f"the OpenVINO int8 model of {model.name!r}")
        record = read_report(qdq)
        record["fidelity"][NAME] = report.to_dict()
        record["format"] = ("OpenVINO IR from the ONNX QDQ graph without the convolution-output pairs "
                            "(int8 convolutions with fused PReLU via low-precision transformations)")
        (folder / REPORT_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))

    def validate(folder: Path) -> None:
        ov.Core().read_model(str(folder / IR_FILE))

    parts = {"precision": "int8", "recipe": DEFAULT_RECIPE, "recipe_version": RECIPE_VERSION,
             "graph": "no-conv-output-quantizers",
             "calibration": calib.sha256, "threshold_db": MIN_PSNR_VS_FP32, "tools": tool_versions(OV_TOOLS)}
    return cached_artifact("openvino-int8", model.sha256, parts, build, validate)


def check_options(options: BackendOptions) -> str:
    """Refuse options this backend cannot honour; returns the precision."""
    reject_extra(NAME, options.extra)
    precision = check_precision(NAME, options, OpenVINOBackend.precisions)
    if options.device != "cpu":
        raise InputError(f"the openvino backend runs on the CPU here; expected device='cpu', got {options.device!r}")
    if options.half:
        raise InputError("half=True is fp16 on CUDA; the openvino backend runs fp32, bf16 or int8 on the CPU")
    return precision


class OpenVINOSession:
    """One OpenVINO compiled model (float32 NCHW in and out)."""

    backend = NAME
    capabilities = Capabilities(thread_safe=False, batch=True)

    def __init__(self, model: Model, options: BackendOptions) -> None:
        import openvino as ov

        from ...export.onnx import cached_onnx

        self.precision = check_options(options)
        self.channels = model.config.num_in_ch
        self.quantization: dict | None = None
        core = ov.Core()
        if self.precision == "bf16":
            caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            if "BF16" not in caps:
                raise InputError(
                    f"precision='bf16' needs a CPU with bf16 units (AVX-512 BF16 or AMX); this one offers "
                    f"{', '.join(caps)}. Use precision='int8' or 'fp32'"
                )
        if self.precision == "int8":
            from ...export.quantize import read_report

            folder = openvino_int8(model, options.calibration)
            self.path = folder / IR_FILE
            self.quantization = read_report(folder)
        else:
            self.path = cached_onnx(model)
        hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}[self.precision]
        try:
            self._compiled = _compile(core, core.read_model(str(self.path)), hint,
                                      options.threads or default_threads())
            self._request = self._compiled.create_infer_request()
        except Exception as exc:
            raise BackendError(f"backend {NAME!r} could not compile {self.path}: {exc}") from exc

    def run(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(NAME, x, self.channels)
        try:
            self._request.infer({0: x})
            y = self._request.get_output_tensor(0).data
        except Exception as exc:
            raise BackendError(f"backend {NAME!r} failed running {self.path} on {x.shape}: {exc}") from exc
        return np.array(y, dtype=np.float32)  # a copy: the request reuses its output buffer

    def raw_call(self):
        """``InferRequest.infer({0: x})`` on this session's own request, output copied."""
        request = self._request

        def call(x: np.ndarray):
            request.infer({0: x})
            return request.get_output_tensor(0).data.copy()

        return call


class OpenVINOBackend(Backend):
    """Intel OpenVINO (CPU); needs ``pip install 'dermsr[openvino]'``."""

    name = NAME
    extra = "openvino"
    runtime_module = "openvino"
    #: the converter that builds the ONNX file it reads, and the int8 quantizer
    modules = ("openvino", "onnx", "onnxscript", "onnxruntime")
    precisions = ("fp32", "bf16", "int8")
    #: checked on SRVGGNetCompact and RRDBNet graphs only
    native_only = True

    def availability(self) -> Availability:
        return modules_availability(self.name, self.modules, self.extra or "openvino", self.version())

    def load(self, model: Model, options: BackendOptions) -> OpenVINOSession:
        self.require()
        self.check_model(model)
        check_options(options)
        return OpenVINOSession(model, options)
