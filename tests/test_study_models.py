"""The models of a study side by side: the comparison's arithmetic and its typed records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


# ---------------------------------------------------------------------------------------------
# the comparison's arithmetic, on any numbers
# ---------------------------------------------------------------------------------------------
class _StubModel:
    def __init__(self, name: str) -> None:
        self.name, self.sha256 = name, name * 4

    def info(self) -> dict:
        return {"name": self.name, "architecture": "Stub"}


_finite = st.floats(min_value=0.001, max_value=60.0, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_images=st.integers(1, 4), n_models=st.integers(1, 3))
def test_comparison_means_wins_and_verdicts_follow_the_rows(data, n_images, n_models):
    """Whatever the scores: each model's means are the means of its rows on its reference runtime,
    wins count the images it beats bicubic on, the verdict follows, and the record survives
    results.json and models.csv unchanged."""
    from dermsr.evaluate.report import json_safe
    from dermsr.evaluate.report.records import ModelComparison
    from dermsr.evaluate.study.comparison import build_comparison, model_references, model_verdicts
    from dermsr.evaluate.study.config import BackendRun

    labels = [f"m{k}" for k in range(n_models)]
    images = [f"i{k}" for k in range(n_images)]
    backends = ["torch", "other"]
    out = np.zeros((1, 3, 2, 2), np.float32)
    runs = [BackendRun(b, i, out if (m, b) != ("m0", "torch") else None, runs_s=[0.01], model=m,
                       unsupported="n/a here" if (m, b) == ("m0", "torch") else None)
            for m in labels for b in backends for i in images]
    truth = []
    for i in images:
        truth.append({"image": i, "method": "bicubic", "backend": None,
                      **{k: data.draw(_finite) for k in ("psnr", "ssim", "mse")}})
        for m in labels:
            for b in backends:
                truth.append({"image": i, "method": m, "backend": b,
                              **{k: data.draw(_finite) for k in ("psnr", "ssim", "mse")}})
    refs = model_references(runs, labels, backends, "torch")
    assert refs == {m: "other" if m == "m0" else "torch" for m in labels}
    verdicts = model_verdicts(labels, truth, refs)
    c = build_comparison([(m, _StubModel(m)) for m in labels], backends, runs, truth, [], refs, images, verdicts)
    for summary in c.models:
        mine = [r for r in truth if r["method"] == summary.label and r["backend"] == refs[summary.label]]
        base = {r["image"]: r for r in truth if r["method"] == "bicubic"}
        for k in ("psnr", "ssim", "mse"):
            s = summary.scores[k]
            assert s.mean == pytest.approx(np.mean([r[k] for r in mine]))
            higher = k != "mse"
            assert s.wins == sum((r[k] > base[r["image"]][k]) if higher else (r[k] < base[r["image"]][k])
                                 for r in mine)
            assert s.better == ((s.mean > s.baseline_mean) if higher else (s.mean < s.baseline_mean))
        better = [s.better for s in summary.scores.values()]
        assert summary.verdict == ("helps" if all(better) else "does not help" if not any(better) else "mixed")
    m0 = c.models[0]
    assert m0.runtime("torch").status == "n/a" and m0.runtime("torch").reason == "n/a here"
    assert m0.fastest(False).backend == "other"
    again = ModelComparison.from_dict(json.loads(json.dumps(json_safe(c.to_dict()))))
    assert again == c
    rows = c.csv_rows()
    assert rows[0]["model"] == "bicubic" and [r["model"] for r in rows[1:]] == labels
    for row, summary in zip(rows[1:], c.models, strict=True):
        assert all(math.isclose(row[k], summary.scores[k].mean) for k in ("psnr", "ssim", "mse"))
