"""The reference study as one call: degrade, enhance on every runtime, compare, time, report.

It reproduces the comparison of a 2025 master's thesis from Politecnico di Torino
("Development of Deep Learning Integrated Mobile Frameworks for Dermatological Image
Analysis"): SRVGGNetCompact ×4 run on PyTorch, NCNN, ExecuTorch and ONNX Runtime over three
ISIC images degraded by a fixed pipeline, then compared pairwise (MSE, PSNR, SSIM, LPIPS),
timed (mean of 5 runs, inference only), checked for repeated-run stability and plotted. It
adds what the thesis left out: every output *and* a bicubic baseline scored against the
ground truth, so the report can say whether the enhancement helps at all, and puts several
models side by side (``StudyConfig(models=...)``): which one helps, and at what cost.

For each image (``run_study``):

1. the ``"thesis"`` degradation (:meth:`dermsr.Degrader.preset`) gives the low-resolution
   input ``lr`` (float32 NCHW) and ``hr``, the central square crop;
2. the ground truth is ``hr`` resized to the output size with ``cv2.INTER_AREA``; the bicubic
   baseline is ``lr`` resized ×scale with ``cv2.INTER_CUBIC`` (clipped to [0, 1]);
3. each model on each runtime: initialisation (``Enhancer`` construction, runtime load and
   the first run) is timed once; after it, ``runs`` calls of :meth:`Enhancer.run` on the
   prepared tensor are timed one by one (inference only); ``repeats`` raw session runs feed
   the consistency check. A runtime that cannot run a model's architecture
   (:class:`~dermsr.errors.UnsupportedModelError`) is recorded as not applicable to it;
4. every pair of runtimes of a model, and every output and the baseline against the ground
   truth, is scored with :mod:`dermsr.evaluate` metrics; figures are drawn.

Per-image, per-model, per-runtime results are cached under ``OUT/cache`` (keyed by everything
they depend on), so an interrupted study resumes where it stopped. After the images, each
model is timed on each runtime in a fresh process (``dermsr bench``'s method).
"""

from __future__ import annotations

from ...bench import summarise_timings
from ...machine import machine_info
from .config import BICUBIC as BICUBIC
from .config import HIGHER_IS_BETTER as HIGHER_IS_BETTER
from .config import METRICS, BackendRun, StudyConfig
from .config import study_command as study_command
from .runner import resolve_backends, run_study
from .runs import run_backend as run_backend
from .scoring import bicubic_baseline, enhancement_verdict, ground_truth
from .scoring import consistency_row as consistency_row

__all__ = [
    "METRICS",
    "BackendRun",
    "StudyConfig",
    "bicubic_baseline",
    "enhancement_verdict",
    "ground_truth",
    "machine_info",
    "resolve_backends",
    "run_study",
    "summarise_timings",
]
