"""Typed records of a study's model comparison.

The study builds one :class:`ModelComparison`; results.json holds its :meth:`~ModelComparison.to_dict`
under ``model_comparison``, and the report and ``models.csv`` read it back through
:meth:`~ModelComparison.from_dict`, so the three show the same numbers from one place.

>>> score = MetricScore(mean=31.0, baseline_mean=30.0, wins=2, images=3, better=True)
>>> m = ModelSummary("m", "m", "SRVGGNetCompact", "ab" * 32, "torch", "helps", {"psnr": score}, 10.0,
...                  (RuntimeResult("torch", OK, median_ms=12.0), RuntimeResult("ncnn", NOT_APPLICABLE, "no")))
>>> c = ModelComparison(("psnr",), ("a", "b", "c"), ("torch", "ncnn"), {"psnr": 30.0}, 9.0, 20.0, (m,), True)
>>> ModelComparison.from_dict(c.to_dict()) == c
True
>>> m.fastest(True).backend, [r.backend for r in m.not_applicable]
('torch', ['ncnn'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: Status of one model on one runtime: it ran, the runtime cannot run its architecture
#: (:class:`~dermsr.errors.UnsupportedModelError`), or it failed (load error, no output).
OK, NOT_APPLICABLE, FAILED = "ok", "n/a", "failed"

#: The label of the baseline row, wherever a model label could appear.
BASELINE = "bicubic"


@dataclass(frozen=True)
class RuntimeResult:
    """One model on one runtime: its status, why when it did not run, and its speed.

    ``median_ms``: ``dermsr bench``'s fresh-process median at the study's input size (None
    when not measured); ``inprocess_median_ms``: the median of the study's in-process timed
    runs, pooled over images.
    """

    backend: str
    status: str
    reason: str | None = None
    median_ms: float | None = None
    inprocess_median_ms: float | None = None

    def ms(self, fresh: bool) -> float | None:
        """The median to compare: fresh-process when measured (``fresh``), else in-process."""
        return self.median_ms if fresh else self.inprocess_median_ms


@dataclass(frozen=True)
class MetricScore:
    """One metric of one model against the ground truth, beside the bicubic baseline."""

    mean: float | None
    baseline_mean: float | None
    wins: int  # images where the model beats bicubic
    images: int
    better: bool  # better than bicubic on the mean


@dataclass(frozen=True)
class ModelSummary:
    """One model of the study: identity, verdict against bicubic, scores, and every runtime."""

    label: str  # unique within the study (the model's name, numbered when names repeat)
    name: str
    architecture: str
    sha256: str
    reference: str | None  # runtime whose output is scored against the ground truth (None: it ran nowhere)
    verdict: str  # "helps", "does not help", "mixed" or "unknown"
    scores: Mapping[str, MetricScore]
    sharpness: float | None  # mean variance of the Laplacian of its outputs
    runtimes: tuple[RuntimeResult, ...]

    def runtime(self, backend: str) -> RuntimeResult | None:
        return next((r for r in self.runtimes if r.backend == backend), None)

    @property
    def not_applicable(self) -> tuple[RuntimeResult, ...]:
        return tuple(r for r in self.runtimes if r.status == NOT_APPLICABLE)

    @property
    def failed(self) -> tuple[RuntimeResult, ...]:
        return tuple(r for r in self.runtimes if r.status == FAILED)

    def fastest(self, fresh: bool) -> RuntimeResult | None:
        """The runtime with the lowest median (see :meth:`RuntimeResult.ms`), or None."""
        timed = [r for r in self.runtimes if r.status == OK and r.ms(fresh) is not None]
        return min(timed, key=lambda r: r.ms(fresh), default=None)  # type: ignore[arg-type,return-value]


@dataclass(frozen=True)
class ModelComparison:
    """Every model of a study side by side, with bicubic as the baseline row.

    ``fresh_speed`` says whether the runtimes' medians come from ``dermsr bench``'s fresh
    processes (else only the in-process timings exist: ``--no-speed``).
    """

    metrics: tuple[str, ...]
    images: tuple[str, ...]
    runtimes: tuple[str, ...]
    baseline: Mapping[str, float | None]  # bicubic's mean of each metric over the images
    baseline_sharpness: float | None
    truth_sharpness: float | None
    models: tuple[ModelSummary, ...]
    fresh_speed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_results(cls, results: Mapping[str, Any]) -> ModelComparison:
        """The comparison of a study's results (results.json's ``model_comparison``)."""
        return cls.from_dict(results["model_comparison"])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelComparison:
        models = tuple(
            ModelSummary(**{**m, "scores": {k: MetricScore(**s) for k, s in m["scores"].items()},
                            "runtimes": tuple(RuntimeResult(**r) for r in m["runtimes"])})
            for m in d["models"]
        )
        return cls(**{**d, "metrics": tuple(d["metrics"]), "images": tuple(d["images"]),
                      "runtimes": tuple(d["runtimes"]), "baseline": dict(d["baseline"]), "models": models})

    def csv_rows(self) -> list[dict[str, Any]]:
        """``models.csv``: bicubic, then one row per model (means, wins, speed on each runtime)."""
        rows: list[dict[str, Any]] = [{"model": BASELINE, "verdict": "baseline", "images": len(self.images),
                                       **self.baseline, "sharpness": self.baseline_sharpness}]
        for m in self.models:
            fastest = m.fastest(self.fresh_speed)
            row: dict[str, Any] = {
                "model": m.label, "name": m.name, "architecture": m.architecture, "sha256": m.sha256,
                "reference_runtime": m.reference, "verdict": m.verdict,
                "images": max((s.images for s in m.scores.values()), default=0),
                **{k: s.mean for k, s in m.scores.items()},
                **{f"{k}_wins": s.wins for k, s in m.scores.items()},
                "sharpness": m.sharpness,
                "fastest_runtime": fastest.backend if fastest else None,
                "fastest_median_ms": fastest.ms(self.fresh_speed) if fastest else None,
                "speed": "fresh process" if self.fresh_speed else "in process",
            }
            for r in m.runtimes:
                row[f"{r.backend}_status"] = r.status
                row[f"{r.backend}_median_ms"] = r.ms(self.fresh_speed)
            rows.append(row)
        return rows

    def csv_columns(self) -> list[str]:
        """Leading columns of ``models.csv`` (an empty comparison still has a header)."""
        return ["model", "name", "architecture", "sha256", "reference_runtime", "verdict", "images",
                *self.metrics, *(f"{k}_wins" for k in self.metrics), "sharpness", "fastest_runtime",
                "fastest_median_ms", "speed",
                *(f"{b}_{c}" for b in self.runtimes for c in ("status", "median_ms"))]
