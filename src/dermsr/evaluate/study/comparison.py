"""The models of a study side by side: each one's status on every runtime, its verdict against
bicubic, its scores and speed, as one :class:`~dermsr.evaluate.report.records.ModelComparison`."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..report.records import (
    FAILED,
    NOT_APPLICABLE,
    OK,
    MetricScore,
    ModelComparison,
    ModelSummary,
    RuntimeResult,
)
from .config import BICUBIC, METRICS, BackendRun
from .scoring import enhancement_verdict


def pick_reference(ran: Iterable[str], preferred: str) -> str | None:
    """The runtime whose output stands for a model: ``preferred`` when it ran, else the first that did.

    >>> pick_reference(["ncnn", "torch"], "torch"), pick_reference(["ncnn"], "torch"), pick_reference([], "torch")
    ('torch', 'ncnn', None)
    """
    ran = list(ran)
    return preferred if preferred in ran else (ran[0] if ran else None)


def runtime_status(runs: Sequence[BackendRun], label: str, backend: str) -> tuple[str, str | None]:
    """``(status, reason)`` of model ``label`` on ``backend`` over every image it was run on."""
    mine = [r for r in runs if r.model == label and r.backend == backend]
    if any(r.output is not None for r in mine):
        return OK, None
    unsupported = next((r.unsupported for r in mine if r.unsupported), None)
    if unsupported is not None:
        return NOT_APPLICABLE, unsupported
    errors = list(dict.fromkeys(e for r in mine for e in ([r.error] if r.error else []) + r.errors))
    return FAILED, "; ".join(errors) or "produced no output"


def model_references(runs: Sequence[BackendRun], labels: Sequence[str], backends: Sequence[str],
                     preferred: str) -> dict[str, str | None]:
    """Each model's reference runtime (see :func:`pick_reference`)."""
    return {m: pick_reference((b for b in backends if runtime_status(runs, m, b)[0] == OK), preferred)
            for m in labels}


def _mean(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def build_comparison(
    models: Sequence[tuple[str, Any]],
    backends: Sequence[str],
    runs: Sequence[BackendRun],
    truth: Sequence[Mapping[str, Any]],
    speed: Sequence[Mapping[str, Any]],
    references: Mapping[str, str | None],
    images: Sequence[str],
    verdicts: Mapping[str, Mapping[str, Any]],
) -> ModelComparison:
    """Every model's status per runtime, scores against the ground truth on its reference runtime
    (with ``verdicts[label]`` from :func:`enhancement_verdict`), sharpness and medians."""
    base_rows = [r for r in truth if r.get("method") == BICUBIC]
    metrics = tuple(m for m in METRICS if any(r.get(m) is not None for r in base_rows))
    bench = {(s.get("model"), s["backend"]): s.get("median_ms") for s in speed if s.get("status") == "ok"}
    summaries = []
    for label, model in models:
        ref = references.get(label)
        runtimes = []
        for b in backends:
            status, reason = runtime_status(runs, label, b)
            pooled = [t for r in runs if r.model == label and r.backend == b for t in r.runs_s]
            runtimes.append(RuntimeResult(
                b, status, reason, bench.get((label, b)),
                statistics.median(pooled) * 1000.0 if pooled and status == OK else None))
        v = verdicts.get(label) or {}
        scores = {m: MetricScore(mean=d["method_mean"], baseline_mean=d["baseline_mean"], wins=d["wins"],
                                 images=d["images"], better=d["better"])
                  for m, d in (v.get("metrics") or {}).items()}
        info = model.info()
        mine = [r for r in truth if r.get("method") == label and r.get("backend") == ref]
        summaries.append(ModelSummary(
            label=label, name=info["name"], architecture=info.get("architecture", "unknown"), sha256=model.sha256,
            reference=ref, verdict=v.get("verdict", "unknown"), scores=scores,
            sharpness=_mean(r.get("sharpness") for r in mine), runtimes=tuple(runtimes)))
    return ModelComparison(
        metrics=metrics, images=tuple(images), runtimes=tuple(backends),
        baseline={m: _mean(r.get(m) for r in base_rows) for m in metrics},
        baseline_sharpness=_mean(r.get("sharpness") for r in base_rows),
        truth_sharpness=_mean(r.get("sharpness") for r in truth if r.get("method") == "ground truth"),
        models=tuple(summaries), fresh_speed=bool(bench),
    )


def model_verdicts(labels: Sequence[str], truth: Sequence[Mapping[str, Any]],
                   references: Mapping[str, str | None]) -> dict[str, dict[str, Any]]:
    """Each model against bicubic on its reference runtime (:func:`enhancement_verdict`)."""
    return {m: enhancement_verdict(truth, m, backend=references.get(m)) for m in labels}
