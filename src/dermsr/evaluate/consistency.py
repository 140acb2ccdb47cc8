"""Repeated-run consistency: does a runtime give the same, sane output every time?

The reference study saw an ExecuTorch app return, now and then, corrupted images (values
such as 5.6e19, or all black) for the same input. :func:`check_consistency` calls a function
``runs`` times on one input and records, per run: non-finite values, values outside the
expected range (default [0, 1] with a tolerance of 1e-3), extreme values (|v| > 1e3),
blank (constant) output for a non-constant input, exceptions, shape changes, whether the
output is bit-identical to the first run's and its largest deviation from the first healthy
run. The verdict, from worst to best:

``"corrupted"``
    some run raised, returned non-finite / extreme / out-of-range / blank output, changed
    shape, or the function modified its input; those runs are named in the report;
``"inconsistent"``
    every run is sane but some differ from the first healthy run by more than ``atol``;
``"consistent"``
    runs differ, by at most ``atol``;
``"bit-identical"``
    every run returned exactly the same bytes.

Integer outputs (uint8, uint16) are divided by their dtype's maximum before the checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import check_int

__all__ = [
    "DEFAULT_ATOL",
    "EXTREME_VALUE",
    "RANGE_TOLERANCE",
    "ConsistencyReport",
    "RunRecord",
    "check_consistency",
    "check_many",
]

#: Largest deviation between runs still called consistent (on the [0, 1] scale; 1/255 ≈ 0.0039).
DEFAULT_ATOL = 1e-4
#: Tolerance on the expected value range, for rounding and a model's tiny overshoot.
RANGE_TOLERANCE = 1e-3
#: Magnitude beyond which a finite value is garbage, not overshoot (the study saw 5.6e19).
EXTREME_VALUE = 1e3


@dataclass(frozen=True)
class RunRecord:
    """What one run returned. ``index`` counts from 1."""

    index: int
    shape: tuple[int, ...] | None
    dtype: str | None
    nonfinite: int = 0
    out_of_range: int = 0
    extreme: int = 0
    blank: bool = False
    max_abs: float = float("nan")  # largest |value| among finite values
    identical_to_first: bool = False
    max_deviation: float = float("nan")  # from the first healthy run
    error: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def corrupted(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class ConsistencyReport:
    """The outcome of :func:`check_consistency`; ``str(report)`` is a one-paragraph summary."""

    name: str
    verdict: str
    runs: tuple[RunRecord, ...]
    bit_identical: bool
    max_deviation: float
    reference_run: int | None  # index of the first healthy run, None if none was healthy
    atol: float
    input_modified: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when every run is sane and within ``atol`` of the others."""
        return self.verdict in ("bit-identical", "consistent")

    @property
    def corrupted_runs(self) -> list[int]:
        """Indices (from 1) of the runs with corrupted output."""
        return [r.index for r in self.runs if r.corrupted]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["corrupted_runs"] = self.corrupted_runs
        return d

    def summary(self) -> str:
        head = (
            f"{self.name}: {self.verdict.upper()} over {len(self.runs)} runs "
            f"(max deviation {self.max_deviation:.3g}, atol {self.atol:g})"
        )
        lines = [head]
        lines += [f"  {self.name} run {r.index}: {'; '.join(r.problems)}" for r in self.runs if r.problems]
        lines += [f"  {self.name}: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = summary


def _to_numpy(y: Any) -> np.ndarray:
    if type(y).__module__.startswith("torch") and hasattr(y, "detach"):
        t = y.detach().to("cpu")
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return t.numpy().copy()
    return np.array(y, copy=True)


def _snapshot(x: Any) -> np.ndarray | None:
    try:
        return _to_numpy(x)
    except Exception:  # an input we cannot copy: we cannot tell whether it was modified
        return None


def _unit_scale(arr: np.ndarray) -> np.ndarray:
    """float64 values; unsigned integer images (uint8, uint16) divided by their maximum."""
    if arr.dtype.kind == "u":
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    return arr.astype(np.float64)


def _is_constant(a: np.ndarray | None) -> bool:
    if a is None or a.size == 0 or a.dtype.kind not in "uifb":
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.nanmax(a) == np.nanmin(a)) if np.isfinite(a).any() else True


def _inspect(
    index: int,
    out: np.ndarray,
    value_range: tuple[float, float] | None,
    range_tol: float,
    extreme: float,
    input_constant: bool,
) -> dict[str, Any]:
    v = _unit_scale(out)
    finite = np.isfinite(v)
    n_nonfinite = int(v.size - np.count_nonzero(finite))
    fv = v[finite]
    max_abs = float(np.abs(fv).max()) if fv.size else float("nan")
    n_extreme = int(np.count_nonzero(np.abs(fv) > extreme))
    n_out = 0
    if value_range is not None:
        lo, hi = value_range
        n_out = int(np.count_nonzero((fv < lo - range_tol) | (fv > hi + range_tol)))
    blank = bool(v.size > 1 and n_nonfinite == 0 and fv.max() == fv.min() and not input_constant)
    problems = []
    if n_nonfinite:
        problems.append(f"{n_nonfinite} non-finite value(s) (NaN/inf)")
    if n_extreme:
        problems.append(f"{n_extreme} extreme value(s) (|v| > {extreme:g}; max |v| {max_abs:.3g})")
    if n_out:
        lo, hi = value_range  # type: ignore[misc]
        problems.append(f"{n_out} value(s) outside [{lo:g}, {hi:g}] ± {range_tol:g}")
    if blank:
        problems.append(f"blank output (every value {float(fv.flat[0]):.4g}) for a non-constant input")
    return {
        "index": index,
        "shape": tuple(out.shape),
        "dtype": out.dtype.name,
        "nonfinite": n_nonfinite,
        "out_of_range": n_out,
        "extreme": n_extreme,
        "blank": blank,
        "max_abs": max_abs,
        "problems": problems,
    }


def _default_name(fn: Callable[..., Any]) -> str:
    owner = getattr(fn, "__self__", None)
    backend = getattr(owner, "backend_name", None) or getattr(owner, "backend", None)
    if isinstance(backend, str):
        return backend
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def check_consistency(
    fn: Callable[[Any], Any],
    x: Any,
    *,
    runs: int = 5,
    name: str | None = None,
    value_range: tuple[float, float] | None = (0.0, 1.0),
    range_tol: float = RANGE_TOLERANCE,
    extreme: float = EXTREME_VALUE,
    atol: float = DEFAULT_ATOL,
) -> ConsistencyReport:
    """Call ``fn(x)`` ``runs`` times and report whether the outputs are sane and agree.

    ``fn`` is anything that maps the input to an image-like array or tensor: an
    :class:`~dermsr.Enhancer`'s ``run`` or ``enhance``, or a raw runtime session's ``run``
    (pass ``value_range=None`` or a larger ``range_tol`` for unclamped raw output, which may
    overshoot [0, 1] slightly). Exceptions inside ``fn`` are recorded as failed runs.

    >>> calls = []
    >>> def flaky(x):
    ...     calls.append(1)
    ...     return x * 5.6e19 if len(calls) == 3 else x.copy()
    >>> report = check_consistency(flaky, np.linspace(0, 1, 16), runs=4, name="flaky")
    >>> report.verdict, report.corrupted_runs
    ('corrupted', [3])
    >>> check_consistency(np.sqrt, np.linspace(0, 1, 16), runs=3).verdict
    'bit-identical'
    """
    if not callable(fn):
        raise InputError(f"expected a callable, got {type(fn).__name__}")
    check_int(runs, "runs", lo=1)
    if value_range is not None and (len(value_range) != 2 or not value_range[0] < value_range[1]):
        raise InputError(f"value_range must be None or (low, high) with low < high, got {value_range!r}")
    for label, value in (("range_tol", range_tol), ("extreme", extreme), ("atol", atol)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not value >= 0:
            raise InputError(f"{label} must be a number >= 0, got {value!r}")
    label = name if name is not None else _default_name(fn)
    before = _snapshot(x)
    input_constant = _is_constant(_unit_scale(before) if before is not None else None)

    infos: list[dict[str, Any]] = []
    outputs: list[np.ndarray | None] = []
    for i in range(1, int(runs) + 1):
        try:
            out = _to_numpy(fn(x))
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            infos.append({"index": i, "shape": None, "dtype": None, "error": msg,
                          "problems": [f"raised {msg}"]})
            outputs.append(None)
            continue
        infos.append(_inspect(i, out, value_range, float(range_tol), float(extreme), input_constant))
        outputs.append(out)

    first = outputs[0]
    ref_i = next((k for k, info in enumerate(infos) if not info["problems"]), None)
    ref = _unit_scale(outputs[ref_i]) if ref_i is not None else None  # type: ignore[arg-type]
    records: list[RunRecord] = []
    for info, out in zip(infos, outputs, strict=True):
        identical = (
            out is not None
            and first is not None
            and out.shape == first.shape
            and out.dtype == first.dtype
            and out.tobytes() == first.tobytes()
        )
        deviation = float("nan")
        if out is not None and ref is not None:
            if out.shape != ref.shape:
                info["problems"].append(
                    f"shape {out.shape} differs from run {ref_i + 1}'s {ref.shape}"  # type: ignore[operator]
                )
                deviation = float("inf")
            else:
                with np.errstate(invalid="ignore", over="ignore"):
                    diff = np.abs(_unit_scale(out) - ref)
                deviation = float("inf") if not np.all(np.isfinite(diff)) else float(diff.max(initial=0.0))
        records.append(
            RunRecord(
                index=info["index"],
                shape=info["shape"],
                dtype=info["dtype"],
                nonfinite=info.get("nonfinite", 0),
                out_of_range=info.get("out_of_range", 0),
                extreme=info.get("extreme", 0),
                blank=info.get("blank", False),
                max_abs=info.get("max_abs", float("nan")),
                identical_to_first=bool(identical),
                max_deviation=deviation,
                error=info.get("error"),
                problems=tuple(info["problems"]),
            )
        )

    after = _snapshot(x)
    input_modified = before is not None and after is not None and (
        before.shape != after.shape or before.tobytes() != after.tobytes()
    )
    notes: list[str] = []
    if input_modified:
        notes.append("the function modified its input in place")
    if ref_i is None:
        notes.append("no run returned healthy output")
    healthy = [r for r in records if not r.problems]
    max_dev = max((r.max_deviation for r in records if not np.isnan(r.max_deviation)), default=float("nan"))
    bit_identical = all(r.identical_to_first for r in records)
    if input_modified or len(healthy) < len(records):
        verdict = "corrupted"
    elif bit_identical:
        verdict = "bit-identical"
    elif max_dev <= atol:
        verdict = "consistent"
    else:
        verdict = "inconsistent"
        notes.append(f"runs differ by up to {max_dev:.3g} (> atol {atol:g})")
    return ConsistencyReport(
        name=label,
        verdict=verdict,
        runs=tuple(records),
        bit_identical=bit_identical,
        max_deviation=max_dev,
        reference_run=None if ref_i is None else ref_i + 1,
        atol=float(atol),
        input_modified=bool(input_modified),
        notes=tuple(notes),
    )


def check_many(
    functions: Mapping[str, Callable[[Any], Any]], x: Any, **options: Any
) -> dict[str, ConsistencyReport]:
    """:func:`check_consistency` for each named function (e.g. one per runtime) on one input.

    >>> reports = check_many({"a": np.sqrt, "b": lambda v: v * np.nan}, np.ones(4), runs=2)
    >>> {k: r.verdict for k, r in reports.items()}
    {'a': 'bit-identical', 'b': 'corrupted'}
    """
    if not isinstance(functions, Mapping) or not functions:
        raise InputError("expected a non-empty mapping of name -> callable")
    return {str(k): check_consistency(fn, x, name=str(k), **options) for k, fn in functions.items()}
