"""`dermsr study --models A,B,...`: several models side by side, checked against independent numbers.

The models are cheap: tiny SRVGGNetCompacts (4 features, 1 body convolution) written here as
``.npz`` files and loaded by path, whose outputs are recomputed with a plain NumPy/SciPy forward
pass, and the built-in ``dermsr-isic-x4`` recomputed with PyTorch. A runtime made to raise
:class:`~dermsr.errors.UnsupportedModelError` for one model is reported as not applicable.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dermsr.errors import InputError, UnsupportedModelError

SIZE = 32  # LR side: outputs 128×128
NA_MESSAGE = "onnxruntime cannot run this architecture (test double)"


def _tiny_weights(seed: int) -> dict[str, np.ndarray]:
    from dermsr.models import ModelConfig, expected_shapes

    rng = np.random.default_rng(seed)
    shapes = expected_shapes(ModelConfig(num_feat=4, num_conv=1))
    return {k: (rng.normal(0.0, 0.15, s) if len(s) > 1 else rng.uniform(0.0, 0.3, s)).astype(np.float32)
            for k, s in shapes.items()}


def _tiny_file(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.npz"
    np.savez(path, **_tiny_weights(seed))
    return path


def _tiny_forward(weights: dict[str, np.ndarray], lr: np.ndarray) -> np.ndarray:
    """SRVGGNetCompact ×4 written out in NumPy: conv, PReLU, conv, PReLU, conv, pixel shuffle,
    plus the nearest-neighbour upscaled input; clamped to [0, 1] as Enhancer.run does. HWC out."""
    from scipy.signal import correlate2d

    def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.stack([sum(correlate2d(x[i], w[o, i], mode="same") for i in range(x.shape[0])) + b[o]
                         for o in range(w.shape[0])])

    def prelu(x: np.ndarray, a: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0) + a[:, None, None] * np.minimum(x, 0)

    w = {k: v.astype(np.float64) for k, v in weights.items()}
    x = lr[0].astype(np.float64)
    h = prelu(conv(x, w["body.0.weight"], w["body.0.bias"]), w["body.1.weight"])
    h = prelu(conv(h, w["body.2.weight"], w["body.2.bias"]), w["body.3.weight"])
    h = conv(h, w["body.4.weight"], w["body.4.bias"])  # (48, H, W)
    c, hh, ww = 3, x.shape[1], x.shape[2]
    shuffled = h.reshape(c, 4, 4, hh, ww).transpose(0, 3, 1, 4, 2).reshape(c, 4 * hh, 4 * ww)
    out = shuffled + x.repeat(4, axis=1).repeat(4, axis=2)
    return np.clip(out, 0.0, 1.0).transpose(1, 2, 0)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Two 200×200 crops of bundled images (the thesis crop is then the whole image)."""
    from dermsr.data import sample_images

    folder = tmp_path_factory.mktemp("models-in")
    out = []
    for k, src_path in enumerate(sample_images()[:2]):
        src = cv2.imread(str(src_path))
        h, w = src.shape[:2]
        path = folder / f"img{k}.png"
        cv2.imwrite(str(path), src[(h - 200) // 2:(h + 200) // 2, (w - 200) // 2:(w + 200) // 2])
        out.append(path)
    return out


def _lr_and_truth(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LR input, ground truth and bicubic baseline recomputed without the study."""
    from dermsr import Degrader

    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    lr = Degrader.preset("thesis", size=SIZE).apply(rgb, seed=0).lr
    gt = cv2.resize(rgb.astype(np.float32) / 255.0, (4 * SIZE, 4 * SIZE), interpolation=cv2.INTER_AREA)
    bicubic = np.clip(cv2.resize(lr[0].transpose(1, 2, 0), (4 * SIZE, 4 * SIZE), interpolation=cv2.INTER_CUBIC),
                      0, 1)
    return lr, gt, bicubic


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory, images):
    """tiny (not applicable on onnxruntime) and dermsr-isic-x4 on torch and onnxruntime."""
    pytest.importorskip("onnxruntime")
    from dermsr.backends import get_backend
    from dermsr.evaluate.study import run_study

    tiny = _tiny_file(tmp_path_factory.mktemp("tiny"), seed=1)
    cls = type(get_backend("onnxruntime"))
    original = cls.load

    def load(self, model, options):
        if model.name == "tiny":
            raise UnsupportedModelError(NA_MESSAGE)
        return original(self, model, options)

    mp = pytest.MonkeyPatch()
    mp.setattr(cls, "load", load)
    try:
        out = tmp_path_factory.mktemp("models-out")
        results = run_study(out, images=tuple(images), backends=("torch", "onnxruntime"), runs=1, size=SIZE,
                            models=(str(tiny), "dermsr-isic-x4"), speed=False, progress=False, dpi=30)
    finally:
        mp.undo()
    return out, results, tiny


def test_not_applicable_runtime_is_recorded_and_the_study_completes(side_by_side):
    out, results, _ = side_by_side
    comparison = {m["label"]: m for m in results["model_comparison"]["models"]}
    assert list(comparison) == ["tiny", "dermsr-isic-x4"]
    tiny_rt = {r["backend"]: r for r in comparison["tiny"]["runtimes"]}
    assert tiny_rt["torch"]["status"] == "ok" and tiny_rt["torch"]["reason"] is None
    assert tiny_rt["onnxruntime"]["status"] == "n/a" and tiny_rt["onnxruntime"]["reason"] == NA_MESSAGE
    assert all(r["status"] == "ok" for r in comparison["dermsr-isic-x4"]["runtimes"])
    # n/a is not a failure: no failed runtime, no timing or consistency row, no pair to compare
    assert results["config"]["backends_failed"] == []
    assert results["config"]["backends_run"] == ["torch", "onnxruntime"]
    assert not [t for t in results["timing"] if (t["model"], t["backend"]) == ("tiny", "onnxruntime")]
    assert not [c for c in results["consistency"] if (c["model"], c["backend"]) == ("tiny", "onnxruntime")]
    assert {r["model"] for r in results["pairwise"]} == {"dermsr-isic-x4"}
    assert {(r["method"], r["backend"]) for r in results["ground_truth"] if r["method"] == "tiny"} == {("tiny", "torch")}
    md = (out / "report.md").read_text()
    assert f"Runtime `onnxruntime` is **not applicable** to `tiny` (it cannot run this architecture): {NA_MESSAGE}" in md
    assert f"`tiny` on `onnxruntime`: {NA_MESSAGE}" in md
    assert "| `tiny` | `torch` |" in md and "not applicable" in md
    row = next(r for r in _csv(out / "models.csv") if r["model"] == "tiny")
    assert row["onnxruntime_status"] == "n/a" and row["torch_status"] == "ok" and row["onnxruntime_median_ms"] == ""


def test_each_model_against_the_ground_truth_matches_an_independent_computation(side_by_side, images):
    """PSNR/SSIM/MSE of every model per image equal scikit-image on outputs recomputed without
    dermsr's runtimes (NumPy for tiny, PyTorch for dermsr-isic-x4); means, wins and verdicts follow."""
    import torch
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    from dermsr import load_model

    out, results, tiny = side_by_side
    weights = dict(np.load(tiny))
    isic = load_model("dermsr-isic-x4").to_torch()
    rows = {(r["image"], r["method"], r["backend"]): r for r in results["ground_truth"]}
    expected: dict[str, dict[str, list[float]]] = {m: {"psnr": [], "ssim": [], "mse": []}
                                                   for m in ("tiny", "dermsr-isic-x4", "bicubic")}
    for path in images:
        lr, gt, bicubic = _lr_and_truth(path)
        with torch.inference_mode():
            y_isic = isic(torch.from_numpy(lr)).clamp(0, 1).numpy()[0].transpose(1, 2, 0)
        for method, y in (("tiny", _tiny_forward(weights, lr)), ("dermsr-isic-x4", y_isic), ("bicubic", bicubic)):
            g, y64 = gt.astype(np.float64), y.astype(np.float64)
            values = {"psnr": peak_signal_noise_ratio(g, y64, data_range=1.0),
                      "ssim": structural_similarity(g, y64, data_range=1.0, channel_axis=2, gaussian_weights=True,
                                                    sigma=1.5, use_sample_covariance=False),
                      "mse": mean_squared_error(g, y64)}
            row = rows[(path.stem, method, None if method == "bicubic" else "torch")]
            for k, v in values.items():
                assert row[k] == pytest.approx(v, rel=1e-4, abs=2e-3 if k == "psnr" else 1e-6), (path.stem, method, k)
                expected[method][k].append(row[k])
    comparison = {m["label"]: m for m in results["model_comparison"]["models"]}
    base = results["model_comparison"]["baseline"]
    csv_rows = {r["model"]: r for r in _csv(out / "models.csv")}
    for k in ("psnr", "ssim", "mse"):
        assert base[k] == pytest.approx(statistics.fmean(expected["bicubic"][k]))
        assert float(csv_rows["bicubic"][k]) == base[k]
    for label in ("tiny", "dermsr-isic-x4"):
        m = comparison[label]
        assert m["reference"] == "torch"
        for k in ("psnr", "ssim", "mse"):
            s = m["scores"][k]
            assert s["mean"] == pytest.approx(statistics.fmean(expected[label][k]))
            higher = k != "mse"
            wins = sum((a > b) if higher else (a < b) for a, b in zip(expected[label][k], expected["bicubic"][k],
                                                                        strict=True))
            assert (s["wins"], s["images"]) == (wins, 2)
            assert float(csv_rows[label][k]) == s["mean"] and int(csv_rows[label][f"{k}_wins"]) == wins
        better = [s["better"] for s in m["scores"].values()]
        assert m["verdict"] == ("helps" if all(better) else "does not help" if not any(better) else "mixed")
        assert results["model_verdicts"][label]["verdict"] == m["verdict"]
    assert results["verdict"] == results["model_verdicts"]["tiny"]  # the first model is the main one


def test_report_puts_the_models_side_by_side(side_by_side):
    from dermsr.evaluate.report import fmt_metric

    out, results, _ = side_by_side
    md = (out / "report.md").read_text()
    c = results["model_comparison"]
    # the means table: bicubic as a row, each model with its numbers, the best in bold
    lines = md.splitlines()
    head = lines.index("**Mean over 2 image(s), each model on its reference runtime (best in bold)**")
    table = lines[head + 4: head + 7]  # caption, blank, header, separator, then the rows
    assert table[0].startswith("| **bicubic baseline** |")
    psnrs = {"bicubic": c["baseline"]["psnr"], **{m["label"]: m["scores"]["psnr"]["mean"] for m in c["models"]}}
    best = max(psnrs, key=psnrs.get)
    for line, label in zip(table, ("bicubic", "tiny", "dermsr-isic-x4"), strict=True):
        cell = fmt_metric("psnr", psnrs[label])
        assert (f"**{cell}**" if label == best else f" {cell} ") in line
    assert "**Images on which each model beats bicubic**" in md
    tiny = next(m for m in c["models"] if m["label"] == "tiny")
    assert f"| `tiny` | {tiny['scores']['mse']['wins']} of 2 |" in md
    assert "**PSNR (dB) per image (higher is better; best in bold)**" in md
    # speed per model: the in-process medians here (--no-speed), n/a where the runtime cannot run it
    assert "Speed per model: median of the in-process timed runs" in md
    runs = [t for r in results["timing"] if (r["model"], r["backend"]) == ("tiny", "torch") for t in r["runs_s"]]
    torch_ms = next(r for r in tiny["runtimes"] if r["backend"] == "torch")["inprocess_median_ms"]
    assert torch_ms == pytest.approx(statistics.median(runs) * 1000.0)
    assert f"| `tiny` | `torch` | {torch_ms:.1f} | {torch_ms:.1f} | not applicable |" in md
    # the same crop of every model, bicubic and the ground truth, per image, embedded in the HTML
    figs = [f for f in results["figures"] if f["kind"] == "models"]
    assert [f["image"] for f in figs] == ["img0", "img1"]
    assert all("`tiny` on torch" in f["caption"] and "`dermsr-isic-x4` on torch" in f["caption"] for f in figs)
    page = (out / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == len(results["figures"])
    # every model's runtime figures carry its name
    assert {f["model"] for f in results["figures"] if f["kind"] == "grid"} == {"tiny", "dermsr-isic-x4"}
    assert results["schema"] == "dermsr.study/2"
    json.loads((out / "results.json").read_text())  # strict JSON


def test_speed_per_model_and_runtime_and_unique_labels(tmp_path, images):
    """Two different models both called "tiny": labels tiny and tiny-2, each timed in its own fresh
    process; the comparison's medians are the speed rows' and the fastest is named per model."""
    from dermsr.evaluate.study import run_study

    a, b = _tiny_file(tmp_path / "a", seed=2), _tiny_file(tmp_path / "b", seed=3)
    results = run_study(tmp_path / "out", images=(images[0],), backends=("torch",), runs=2, repeats=0, size=16,
                        models=(str(a), str(b), str(a)), figures=False, progress=False)
    labels = [m["label"] for m in results["config"]["models"]]
    assert labels == ["tiny", "tiny-2"]  # the same weights twice are studied once
    speed = {(s["model"], s["backend"]): s for s in results["speed"]}
    assert set(speed) == {("tiny", "torch"), ("tiny-2", "torch")}
    for m in results["model_comparison"]["models"]:
        s = speed[(m["label"], "torch")]
        assert s["status"] == "ok" and len(s["times_ms"]) == 2
        assert m["runtimes"][0]["median_ms"] == s["median_ms"] == pytest.approx(statistics.median(s["times_ms"]))
    assert results["model_comparison"]["fresh_speed"] is True
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Fastest on this machine: **torch** for `tiny`" in md and "**torch** for `tiny-2`" in md
    assert "Skipped (`--repeats 0`)" in md and results["consistency"] == []
    assert "--models" in results["config"]["command"] and "--repeats 0" in results["config"]["command"]


def test_cli_models_with_progress_per_model_runtime_and_image(tmp_path, images, capsys):
    from dermsr.cli import main

    tiny = _tiny_file(tmp_path / "m", seed=4)
    code = main(["study", str(images[0]), str(images[1]), "--out", str(tmp_path / "out"), "--backends", "torch",
                 "--models", f"{tiny},dermsr-isic-x4", "--runs", "1", "--repeats", "0", "--size", "16",
                 "--no-speed", "--no-figures"])
    assert code == 0
    err = capsys.readouterr().err
    for image in ("img0", "img1"):
        for model in ("tiny", "dermsr-isic-x4"):
            assert f"{image}: {model} on torch" in err
    assert "with tiny, dermsr-isic-x4" in err
    rows = _csv(tmp_path / "out" / "models.csv")
    assert [r["model"] for r in rows] == ["bicubic", "tiny", "dermsr-isic-x4"]
    # --models lists every model: with --model or --compare-models it is refused before anything runs
    assert main(["study", "--out", str(tmp_path / "x"), "--models", "dermsr-blind-x4",
                 "--model", "dermsr-isic-x4"]) == 2
    assert "--models lists every model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_unsupported_model_at_enhancer_construction_is_not_applicable(monkeypatch):
    """The contract: Enhancer(model, backend=b) raises UnsupportedModelError; run_backend reports it."""
    import dermsr.enhance as enhance
    from dermsr.evaluate.study import run_backend

    class Refusing:
        def __init__(self, *a, **k):
            raise UnsupportedModelError("no such architecture here")

    monkeypatch.setattr(enhance, "Enhancer", Refusing)
    run = run_backend("torch", "dermsr-isic-x4", np.zeros((1, 3, 8, 8), np.float32), runs=1, repeats=2, threads=None,
                      image="x", label="isic")
    assert (run.unsupported, run.error, run.output, run.model) == ("no such architecture here", None, None, "isic")
    assert issubclass(UnsupportedModelError, InputError)


def test_models_configuration_is_checked():
    from dermsr.evaluate.study import StudyConfig

    with pytest.raises(InputError, match="non-empty tuple"):
        StudyConfig(models="dermsr-blind-x4")
    with pytest.raises(InputError, match="non-empty tuple"):
        StudyConfig(models=())
    with pytest.raises(InputError, match="got 3"):
        StudyConfig(models=("dermsr-blind-x4", 3))
    with pytest.raises(InputError, match="not both"):
        StudyConfig(models=("dermsr-blind-x4",), model="dermsr-isic-x4")
    with pytest.raises(InputError, match="not both"):
        StudyConfig(models=("dermsr-blind-x4",), compare_models=())
    with pytest.raises(InputError, match=r"0 .* or at least 2"):
        StudyConfig(repeats=1)
    assert StudyConfig(repeats=0).n_repeats == 0
    assert StudyConfig(models=["a", "b"]).models == ("a", "b")
    assert StudyConfig(model="m", compare_models=("c",)).model_specs == ("m", "c")


def test_models_of_different_scales_are_refused(tmp_path):
    from dermsr.evaluate.study import run_study

    with pytest.raises(InputError, match="different scales"):
        run_study(tmp_path, backends=("torch",), models=("realesr-animevideov3-x4", "realesr-animevideov3-x2"),
                  progress=False)


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
