"""Reduced precision: the precision option, int8 quantization, its fidelity gate and cache keys.

References are independent of the code under test: the fp32 graph run by the runtimes' own
APIs (``onnxruntime.InferenceSession``, ``openvino.Core``), PyTorch's fp32 module, and the
ONNX graph structure read with ``onnx``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from _support import tiny_model
from dermsr import Enhancer
from dermsr.errors import FidelityError, InputError
from dermsr.machine import missing_modules

needs_onnx = pytest.mark.skipif(bool(missing_modules(("onnxruntime", "onnx", "onnxscript"))),
                                reason="pip install 'dermsr[onnx]'")
needs_openvino = pytest.mark.skipif(bool(missing_modules(("openvino", "onnxruntime", "onnx", "onnxscript"))),
                                    reason="pip install 'dermsr[openvino]'")


def _psnr(a, b) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _images(folder: Path, values, size=(96, 128)) -> Path:
    from dermsr.io import write_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, v in enumerate(values):
        img = np.clip(v + rng.normal(0, 3, (*size, 3)), 0, 255).astype(np.uint8)
        write_image(folder / f"img{i}.png", img)
    return folder


@pytest.fixture(scope="module")
def real_lr(shared: Path) -> np.ndarray:
    """A 96×80 crop of a real ISIC image that is not among the bundled (calibration) images,
    downsized ×8 (area), as float32 NCHW."""
    import cv2

    bgr = cv2.imread(str(shared / "data" / "dermoscopy" / "ISIC_0000000.jpg"))
    h, w = bgr.shape[:2]
    small = cv2.resize(bgr, (w // 8, h // 8), interpolation=cv2.INTER_AREA)
    cy, cx = small.shape[0] // 2, small.shape[1] // 2
    crop = small[cy - 40 : cy + 40, cx - 48 : cx + 48, ::-1]
    return np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)


@pytest.fixture(scope="module")
def torch_fp32(real_lr) -> np.ndarray:
    import torch

    from dermsr.models import load_model

    with torch.inference_mode():
        return load_model(None).to_torch()(torch.from_numpy(real_lr)).numpy()


def _openvino_backend():
    from dermsr.backends import backend_names, register
    from dermsr.enhance.backends.openvino import OpenVINOBackend

    if "openvino" not in backend_names():  # an editable install made before the entry point
        register(OpenVINOBackend)
    return "openvino"


# -- the option ---------------------------------------------------------------------------------
def test_default_precision_is_fp32_and_auto_is_unchanged():
    from dermsr.enhance.enhancer import AUTO_ORDER

    e = Enhancer(backend="auto")
    assert e.options.precision == "fp32"
    assert e.backend_name in AUTO_ORDER
    assert e.backend_name == Enhancer(backend="auto", precision="fp32").backend_name


@pytest.mark.parametrize("bad", ["fp8", "FP32", 8, None])
def test_unknown_precision_is_an_input_error(bad):
    with pytest.raises(InputError, match="precision must be one of fp32, bf16, fp16, int8"):
        Enhancer(precision=bad)


def test_unsupported_combination_names_what_is_supported():
    with pytest.raises(InputError) as err:
        Enhancer(backend="ncnn", precision="int8")
    msg = str(err.value)
    assert "'ncnn' does not run precision 'int8'" in msg and "it runs: fp32" in msg
    assert "onnxruntime" in msg.split("int8 runs on:")[1]


def test_calibration_only_with_int8():
    with pytest.raises(InputError, match="calibration is only used with precision='int8'"):
        Enhancer(backend="torch", precision="bf16", calibration="somewhere")


def test_fp16_on_the_cpu_is_refused_when_the_session_is_built():
    e = Enhancer(backend="torch", precision="fp16")
    with pytest.raises(InputError, match="needs a CUDA device"):
        e.run(np.zeros((1, 3, 8, 8), np.float32))


def test_auto_with_a_reduced_precision_picks_a_backend_that_runs_it():
    from dermsr.backends import get_backend

    e = Enhancer(backend="auto", precision="bf16")
    assert "bf16" in get_backend(e.backend_name).precisions


# -- torch bf16 -----------------------------------------------------------------------------
def test_torch_bf16_agrees_with_fp32(real_lr, torch_fp32):
    y = Enhancer(backend="torch", precision="bf16").run(real_lr)
    assert y.dtype == np.float32 and y.shape == torch_fp32.shape
    assert 50 <= _psnr(y, torch_fp32) < 200  # measured 58-73 dB; not fp32 in disguise


# -- the recipe -------------------------------------------------------------------------------
@needs_onnx
def test_residual_float_recipe_keeps_the_skip_path_and_body_output_float(tmp_path):
    import onnx

    from dermsr.export.onnx import cached_onnx
    from dermsr.export.quantize import quantize_onnx

    m = tiny_model(num_conv=3)
    tiles = [np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32) for i in range(4)]
    g = onnx.load_from_string(quantize_onnx(cached_onnx(m), tiles)).graph
    producer = {o: n for n in g.node for o in n.output}
    init = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type in ("Resize", "Add", "DepthToSpace"):
            for i in n.input:
                assert i not in producer or producer[i].op_type != "DequantizeLinear", (n.op_type, i)
    resize = next(n for n in g.node if n.op_type == "Resize")
    assert resize.input[0] == g.input[0].name  # the skip path reads the float input itself
    convs = [n for n in g.node if n.op_type == "Conv"]
    dq_fed = [c for c in convs if c.input[0] in producer and producer[c.input[0]].op_type == "DequantizeLinear"]
    assert convs[0] not in dq_fed and convs[-1] not in dq_fed and len(dq_fed) == len(convs) - 2
    # the first quantized activation is the body's, never the image: no quantizer reads the input
    q_inputs = [n.input[0] for n in g.node if n.op_type == "QuantizeLinear"]
    assert g.input[0].name not in q_inputs and q_inputs
    scales = [float(init[n.input[1]]) for n in g.node if n.op_type == "QuantizeLinear"]
    assert all(s > 0 for s in scales)


@needs_onnx
def test_openvino_graph_drops_only_the_conv_output_quantizers():
    import onnx

    from dermsr.export.onnx import cached_onnx
    from dermsr.export.quantize import quantize_onnx, without_conv_output_quantizers

    m = tiny_model(num_conv=3)
    tiles = [np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32) for i in range(4)]
    qdq = quantize_onnx(cached_onnx(m), tiles)
    g = onnx.load_from_string(without_conv_output_quantizers(qdq)).graph
    producer = {o: n for n in g.node for o in n.output}
    prelus = [n for n in g.node if n.op_type == "PRelu"]
    assert prelus and all(producer[n.input[0]].op_type == "Conv" for n in prelus)
    before = onnx.load_from_string(qdq).graph
    n_dq_convs = [sum(1 for c in gr.node if c.op_type == "Conv" and c.input[0] in prod
                      and prod[c.input[0]].op_type == "DequantizeLinear")
                  for gr, prod in ((before, {o: n for n in before.node for o in n.output}), (g, producer))]
    assert n_dq_convs[0] == n_dq_convs[1] > 0  # the convolutions' int8 inputs are untouched
    x = np.random.default_rng(9).random((1, 3, 12, 12), dtype=np.float32)
    import onnxruntime as ort

    y = ort.InferenceSession(without_conv_output_quantizers(qdq), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    y0 = ort.InferenceSession(qdq, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert y.shape == y0.shape and _psnr(y, y0) > 30  # the same network, one rounding fewer


@needs_onnx
def test_naive_int8_with_a_bad_calibration_is_refused_and_not_cached(tmp_path):
    """A deliberately broken quantization: every operator quantized (skip path included),
    calibrated on dark, flat images, so brighter inputs are clipped: the gate must refuse it."""
    from dermsr.export.cache import cache_dir
    from dermsr.export.quantize import int8_onnx

    dark = _images(tmp_path / "dark", [10, 12, 14, 16])
    with pytest.raises(FidelityError, match=r"refused: worst PSNR vs fp32 .* dB .* below the 45 dB threshold"):
        int8_onnx(tiny_model(), dark, recipe="naive")
    entries = [p for p in (cache_dir() / "onnx-int8").iterdir() if p.is_dir()]
    assert not entries  # nothing refused is ever cached


@needs_onnx
def test_the_default_model_int8_naive_recipe_is_refused_on_bundled_data():
    """The obvious recipe on the real model (25-33 dB measured) fails the gate."""
    from dermsr.export.quantize import int8_onnx
    from dermsr.models import load_model

    with pytest.raises(FidelityError) as err:
        int8_onnx(load_model(None), recipe="naive")
    worst = float(str(err.value).split("worst PSNR vs fp32 ")[1].split(" dB")[0])
    assert worst < 45


@needs_onnx
def test_cache_keys_differ_by_precision_and_calibration(tmp_path):
    from dermsr.export.onnx import cached_onnx
    from dermsr.export.quantize import calibration_set, int8_onnx

    m = tiny_model()
    a = _images(tmp_path / "a", [90, 120, 160])
    b = _images(tmp_path / "b", [90, 120, 161])  # one image differs by one grey level
    assert calibration_set(a).sha256 != calibration_set(b).sha256
    assert calibration_set(a).sha256 == calibration_set(a).sha256
    fa = int8_onnx(m, a, threshold=0.0)
    fb = int8_onnx(m, b, threshold=0.0)
    fbundled = int8_onnx(m, None, threshold=0.0)
    assert len({fa, fb, fbundled, cached_onnx(m).parent}) == 4
    stamp = (fa / "model.onnx").stat().st_mtime_ns
    assert int8_onnx(m, a, threshold=0.0) == fa and (fa / "model.onnx").stat().st_mtime_ns == stamp
    record = json.loads((fa / "quantization.json").read_text())
    assert record["calibration"]["sha256"] == calibration_set(a).sha256
    assert record["precision"] == "int8" and record["fidelity"]["onnxruntime"]["passed"]


def test_calibration_set_holds_images_out_and_needs_two(tmp_path):
    from dermsr.export.quantize import calibration_set

    bundled = calibration_set(None)
    assert bundled.calibration and bundled.held_out
    assert not set(bundled.calibration) & set(bundled.held_out)
    one = _images(tmp_path / "one", [100])
    with pytest.raises(InputError, match="at least 2 images"):
        calibration_set(one)
    with pytest.raises(InputError, match="does not exist"):
        calibration_set(tmp_path / "missing")


def test_fidelity_report_and_gate():
    from dermsr.export.quantize import check_fidelity, measure_fidelity

    rng = np.random.default_rng(0)
    lr = rng.random((1, 3, 8, 8), dtype=np.float32)
    hr = rng.random((1, 3, 32, 32), dtype=np.float32)
    ref = np.full((1, 3, 32, 32), 0.5, np.float32)

    def reference(x):
        return ref

    def off_by(d):
        return lambda x: ref + d

    ok = measure_fidelity(reference, off_by(0.001), [("a", lr, hr)], precision="int8", runtime="t")
    assert ok.min_psnr_vs_fp32 == pytest.approx(60.0, abs=1e-3) and ok.passed
    assert check_fidelity(ok, "x") is ok
    bad = measure_fidelity(reference, off_by(0.01), [("a", lr, hr), ("b", lr, hr)], precision="int8", runtime="t")
    assert bad.min_psnr_vs_fp32 == pytest.approx(40.0, abs=1e-3) and not bad.passed
    with pytest.raises(FidelityError, match=r"x refused: worst PSNR vs fp32 40.00 dB .* worst crop \(a\)"):
        check_fidelity(bad, "x")


# -- every precision agrees with fp32 within its bound ------------------------------------------
@needs_onnx
def test_onnxruntime_int8_agrees_with_raw_fp32_within_its_recorded_bound(real_lr, torch_fp32):
    import onnxruntime as ort

    from dermsr.export.onnx import cached_onnx
    from dermsr.models import load_model

    e = Enhancer(backend="onnxruntime", precision="int8")
    y = e.run(real_lr)
    gate = e.session.quantization["fidelity"]["onnxruntime"]
    assert gate["passed"] and gate["min_psnr_vs_fp32"] >= gate["threshold_db"] == 45.0
    sess = ort.InferenceSession(str(cached_onnx(load_model(None))), providers=["CPUExecutionProvider"])
    raw = sess.run(None, {sess.get_inputs()[0].name: real_lr})[0]
    assert _psnr(raw, torch_fp32) > 100
    got = _psnr(y, raw)
    assert gate["threshold_db"] <= got < 90, got  # an image it never saw (46.7 dB); int8, not fp32


@needs_openvino
@pytest.mark.parametrize("precision,bound", [("fp32", 100.0), ("bf16", 50.0), ("int8", 45.0)])
def test_openvino_precisions_agree_with_fp32(precision, bound, real_lr, torch_fp32):
    import openvino as ov

    name = _openvino_backend()
    if precision == "bf16" and "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(InputError, match="bf16 units"):
            Enhancer(backend=name, precision="bf16").run(real_lr)
        return
    e = Enhancer(backend=name, precision=precision)
    y = e.run(real_lr)
    assert _psnr(y, torch_fp32) >= bound
    hint = e.session._compiled.get_property("INFERENCE_PRECISION_HINT")
    assert f"'{ {'fp32': 'float32', 'bf16': 'bfloat16', 'int8': 'float32'}[precision]}'" in str(hint)
    if precision == "int8":
        gate = e.session.quantization["fidelity"]
        assert gate["openvino"]["passed"] and gate["onnxruntime"]["passed"]


@needs_openvino
def test_openvino_refuses_what_it_cannot_run():
    name = _openvino_backend()
    with pytest.raises(InputError, match="it runs: fp32, bf16, int8"):
        Enhancer(backend=name, precision="fp16")


# -- bench and export -----------------------------------------------------------------------
def test_bench_skips_unsupported_precisions_and_measures_fidelity():
    from dermsr.bench import bench_backend, format_table, precision_summary

    skipped = bench_backend("ncnn", size="16", repeat=1, warmup=0, precision="int8")
    assert skipped.status == "skipped" and "not int8" in skipped.reason
    fp32 = bench_backend("torch", size="16", repeat=1, warmup=0, raw=False)
    bf16 = bench_backend("torch", size="16", repeat=1, warmup=0, raw=False, precision="bf16")
    assert fp32.psnr_vs_fp32 == math.inf and 50 <= bf16.psnr_vs_fp32 < 200
    table = format_table([fp32, bf16, skipped])
    assert "torch/bf16" in table and "dB vs fp32" in table and "ncnn/int8" in table
    (line,) = precision_summary([fp32, bf16, skipped])
    assert line.startswith("torch/bf16 16:") and "the fastest fp32 (torch" in line


@needs_onnx
def test_export_int8_writes_the_gated_graph_and_its_figures(tmp_path):
    import onnx
    import onnxruntime as ort

    from dermsr.cli import main
    from dermsr.export.manifest import MANIFEST_NAME

    assert main(["export", "--format", "onnx", "--precision", "int8", "--tile", "32", "40",
                 "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["precision"] == "int8" and manifest["input"]["shape"] == [1, 3, 32, 40]
    q = manifest["quantization"]
    assert q["recipe"] == "residual-float" and q["fidelity"]["onnxruntime"]["min_psnr_vs_fp32"] >= 45
    assert q["calibration"]["source"] == "dermsr bundled sample images"
    ops = {n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.zeros((1, 3, 32, 40), np.float32)})[0].shape == (1, 3, 128, 160)


def test_export_refuses_int8_for_formats_without_it(tmp_path, capsys):
    from dermsr.cli import main

    assert main(["export", "--format", "ncnn", "--precision", "int8", "--out", str(tmp_path)]) == 2
    assert "--format onnx only" in capsys.readouterr().err
