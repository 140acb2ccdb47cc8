"""`dermsr study`: the numbers in the report are the ones computed, checked independently.

One small study (a 300×300 ISIC crop, LR side 64, runs=2, the default model alone) runs once per
module on torch, every other available runtime and a registered-but-unavailable fake runtime;
the tests read its results.json, CSVs, report.md and report.html and recompute values with
scikit-image/NumPy/OpenCV and PyTorch directly. Studies of several models side by side are in
test_study_models.py.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import re
import statistics
from pathlib import Path

import cv2
import numpy as np
import pytest

from dermsr.backends import (
    Availability,
    Backend,
    Capabilities,
    SessionBase,
    available,
    register,
    unregister,
)
from dermsr.errors import InputError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
SIZE = 64  # LR side: output 256×256 keeps the study fast
FAKE = "fake-unavailable"
MODEL = "dermsr-blind-x4"  # the default model, the study's main one


def _shared() -> Path:
    return Path(os.environ.get("DERMSR_SHARED", REPO.parent / "shared"))


def _backbone() -> Path | None:
    p = _shared() / "weights" / "lpips_alexnet_features.pth"
    return p if p.is_file() else None


class FakeUnavailable(Backend):
    """A registered runtime that cannot run here (as an uninstalled plugin would be)."""

    name = FAKE
    runtime_module = "no_such_runtime_module_for_dermsr_tests"
    extra = "fake"

    def availability(self) -> Availability:
        return Availability(FAKE, False, None, "the fake runtime is not installed (test double)", "fake")

    def load(self, model, options):  # pragma: no cover - never called: unavailable
        raise AssertionError("an unavailable backend must not be loaded")


@pytest.fixture(scope="module")
def crop_path(tmp_path_factory) -> Path:
    from dermsr.data import sample_images

    src = cv2.imread(str(sample_images()[0]))
    h, w = src.shape[:2]
    crop = src[(h - 300) // 2:(h + 300) // 2, (w - 300) // 2:(w + 300) // 2]
    path = tmp_path_factory.mktemp("study-in") / "lesion.png"
    cv2.imwrite(str(path), crop)
    return path


@pytest.fixture(scope="module")
def fake_backend():
    register(FakeUnavailable)
    yield FAKE
    unregister(FAKE)


@pytest.fixture(scope="module")
def runtimes(fake_backend) -> list[str]:
    """torch, every other runtime that can run here, and the fake unavailable one."""
    names = [a.name for a in available() if a.available and a.name not in ("torch", FAKE)]
    return ["torch", *sorted(names), fake_backend]


@pytest.fixture(scope="module")
def study(tmp_path_factory, crop_path, runtimes):
    from dermsr.evaluate.study import run_study

    out = tmp_path_factory.mktemp("study-out")
    backbone = _backbone()
    # one model keeps the module fast: the default second model would double every runtime's work
    results = run_study(out, images=(crop_path,), backends=tuple(runtimes), runs=2, size=SIZE,
                        lpips_backbone=str(backbone) if backbone else None, progress=False, dpi=40,
                        compare_models=())
    return out, results


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _reference_images(crop_path: Path):
    """LR, torch output, ground truth and bicubic baseline recomputed without the study."""
    import torch

    from dermsr import Degrader, load_model

    rgb = cv2.cvtColor(cv2.imread(str(crop_path)), cv2.COLOR_BGR2RGB)
    lr = Degrader.preset("thesis", size=SIZE).apply(rgb, seed=0).lr
    net = load_model(None).to_torch()
    with torch.inference_mode():
        y = net(torch.from_numpy(lr)).clamp(0, 1).numpy()[0].transpose(1, 2, 0)
    side = min(rgb.shape[:2])  # the thesis crop is the central square: the whole 300×300 image
    gt = cv2.resize(rgb.astype(np.float32) / 255.0, (4 * SIZE, 4 * SIZE), interpolation=cv2.INTER_AREA)
    assert side == 300
    lr_hwc = lr[0].transpose(1, 2, 0)
    bicubic = np.clip(cv2.resize(lr_hwc, (4 * SIZE, 4 * SIZE), interpolation=cv2.INTER_CUBIC), 0, 1)
    return lr, y, gt, bicubic


def _skimage_ssim(a, b) -> float:
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


# ---------------------------------------------------------------------------------------------
def test_ground_truth_numbers_match_an_independent_recomputation(study, crop_path):
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    from dermsr.evaluate.report import fmt_metric

    out, results = study
    _, y, gt, bicubic = _reference_images(crop_path)
    # rows are (method, runtime): the model on each runtime, bicubic and the ground truth on none
    rows = {(r["method"], r["backend"]): r for r in results["ground_truth"]}
    csv_rows = {(r["method"], r["backend"] or None): r for r in _csv(out / "ground_truth.csv")}
    json_rows = {(r["method"], r["backend"]): r
                 for r in json.loads((out / "results.json").read_text())["ground_truth"]}
    report = (out / "report.md").read_text()
    for method, image in (((MODEL, "torch"), y), (("bicubic", None), bicubic)):
        expected = {
            "mse": mean_squared_error(gt.astype(np.float64), image.astype(np.float64)),
            "psnr": peak_signal_noise_ratio(gt.astype(np.float64), image.astype(np.float64), data_range=1.0),
            "ssim": _skimage_ssim(gt.astype(np.float64), image.astype(np.float64)),
        }
        for metric, value in expected.items():
            tol = 2e-3 if metric == "psnr" else 1e-4 * max(abs(value), 1e-3)
            assert rows[method][metric] == pytest.approx(value, abs=tol), (method, metric)
            assert json_rows[method][metric] == rows[method][metric]
            assert float(csv_rows[method][metric]) == rows[method][metric]
        # the per-image table of every runtime's output in report.md shows these very numbers
        label = "bicubic baseline | —" if method[0] == "bicubic" else f"{MODEL} | torch"
        line = next(ln for ln in report.splitlines() if ln.startswith(f"| lesion | {label} |"))
        for metric in ("mse", "psnr", "ssim"):
            assert f" {fmt_metric(metric, rows[method][metric])} " in line


def test_verdict_follows_the_numbers_and_is_stated(study):
    out, results = study
    rows = {(r["method"], r["backend"]): r for r in results["ground_truth"]}
    ours, base = rows[(MODEL, "torch")], rows[("bicubic", None)]
    v = results["verdict"]  # the main model on the reference runtime
    assert (v["method"], v["backend"]) == (MODEL, "torch")
    assert v["metrics"]["psnr"]["better"] == (ours["psnr"] > base["psnr"])
    assert v["metrics"]["ssim"]["better"] == (ours["ssim"] > base["ssim"])
    better = [m["better"] for m in v["metrics"].values()]
    expected = "helps" if all(better) else "does not help" if not any(better) else "mixed"
    assert v["verdict"] == expected
    assert "Does the enhancement help?" in (out / "report.md").read_text()


def test_pairwise_rows_cover_every_pair_and_match_numpy(study, runtimes, crop_path):
    from skimage.metrics import peak_signal_noise_ratio

    _, results = study
    ran = results["config"]["backends_run"]
    assert ran == [r for r in runtimes if r != FAKE]
    assert {r["model"] for r in results["pairwise"]} <= {MODEL}
    pairs = {(r["a"], r["b"]) for r in results["pairwise"]}
    assert len(pairs) == len(ran) * (len(ran) - 1) // 2
    if len(ran) < 2:
        pytest.skip("only torch can run here; no pair to check")
    # recompute one pair: torch directly, the other runtime through a fresh Enhancer
    from dermsr import Enhancer

    lr, y, _, _ = _reference_images(crop_path)
    other = ran[1]
    z = Enhancer(backend=other).run(lr)[0].transpose(1, 2, 0)
    row = next(r for r in results["pairwise"] if (r["a"], r["b"]) == ("torch", other))
    assert row["max_abs"] == pytest.approx(float(np.abs(y - z).max()), abs=1e-5)
    if np.array_equal(y, z):
        assert math.isinf(row["psnr"])
    else:
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(y, z, data_range=1.0), abs=0.5)


def test_timing_summary_is_computed_from_the_recorded_runs(study):
    out, results = study
    csv_rows = {(r["model"], r["backend"]): r for r in _csv(out / "timing.csv")}
    for t in results["timing"]:
        runs = t["runs_s"]
        assert len(runs) == 2 and all(r > 0 for r in runs)
        assert t["mean_s"] == pytest.approx(float(np.mean(runs)))
        assert t["std_s"] == pytest.approx(float(np.std(runs, ddof=1)))
        assert t["median_s"] == pytest.approx(statistics.median(runs))
        assert t["init_s"] > 0
        assert float(csv_rows[(t["model"], t["backend"])]["mean_s"]) == pytest.approx(t["mean_s"])
    report = (out / "report.md").read_text()
    torch_row = next(s for s in results["timing_summary"] if s["backend"] == "torch")
    assert f"{torch_row['mean_s'] * 1000:.1f} ± {torch_row['std_s'] * 1000:.1f}" in report


def test_consistency_rows_for_every_runtime(study):
    out, results = study
    rows = {r["backend"]: r for r in results["consistency"]}
    assert set(rows) == set(results["config"]["backends_run"])
    for r in rows.values():
        assert r["runs"] == 2  # repeats default to runs
        assert r["nonfinite"] == 0 and r["extreme"] == 0 and r["failures"] == 0
    assert rows["torch"]["bit_identical"] is True
    assert rows["torch"]["verdict"] == "bit-identical"
    assert len(_csv(out / "consistency.csv")) == len(rows)


def test_unavailable_backend_is_skipped_with_a_note(study):
    out, results = study
    skipped = {s["backend"]: s["reason"] for s in results["config"]["backends_skipped"]}
    assert "not installed (test double)" in skipped[FAKE]
    assert FAKE not in results["config"]["backends_run"]
    md = (out / "report.md").read_text()
    assert f"Runtime `{FAKE}` was **skipped**: the fake runtime is not installed" in md
    assert "skipped" in (out / "report.html").read_text()


def test_unknown_backend_name_is_an_error(tmp_path, crop_path):
    from dermsr.evaluate.study import run_study

    with pytest.raises(UnknownNameError, match="known backends"):
        run_study(tmp_path, images=(crop_path,), backends=("torch", "tourch"), progress=False)


def test_html_is_self_contained_with_every_figure_embedded(study):
    out, results = study
    page = (out / "report.html").read_text()
    assert results["figures"], "the study drew no figures"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "<script" not in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == len(results["figures"])
    assert all(src.startswith("data:image/png;base64,") for src in srcs)
    embedded = sorted(base64.b64decode(src.split(",", 1)[1]) for src in srcs)
    assert embedded == sorted((out / fig["file"]).read_bytes() for fig in results["figures"])
    kinds = {f["kind"] for f in results["figures"]}
    assert {"histogram", "grid"} <= kinds
    if len(results["config"]["backends_run"]) > 1:
        assert "diff" in kinds


def test_results_json_records_the_configuration(study, crop_path):
    out, _ = study
    data = json.loads((out / "results.json").read_text())  # strict JSON: no NaN/Infinity literals
    cfg = data["config"]
    from dermsr import Degrader

    assert cfg["degrader"] == Degrader.preset("thesis", size=SIZE).to_dict()
    assert cfg["degrader"]["steps"][0]["type"] == "CenterCrop"
    assert cfg["model"]["name"] == "dermsr-blind-x4" and len(cfg["model"]["sha256"]) == 64
    # the default study also compares the reference study's released weights (this fixture leaves
    # them out to stay fast; test_study_models.py runs several models)
    from dermsr.evaluate.study import StudyConfig

    assert StudyConfig().model_specs == (None, "realesr-animevideov3-x4")
    assert cfg["compare_models"] == [] and [m["label"] for m in cfg["models"]] == [MODEL]
    assert set(data["model_verdicts"]) == {MODEL} and data["verdict"] == data["model_verdicts"][MODEL]
    assert {r["name"] for r in cfg["runtimes"]} >= {"torch", FAKE}
    torch_rt = next(r for r in cfg["runtimes"] if r["name"] == "torch")
    assert torch_rt["available"] and torch_rt["version"]
    for key in ("platform", "cpu_model", "logical_cores", "python"):
        assert cfg["machine"][key]
    assert cfg["seed"] == 0 and cfg["runs"] == 2 and cfg["repeats"] == 2
    assert cfg["dermsr_version"] and re.match(r"\d{4}-\d\d-\d\dT", cfg["date"])
    assert cfg["images"][0]["path"] == str(crop_path) and cfg["images"][0]["output_size"] == [256, 256]
    assert cfg["command"].startswith("dermsr study ")
    assert data["wall_time_s"] > 0
    assert cfg["lpips"]["computed"] == (_backbone() is not None)


def test_lpips_values_when_the_backbone_is_available(study):
    if _backbone() is None:
        pytest.skip("shared LPIPS backbone not found")
    _, results = study
    rows = {(r["method"], r["backend"]): r for r in results["ground_truth"]}
    assert 0 < rows[(MODEL, "torch")]["lpips"] < 1 and 0 < rows[("bicubic", None)]["lpips"] < 1
    for r in results["pairwise"]:
        assert 0 <= r["lpips"] < 0.05  # runtimes agree closely


def test_lpips_uses_the_packaged_backbone_and_is_skipped_loudly_when_it_cannot_run(tmp_path, crop_path, monkeypatch):
    from dermsr.evaluate import lpips
    from dermsr.evaluate.study import run_study

    monkeypatch.delenv("DERMSR_LPIPS_BACKBONE", raising=False)
    kw = dict(images=(crop_path,), backends=("torch",), runs=1, size=32, progress=False, figures=False,
              speed=False, compare_models=())
    results = run_study(tmp_path / "default", **kw)  # no backbone given: the one shipped, offline
    assert results["config"]["lpips"]["computed"] is True
    assert "(packaged)" in results["config"]["lpips"]["backbone"]
    assert all(r["lpips"] is not None for r in results["ground_truth"] if r["method"] != "ground truth")

    monkeypatch.setattr(lpips, "PACKAGED_BACKBONE", tmp_path / "gone.pth")  # a broken install
    results = run_study(tmp_path / "out", **kw)
    assert results["config"]["lpips"]["computed"] is False
    assert all(r["lpips"] is None for r in results["ground_truth"] if r["method"] != "ground truth")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "LPIPS was **skipped**" in md
    assert "--lpips-backbone PATH" in md and "DERMSR_LPIPS_BACKBONE" in md
    # the other metrics are still there
    assert results["ground_truth"][1]["psnr"] > 0


def test_resume_reuses_cached_runs(tmp_path, crop_path):
    from dermsr.evaluate.study import run_study

    kw = dict(images=(crop_path,), backends=("torch",), runs=1, size=32, progress=False, figures=False,
              speed=False, compare_models=())
    first = run_study(tmp_path, **kw)
    second = run_study(tmp_path, **kw)
    assert second["timing"][0]["cached"] is True
    assert second["timing"][0]["runs_s"] == first["timing"][0]["runs_s"]
    assert second["ground_truth"] == first["ground_truth"]
    assert "loaded from" in (tmp_path / "report.md").read_text()
    third = run_study(tmp_path, resume=False, **kw)
    assert third["timing"][0]["cached"] is False


def test_bad_configuration_is_refused(tmp_path):
    from dermsr.evaluate.study import StudyConfig

    with pytest.raises(InputError, match="runs"):
        StudyConfig(runs=0)
    with pytest.raises(InputError, match="repeats"):
        StudyConfig(repeats=1)
    with pytest.raises(InputError, match="does not exist"):
        StudyConfig(lpips_backbone=str(tmp_path / "missing.pth"))


def test_cli_runs_the_study(tmp_path, crop_path, capsys):
    from dermsr.cli import main

    code = main(["study", str(crop_path), "--out", str(tmp_path), "--backends", "torch", "--runs", "1",
                 "--size", "32", "--no-figures", "--quiet", "--no-speed", "--compare-models", "none"])
    assert code == 0
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.html").is_file()
    assert "studied 1 image(s) on torch" in capsys.readouterr().err
    assert main(["study", str(tmp_path / "nope.png"), "--out", str(tmp_path)]) == 2


class _FlakySession(SessionBase):
    """Nearest-neighbour ×4 that returns a 5.6e19 pixel on every third call (the thesis's symptom)."""

    backend = "flaky-test"
    capabilities = Capabilities(thread_safe=False)

    def __init__(self) -> None:
        self.calls = 0

    def run(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        y = x.repeat(4, axis=2).repeat(4, axis=3)
        if self.calls % 3 == 0:
            y[0, 0, 0, 0] = 5.6e19
        return y


class FlakyBackend(Backend):
    name = "flaky-test"
    runtime_module = "numpy"

    def availability(self) -> Availability:
        return Availability(self.name, True, "0.0-test", None, None)

    def load(self, model, options):
        return _FlakySession()


def test_corrupted_runs_cannot_be_missed(tmp_path, crop_path):
    from dermsr.evaluate.study import run_study

    register(FlakyBackend)
    try:
        results = run_study(tmp_path, images=(crop_path,), backends=("torch", "flaky-test"), runs=2,
                            repeats=3, size=32, progress=False, figures=False, compare_models=())
    finally:
        unregister("flaky-test")
    # calls: 1 = first run, 2-3 = timed (3 is corrupted), 4-6 = consistency (6 is corrupted)
    errors = [e for e in results["run_errors"] if e["backend"] == "flaky-test"]
    assert len(errors) == 1 and "timed run 2" in errors[0]["error"] and "BackendError" in errors[0]["error"]
    timing = next(t for t in results["timing"] if t["backend"] == "flaky-test")
    assert timing["n"] == 1 and timing["failed_runs"] == 1
    row = next(r for r in results["consistency"] if r["backend"] == "flaky-test")
    assert row["verdict"] == "corrupted" and row["extreme"] == 1 and row["corrupted_runs"] == [3]
    assert row["bit_identical"] is False
    md = (tmp_path / "report.md").read_text()
    assert "**1 run(s) raised an error**" in md
    assert "**Corrupted or failed runs**: flaky-test on lesion" in md
    assert "corrupted or failed runs found" in md


def test_report_text_is_escaped_in_html():
    from dermsr.evaluate.report import Callout, Paragraph, Table, to_html

    page = to_html([Paragraph("a <script>alert(1)</script> & **b**"), Callout("warning", "x < y"),
                    Table(["<h>"], [["`<c>`"]])], title="<t>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<strong>b</strong>" in page and "<code>&lt;c&gt;</code>" in page
    assert "<title>&lt;t&gt;</title>" in page


def test_speed_is_measured_as_bench_measures_it(study, runtimes):
    """Each runtime timed in a fresh process by dermsr bench's own code: the median is the median
    of the recorded runs, and the report names the runtime with the lowest median as fastest."""
    import statistics

    out, results = study
    speed = {s["backend"]: s for s in results["speed"]}
    assert set(speed) == set(results["config"]["backends_run"])
    assert {s["model"] for s in results["speed"]} == {MODEL}
    for s in speed.values():
        assert s["status"] == "ok" and len(s["times_ms"]) == results["config"]["runs"]
        assert s["median_ms"] == pytest.approx(statistics.median(s["times_ms"]))
        assert s["memory_method"] == "ru_maxrss delta, fresh process"
    fastest = min(speed.values(), key=lambda s: s["median_ms"])["backend"]
    report = (out / "report.md").read_text()
    assert f"Fastest on this machine: **{fastest}** for `{MODEL}`" in report
    # and the runtime the default backend="auto" resolves to, as dermsr info says
    from dermsr.backends import resolve_backend

    assert results["config"]["auto_backend"] == resolve_backend("auto")
    assert f'`backend="auto"` (the default) picks **{resolve_backend("auto")}** here' in report


def test_compared_models_are_scored_against_the_ground_truth(tmp_path, crop_path):
    """--compare-models puts other models beside the main one against the ground truth (each
    on every runtime, like --models): its row equals an independent recomputation, and the
    report states its own verdict."""
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    from dermsr import load_model
    from dermsr.evaluate.study import run_study

    results = run_study(tmp_path, images=(crop_path,), backends=("torch",), runs=1, size=SIZE, speed=False,
                        figures=False, progress=False, model="realesr-animevideov3-x4",
                        compare_models=("dermsr-isic-x4", "realesr-animevideov3-x4"))
    assert results["config"]["compare_models"] == ["dermsr-isic-x4"]  # the runtimes' own model is not repeated
    lr, _, gt, _ = _reference_images(crop_path)
    with torch.inference_mode():
        y = load_model("dermsr-isic-x4").to_torch()(torch.from_numpy(lr)).clamp(0, 1).numpy()[0].transpose(1, 2, 0)
    row = next(r for r in results["ground_truth"] if r["method"] == "dermsr-isic-x4")
    assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(gt, y, data_range=1.0), abs=1e-3)
    v = results["model_verdicts"]["dermsr-isic-x4"]
    assert v["metrics"]["psnr"]["better"] == (row["psnr"] > next(
        r for r in results["ground_truth"] if r["method"] == "bicubic")["psnr"])
    report = (tmp_path / "report.md").read_text()
    assert "`dermsr-isic-x4` (on `torch`) " in report  # its own verdict paragraph
    assert f"Model `dermsr-isic-x4` against the ground truth vs bicubic: **{v['verdict']}**" in report
