"""PyTorch backend: the reference implementation every other runtime is compared with.

On the CPU the network and its input are kept in ``torch.channels_last`` (NHWC) memory order:
oneDNN's NHWC convolutions ran 224→896 in 320 ms against 552 ms for NCHW, and 512→2048 in
2.44 s against 3.39 s (median of 7 interleaved runs, 2 threads; the variant table in
docs/performance.md), with outputs within 5.5e-6 of the NCHW ones. CUDA keeps the default
NCHW order (not measured here).

``precision="bf16"`` runs the convolutions in bfloat16 (oneDNN uses AVX-512 BF16 / AMX where
the CPU has them) and keeps the nearest-neighbour skip path and the final addition in
float32, so the image's low frequencies are not rounded to bf16's 8-bit mantissa
(docs/performance.md). ``"fp16"`` is ``half=True``: CUDA only.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...errors import BackendUnavailableError, InputError, UnsupportedModelError
from ...models.spec import Model, ModelConfig
from ..registry import Backend, BackendOptions, Capabilities
from ._common import check_precision, reject_extra

__all__ = ["TorchBackend", "TorchSession"]


def parse_device(device: str):
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` → ``torch.device``, checked against this machine."""
    import torch

    if not isinstance(device, str):
        raise InputError(f"device must be a string like 'cpu', 'cuda' or 'cuda:1', got {device!r}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(f"device {device!r} requested but CUDA is not available here")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise InputError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        dev = torch.device("cuda", index)
    elif dev.type != "cpu":
        raise InputError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return dev


class TorchSession:
    backend = "torch"
    #: ``run`` takes N > 1 images at once (Enhancer.enhance_batch groups same-size images)
    capabilities = Capabilities(thread_safe=True, batch=True)

    def __init__(self, model: Model, options: BackendOptions) -> None:
        import torch

        reject_extra("torch", options.extra)
        self.precision = check_precision("torch", options, TorchBackend.precisions)
        if options.half and self.precision not in ("fp32", "fp16"):
            raise InputError(f"half=True is fp16; it cannot be combined with precision={self.precision!r}")
        if self.precision == "bf16" and not isinstance(model.config, ModelConfig):
            raise UnsupportedModelError(
                f"precision='bf16' on torch is written for SRVGGNetCompact (its skip path stays "
                f"float32); {model.name!r} is a {model.architecture}: use precision='fp32'"
            )
        self.device = parse_device(options.device)
        if (options.half or self.precision == "fp16") and self.device.type != "cuda":
            raise InputError("half=True / precision='fp16' needs a CUDA device; fp16 on the CPU is slow "
                             "and inexact (use precision='bf16' on the CPU)")
        if options.threads is not None:
            torch.set_num_threads(int(options.threads))
        self.half = bool(options.half) or self.precision == "fp16"
        #: memory order of the network and its input (see the module docstring)
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.net = model.to_torch().to(self.device, memory_format=self.memory_format)
        # fp16 weights are a separate copy, so the fp32 fallback stays exact
        self._net_fp16 = model.to_torch().to(self.device).half() if self.half else None
        self._net_bf16 = None
        if self.precision == "bf16":
            self._net_bf16 = model.to_torch().to(self.device, dtype=torch.bfloat16,
                                                 memory_format=self.memory_format)

    def run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = _owned(torch.from_numpy(x).to(self.device).contiguous(memory_format=self.memory_format), x)
            if self._net_bf16 is not None:
                return self._to_host(forward_reduced(self._net_bf16, t, torch.bfloat16))
            if self._net_fp16 is not None:
                y = self._net_fp16(t.half()).float()
                if torch.isfinite(y).all():
                    return self._to_host(y)
                warnings.warn(
                    "fp16 output contained NaN/inf; this tile was recomputed in fp32",
                    RuntimeWarning,
                    stacklevel=2,
                )
            y = self.net(t)
            return self._to_host(y)

    def raw_call(self):
        """``net(torch.from_numpy(x))`` under ``torch.inference_mode``, in the session's memory
        order (channels-last on the CPU), back as a contiguous host array (+ sync on GPU)."""
        import torch

        net, device, fmt, bf16 = self.net, self.device, self.memory_format, self._net_bf16

        def call(x: np.ndarray):
            with torch.inference_mode():
                t = _owned(torch.from_numpy(x).to(device).contiguous(memory_format=fmt), x)
                y = net(t) if bf16 is None else forward_reduced(bf16, t, torch.bfloat16)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                return y.cpu().contiguous().numpy()

        return call

    def _to_host(self, y) -> np.ndarray:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        # a C-contiguous NCHW host array, whatever memory order the network computed in
        return y.detach().to("cpu", dtype=torch.float32).contiguous().numpy()


def _owned(t, x: np.ndarray):
    """``t``, or a copy of it where it is still ``x``'s memory: some networks write into their
    input (spandrel's RCAN scales it in place), which must never reach the caller's array."""
    return t.clone() if t.data_ptr() == x.__array_interface__["data"][0] else t


def forward_reduced(net, x, dtype):
    """SRVGGNetCompact's forward with the body and PixelShuffle in ``dtype`` and the
    nearest-neighbour skip path, the addition and any final resize in float32."""
    import torch.nn.functional as F

    out = x.to(dtype)
    for layer in net.body:
        out = layer(out)
    out = net.upsampler(out).float() + F.interpolate(x, scale_factor=net.upscale, mode="nearest")
    if net.out_scale is not None and net.out_scale != net.upscale:
        out = F.interpolate(out, scale_factor=net.out_scale / net.upscale, mode="bicubic", align_corners=False)
    return out


class TorchBackend(Backend):
    name = "torch"
    extra = "torch"
    runtime_module = "torch"
    #: bf16: CPU (AVX-512 BF16/AMX) or CUDA; fp16: CUDA (``half=True``)
    precisions = ("fp32", "bf16", "fp16")

    def load(self, model: Model, options: BackendOptions) -> TorchSession:
        self.require()
        return TorchSession(model, options)
