"""One model on one runtime on one image: timed runs, the consistency check, and their cache."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UnsupportedModelError
from .config import _CACHE_VERSION, BackendRun, _dermsr_version
from .scoring import _sane_range, consistency_row


def run_backend(
    name: str,
    model: Any,
    x: np.ndarray,
    *,
    runs: int,
    repeats: int,
    threads: int | None,
    image: str = "",
    label: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BackendRun:
    """Initialise ``name``, time ``runs`` inference-only calls of :meth:`Enhancer.run` on
    ``x`` after the first (warm-up) call, then make ``repeats`` raw session runs (unchecked,
    unclamped) for the consistency check (none when ``repeats`` is 0).

    A runtime that cannot run the model's architecture (:class:`~dermsr.errors.UnsupportedModelError`,
    from the Enhancer or from loading the session) comes back with ``unsupported`` set; any
    other failure to load with ``error`` set. ``progress(step)`` is told each step as it starts.
    """
    from ...enhance import Enhancer

    def step(text: str) -> None:
        if progress is not None:
            progress(text)

    result = BackendRun(name, image, None, model=label if label is not None else str(getattr(model, "name", model)))
    t0 = time.perf_counter()
    step("initialising")
    try:
        enhancer = Enhancer(model, backend=name, threads=threads)
        enhancer.session  # noqa: B018 - loads the runtime (exporting/compiling the model if needed)
    except UnsupportedModelError as exc:  # not a failure: this runtime does not run this architecture
        result.unsupported = str(exc)
        return result
    except Exception as exc:  # a broken runtime must not stop the study; it is reported
        result.error = f"could not load: {type(exc).__name__}: {exc}"
        return result
    try:
        enhancer.run(x)  # the first run, part of initialisation
    except Exception as exc:
        result.errors.append(f"first run: {type(exc).__name__}: {exc}")
    result.init_s = time.perf_counter() - t0

    for i in range(runs):
        step(f"timed run {i + 1}/{runs}")
        t = time.perf_counter()
        try:
            y = enhancer.run(x)
        except Exception as exc:  # e.g. BackendError: corrupted output
            result.errors.append(f"timed run {i + 1}: {type(exc).__name__}: {exc}")
            continue
        result.runs_s.append(time.perf_counter() - t)
        if result.output is None:
            result.output = y
    if repeats:
        from ..consistency import check_consistency

        step(f"{repeats} repeated runs")
        report = check_consistency(enhancer.session.run, x, runs=repeats, name=name,
                                   value_range=_sane_range(), range_tol=0.0)
        result.consistency = consistency_row(report)
    return result


def cache_key(parts: dict[str, Any]) -> str:
    """A short hash of everything a cached result depends on."""
    blob = json.dumps({"v": _CACHE_VERSION, "dermsr": _dermsr_version(), **parts}, sort_keys=True,
                      default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_load(cache: Path, key: str, name: str, image: str, label: str) -> BackendRun | None:
    meta_p, out_p = cache / f"{key}.json", cache / f"{key}.npy"
    try:
        meta = json.loads(meta_p.read_text(encoding="utf-8"))
        output = np.load(out_p) if meta.get("has_output") else None
    except (OSError, ValueError):
        return None
    return BackendRun(
        name, image, output, meta.get("init_s"), list(meta.get("runs_s", [])),
        dict(meta.get("consistency", {})), meta.get("error"), list(meta.get("errors", [])), cached=True,
        model=label,
    )


def cache_store(cache: Path, key: str, run: BackendRun) -> None:
    import io as _io

    from ...io import atomic_write_bytes
    from ..report import json_safe

    if run.output is not None:
        buf = _io.BytesIO()
        np.save(buf, run.output, allow_pickle=False)
        atomic_write_bytes(cache / f"{key}.npy", buf.getvalue())
    meta = {
        "backend": run.backend, "image": run.image, "init_s": run.init_s, "runs_s": run.runs_s,
        "consistency": run.consistency, "error": run.error, "errors": run.errors, "has_output": run.output is not None,
    }
    atomic_write_bytes(cache / f"{key}.json", json.dumps(json_safe(meta)).encode())
