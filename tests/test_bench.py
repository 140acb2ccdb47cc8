"""The benchmark core, ``dermsr bench`` and the ASV suite (no timed assertions)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from _support import tiny_model
from dermsr import bench
from dermsr.backends import Availability, Backend, register, unregister
from dermsr.errors import InputError

REPO = Path(__file__).resolve().parents[1]


class _Absent(Backend):
    """A registered backend whose runtime is missing."""

    name = "absent-runtime-for-tests"

    def availability(self) -> Availability:
        return Availability(self.name, False, None, "its runtime is not installed (test double)")

    def load(self, model, options):  # pragma: no cover - never reached
        raise AssertionError("an unavailable backend must not be loaded")


@pytest.fixture
def absent_backend():
    register(_Absent)
    yield _Absent.name
    unregister(_Absent.name)


def _hand_gflops(model, h: int, w: int) -> float:
    """2 × MACs of every 3×3 convolution, from the configuration alone."""
    c = model.config
    pairs = [(c.num_in_ch, c.num_feat)] + [(c.num_feat, c.num_feat)] * c.num_conv
    pairs.append((c.num_feat, c.num_out_ch * c.upscale**2))
    return sum(2 * 9 * cin * cout * h * w for cin, cout in pairs) / 1e9


def test_bench_core_fields_are_consistent():
    model = tiny_model()
    r = bench.bench_backend("torch", model, (32, 24), repeat=3, warmup=1, threads=1, peak=100.0)
    assert r.status == "ok", r.reason
    assert (r.height, r.width, r.size) == (32, 24, "24x32")
    assert len(r.times_ms) == 3 and len(r.raw_times_ms) == 3
    assert r.min_ms <= r.median_ms <= r.max_ms
    assert r.median_ms == pytest.approx(float(np.median(r.times_ms)))
    assert r.images_per_s == pytest.approx(1000.0 / r.median_ms)
    assert r.input_mpix_per_s == pytest.approx(32 * 24 / 1e6 * r.images_per_s)
    assert r.gflops_per_image == pytest.approx(model.gflops(32, 24))
    assert r.gflops_per_image == pytest.approx(_hand_gflops(model, 32, 24))
    assert r.gflops_per_s == pytest.approx(r.gflops_per_image * r.images_per_s)
    assert r.peak_fraction == pytest.approx(r.gflops_per_s / 100.0)
    assert r.overhead == pytest.approx(r.median_ms / float(np.median(r.raw_times_ms)))
    assert r.init_ms > 0 and r.peak_rss_mb >= 0 and r.tiles == 1
    assert r.resolved_backend == "torch" and r.runtime_version
    json.dumps(r.to_dict())  # serialisable
    assert bench.BenchResult.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "ncnn", "executorch"])
def test_raw_call_matches_dermsr_output(backend):
    """Each session's raw call runs the very same loaded model: its output equals Enhancer.run's."""
    from dermsr import Enhancer
    from dermsr.backends import get_backend
    from dermsr.errors import UnknownNameError

    try:
        avail = get_backend(backend).availability()
    except UnknownNameError:
        pytest.skip(f"{backend} is not registered")
    if not avail.available:
        pytest.skip(f"{backend} unavailable: {avail.reason}")
    enh = Enhancer(tiny_model(), backend=backend, tile=None)
    x = bench.make_input(20, 16, seed=3)
    y = enh.run(x)
    raw = np.asarray(bench.raw_runner(backend, enh.session)(x), dtype=np.float32).reshape(y.shape)
    np.testing.assert_allclose(np.clip(raw, 0, 1), y, atol=1e-6)


def test_sessions_without_a_raw_call_report_none():
    from dermsr.backends import SessionBase

    assert bench.raw_runner("plugin", SessionBase()) is None


def test_tiled_input_reports_no_overhead():
    r = bench.bench_backend("torch", tiny_model(), (32, 32), repeat=1, warmup=0, tile=16)
    assert r.status == "ok" and r.tiles > 1
    assert r.overhead is None and "tiled" in r.overhead_note


def test_uint8_input_times_enhance_on_a_photo(monkeypatch):
    """``input_dtype="uint8"`` times the app's path: enhance() on an HxWx3 uint8 image."""
    from dermsr import Enhancer
    from dermsr.errors import InputError

    calls = []
    original = Enhancer.enhance
    monkeypatch.setattr(Enhancer, "enhance", lambda self, img: calls.append(img) or original(self, img))
    r = bench.bench_backend("torch", tiny_model(), (20, 28), repeat=2, warmup=1, tile=8, input_dtype="uint8")
    assert r.status == "ok", r.reason
    assert (r.size, r.input_dtype, len(r.times_ms)) == ("28x20 uint8", "uint8", 2) and r.tiles > 1
    assert r.overhead is None and "uint8" in r.overhead_note
    assert len(calls) == 4 and all(c.dtype == np.uint8 and c.shape == (20, 28, 3) for c in calls)
    with pytest.raises(InputError, match="input_dtype"):
        bench.bench_backend("torch", tiny_model(), "8", input_dtype="int8")


def test_unavailable_and_unknown_backends_are_skipped(absent_backend):
    r = bench.bench_backend(absent_backend, tiny_model(), "16", repeat=1)
    assert r.status == "skipped" and "not installed" in r.reason
    results = bench.run_benchmarks([absent_backend, "no-such-runtime", "torch"], "16",
                                   model=tiny_model(), repeat=1, warmup=0, isolate=False)
    assert [x.status for x in results] == ["skipped", "skipped", "ok"]
    table = bench.format_table(results)
    assert "skipped: its runtime is not installed" in table and "unknown backend" in table


def test_cli_writes_valid_json(tmp_path):
    torch = pytest.importorskip("torch")
    from dermsr.cli import main

    model = tiny_model()
    weights = tmp_path / "tiny.pth"
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in model.weights.items()}, weights)
    out = tmp_path / "bench.json"
    rc = main(["bench", "--backends", "torch,no-such-runtime", "--sizes", "16", "--repeat", "2",
               "--model", str(weights), "--json", str(out), "--quiet"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert {"environment", "args", "results"} <= set(data)
    by_name = {r["backend"]: r for r in data["results"]}
    ok = by_name["torch"]
    assert ok["status"] == "ok" and ok["memory_method"].endswith("fresh process")
    assert ok["min_ms"] <= ok["median_ms"] <= ok["max_ms"]
    assert ok["gflops_per_image"] == pytest.approx(model.gflops(16, 16))
    assert by_name["no-such-runtime"]["status"] == "skipped"
    assert data["environment"]["cpu"]["cores"] >= 1


@pytest.mark.parametrize("bad", ["", "0", "axb", "1x2x3", "-4"])
def test_bad_sizes_are_input_errors(bad):
    with pytest.raises(InputError):
        bench.parse_sizes(bad)


def test_cli_rejects_bad_threads(capsys):
    from dermsr.cli import main

    assert main(["bench", "--threads", "0", "--sizes", "8", "--backends", "torch"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_peak_estimate_arithmetic():
    cpu = bench.CpuInfo("test", "GenuineIntel", 6, 4, 2000.0, "given", "avx2-fma", 32)
    assert bench.peak_gflops(None, cpu) == pytest.approx(4 * 2.0 * 32)
    assert bench.peak_gflops(1, cpu) == pytest.approx(2.0 * 32)
    assert bench.peak_gflops(64, cpu) == pytest.approx(4 * 2.0 * 32)  # capped at the cores
    unknown = bench.CpuInfo("test", "", None, 4, None, "unknown", "sse", 8)
    assert bench.peak_gflops(None, unknown) is None
    here = bench.cpu_info()
    assert here.cores >= 1 and here.flops_per_cycle in (8, 16, 32, 64)


# -- the ASV suite --------------------------------------------------------------------------
@pytest.fixture
def asv_module(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("benchmarks.bench_enhance", None)
    return importlib.import_module("benchmarks.bench_enhance")


def test_asv_suite_covers_the_built_in_runtimes_with_fixed_parameters(asv_module):
    """The parameter lists are fixed (not read from this environment's registry), so every
    commit asv builds has the same cells and asv continuous can compare them."""
    from dermsr.backends import backend_names

    backends, sizes = asv_module.EnhanceSuite.params
    builtin = {"torch", "onnxruntime", "ncnn", "executorch", "openvino"}
    assert builtin <= set(backends) and "auto" in backends and builtin <= set(backend_names())
    assert {"224", "512"} <= set(sizes)
    assert set(asv_module.PhotoSuite.params[0]) == builtin
    for cls in (asv_module.EnhanceSuite, asv_module.PhotoSuite, asv_module.QualitySuite):
        names = [n for n in dir(cls) if n.startswith(("time_", "peakmem_", "track_"))]
        assert names, cls


def test_asv_setup_skips_unavailable_backends(asv_module, absent_backend):
    with pytest.raises(NotImplementedError, match="unavailable"):
        asv_module.EnhanceSuite().setup(absent_backend, "224")
    with pytest.raises(NotImplementedError):
        asv_module.PhotoSuite().setup(absent_backend)
    with pytest.raises(NotImplementedError):
        asv_module.OverheadSuite().setup(absent_backend)


def test_asv_benchmarks_run_on_torch_with_a_tiny_size(asv_module, monkeypatch):
    suite = asv_module.EnhanceSuite()
    suite.setup("torch", "16")
    suite.time_enhance("torch", "16")
    suite.peakmem_enhance("torch", "16")

    monkeypatch.setattr(asv_module, "PHOTO_SIZE", "40x24")
    photo = asv_module.PhotoSuite()
    photo.setup("torch")
    assert photo.image.dtype == np.uint8 and photo.image.shape == (24, 40, 3)
    photo.time_enhance_photo("torch")
    photo.peakmem_enhance_photo("torch")

    monkeypatch.setattr(asv_module, "QUALITY_SIZE", 24)
    q = asv_module.QualitySuite()
    cache = q.setup_cache()
    q.setup(cache, "torch")
    assert q.track_max_abs_vs_torch(cache, "torch") <= 1e-4
    assert q.track_psnr_vs_torch(cache, "torch") >= 60
    # the PSNR it tracks is the standard one (scikit-image as the reference)
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    q.y = np.clip(q.ref + rng.normal(0, 0.01, q.ref.shape), 0, 1).astype(np.float32)
    expected = peak_signal_noise_ratio(q.ref.astype(np.float64), q.y.astype(np.float64), data_range=1.0)
    assert q.track_psnr_vs_torch(cache, "torch") == pytest.approx(expected, rel=1e-6)
