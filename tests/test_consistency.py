"""Repeated-run consistency: a healthy Enhancer passes, injected corruption is flagged by run."""

from __future__ import annotations

import numpy as np
import pytest

from dermsr.errors import BackendError, InputError
from dermsr.evaluate import Evaluator, check_consistency, check_many


def small_image(seed=0, h=12, w=16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3)).astype(np.uint8)


def corrupt_on(call, make_bad):
    """A function that returns its input scaled to [0, 1] except on call number ``call``."""
    count = {"n": 0}

    def fn(x):
        count["n"] += 1
        y = np.asarray(x, np.float32) / 255.0
        return make_bad(y) if count["n"] == call else y

    return fn


@pytest.fixture(scope="module")
def enhancer():
    from dermsr import Enhancer

    return Enhancer(backend="torch", threads=1)


def test_healthy_enhancer_passes(enhancer):
    x = small_image()
    report = check_consistency(enhancer.enhance, x, runs=3)
    assert report.name == "torch"  # taken from the Enhancer the method belongs to
    assert report.ok and report.corrupted_runs == []
    assert report.verdict in ("bit-identical", "consistent")
    assert all(r.shape == (48, 64, 3) and r.dtype == "uint8" for r in report.runs)
    assert report.max_deviation <= report.atol
    # the float NCHW path (Enhancer.run) as well
    nchw = (x.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
    run_report = check_consistency(enhancer.run, nchw, runs=3)
    assert run_report.ok and run_report.reference_run == 1
    assert not run_report.input_modified


def test_injected_garbage_on_third_call_is_flagged_by_name():
    x = small_image(1)
    fn = corrupt_on(3, lambda y: np.where(y > 0.5, np.float32(5.6e19), y))
    report = check_consistency(fn, x, runs=5, name="executorch")
    assert report.verdict == "corrupted" and not report.ok
    assert report.corrupted_runs == [3]
    bad = report.runs[2]
    assert bad.extreme == int(np.count_nonzero(x / 255.0 > 0.5))
    assert bad.max_abs == pytest.approx(5.6e19, rel=1e-6)
    assert bad.out_of_range == bad.extreme  # the extreme values are out of range as well
    assert not bad.identical_to_first and bad.max_deviation > 1e19
    assert all(r.identical_to_first for i, r in enumerate(report.runs) if i != 2)
    text = str(report)
    assert "executorch: CORRUPTED" in text and "executorch run 3:" in text and "5.6e+19" in text


@pytest.mark.parametrize(
    ("make_bad", "field", "words"),
    [
        (lambda y: y * np.nan, "nonfinite", "non-finite"),
        (lambda y: np.full_like(y, np.inf), "nonfinite", "non-finite"),
        (lambda y: np.zeros_like(y), "blank", "blank output"),
        (lambda y: y + 0.5, "out_of_range", "outside [0, 1]"),
    ],
)
def test_each_kind_of_corruption_is_flagged(make_bad, field, words):
    report = check_consistency(corrupt_on(2, make_bad), small_image(2), runs=3)
    assert report.corrupted_runs == [2]
    assert getattr(report.runs[1], field)
    assert words in str(report)


def test_exceptions_shape_changes_and_input_modification_are_flagged():
    def raises(y):
        raise BackendError("runtime crashed")

    report = check_consistency(corrupt_on(2, raises), small_image(3), runs=3)
    assert report.corrupted_runs == [2] and "raised BackendError: runtime crashed" in str(report)
    report = check_consistency(corrupt_on(3, lambda y: y[:-1]), small_image(3), runs=3)
    assert report.corrupted_runs == [3] and "differs from run 1" in str(report)

    def in_place(x):
        x += 1
        return x / 255.0

    report = check_consistency(in_place, small_image(3).astype(np.float32), runs=2, value_range=None)
    assert report.input_modified and report.verdict == "corrupted"
    assert "modified its input" in str(report)


def test_first_run_corrupted_uses_next_healthy_run_as_reference():
    report = check_consistency(corrupt_on(1, lambda y: y * np.nan), small_image(4), runs=3)
    assert report.reference_run == 2 and report.corrupted_runs == [1]
    assert report.runs[2].max_deviation == 0.0


def test_deviation_levels():
    x = small_image(5)
    tiny = check_consistency(corrupt_on(2, lambda y: y + np.float32(1e-6)), x, runs=3)
    assert tiny.verdict == "consistent" and tiny.ok and not tiny.bit_identical
    assert tiny.max_deviation == pytest.approx(1e-6, rel=0.1)
    big = check_consistency(corrupt_on(2, lambda y: np.clip(y + np.float32(0.01), 0, 1)), x, runs=3)
    assert big.verdict == "inconsistent" and not big.ok and big.corrupted_runs == []
    assert "runs differ by up to" in str(big)
    same = check_consistency(corrupt_on(0, None), x, runs=3)
    assert same.verdict == "bit-identical" and same.max_deviation == 0.0


def test_unclamped_raw_output_and_integer_and_tensor_outputs():
    import torch

    x = small_image(6)
    overshoot = lambda v: v / 255.0 * 1.02 - 0.01  # noqa: E731 - raw model overshoot
    assert check_consistency(overshoot, x, runs=2).verdict == "corrupted"
    assert check_consistency(overshoot, x, runs=2, value_range=None).ok
    assert check_consistency(overshoot, x, runs=2, range_tol=0.05).ok
    assert check_consistency(lambda v: v.copy(), x, runs=2).ok  # uint8 is scaled by 1/255
    t = torch.from_numpy(x.transpose(2, 0, 1)).float() / 255
    report = check_consistency(lambda v: v * 2, t, runs=2)
    assert report.corrupted_runs == [1, 2] and report.runs[0].dtype == "float32"


def test_check_many_and_evaluator():
    x = small_image(7)
    reports = check_many(
        {"torch": corrupt_on(0, None), "executorch": corrupt_on(2, lambda y: y * np.nan)}, x, runs=3
    )
    assert {k: r.ok for k, r in reports.items()} == {"torch": True, "executorch": False}
    assert reports["executorch"].name == "executorch"
    assert Evaluator(metrics=["psnr"]).consistency(corrupt_on(0, None), x, runs=2).ok
    d = reports["executorch"].as_dict()
    assert d["corrupted_runs"] == [2] and d["runs"][1]["nonfinite"] == x.size


def test_argument_validation():
    with pytest.raises(InputError, match="callable"):
        check_consistency(42, np.zeros(3))
    with pytest.raises(InputError, match="runs"):
        check_consistency(np.sqrt, np.zeros(3), runs=0)
    with pytest.raises(InputError, match="value_range"):
        check_consistency(np.sqrt, np.zeros(3), value_range=(1, 0))
    with pytest.raises(InputError, match="atol"):
        check_consistency(np.sqrt, np.zeros(3), atol=-1)
