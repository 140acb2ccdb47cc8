"""Measure ExecuTorch programs with a fixed input shape against dynamic-shape ones.

For each program: export time, planned activation memory, inference time for a 224×224 crop
of a bundled ISIC image (→ 896×896) and the largest difference from PyTorch. Wall times use
all cores and are interleaved (one run of each program per round) so background load hits all
alike; the single-thread CPU times (``time.thread_time``) measure the work itself, which other
processes on a shared machine barely disturb.
The numbers in docs/backends/executorch.md come from this script::

    python examples/executorch_fixed_vs_dynamic.py --runs 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs per program (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="ExecuTorch/PyTorch threads")
    parser.add_argument("--keep-cache", action="store_true", help="reuse $DERMSR_CACHE_DIR (export times are those recorded at build)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if not args.keep_cache:
        os.environ["DERMSR_CACHE_DIR"] = tempfile.mkdtemp(prefix="dermsr-et-measure-")

    import torch

    from dermsr.data import sample_images
    from dermsr.enhance.backends.executorch import PteRunner, thread_count
    from dermsr.export.pte import PTE_NAME, REPORT_NAME, PteSpec, cached_pte
    from dermsr.io import read_image
    from dermsr.models import load_model

    model = load_model()
    net = model.to_torch()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = read_image(sample_images()[-1])  # ISIC_0000271, 1024×768
    crop = image[272:496, 400:624]
    x = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) / 255
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()

    specs = {
        "fixed 224, as-written": PteSpec((224, 224), False, "as-written"),
        "fixed 224, residual-first": PteSpec((224, 224), False, "residual-first"),
        "fixed 224, deconv": PteSpec((224, 224), False, "deconv"),
        "dynamic ≤224, residual-first (export_pte default)": PteSpec((224, 224), True, "residual-first"),
        "dynamic ≤224, deconv": PteSpec((224, 224), True, "deconv"),
        "dynamic ≤548, as-written": PteSpec((548, 548), True, "as-written"),
        "dynamic ≤548, residual-first (backend default)": PteSpec((548, 548), True, "residual-first"),
        "dynamic ≤548, deconv": PteSpec((548, 548), True, "deconv"),
    }
    rows = {}
    runners = {}
    for name, spec in specs.items():
        folder = cached_pte(model, spec)
        report = json.loads((folder / REPORT_NAME).read_text())
        runners[name] = PteRunner(folder / PTE_NAME, spec=spec, threads=args.threads)
        y = runners[name].run(x)  # warm-up
        d = report["delegation"]
        rows[name] = {
            "export_s": report["seconds"]["total"],
            "planned_MB": report["memory_planned_bytes"] / 1e6,
            "max_abs": float(np.abs(y - ref).max()),
            "xnnpack_subgraphs": d["delegated_subgraphs"],
            "portable_ops": {k: v["portable"] for k, v in d["by_operator"].items() if v["portable"]},
            "times": [],
        }
    rows["pytorch (reference)"] = {"times": [], "cpu": []}
    threads_used = thread_count()

    def timed(fn, clock):
        t0 = clock()
        fn()
        return clock() - t0

    def torch_run():
        with torch.inference_mode():
            net(torch.from_numpy(x))

    # 1) wall time with the default (or --threads) thread count, interleaved
    for _ in range(args.runs):
        for name, runner in runners.items():
            rows[name]["times"].append(timed(lambda r=runner: r.run(x), time.perf_counter))
        rows["pytorch (reference)"]["times"].append(timed(torch_run, time.perf_counter))
    # 2) CPU time of the calling thread with one thread everywhere: the work itself, barely
    #    affected by other processes on a shared machine
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for runner in runners.values():
        runner.threads = 1
        runner.run(x)  # pool reset + reload happen here, untimed
    for _ in range(args.runs):
        for name, runner in runners.items():
            rows[name].setdefault("cpu", []).append(timed(lambda r=runner: r.run(x), time.thread_time))
        rows["pytorch (reference)"]["cpu"].append(timed(torch_run, time.thread_time))
    torch.set_num_threads(torch_threads)

    print(f"ExecuTorch threads: {threads_used}, torch threads: {torch.get_num_threads()}, "
          f"cpus: {os.cpu_count()}, load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print("| program | export s | planned MB | XNNPACK subgraphs | wall ms, median (min) | 1-thread CPU ms, median | max abs vs torch | non-delegated ops |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        med = f"{statistics.median(r['times']) * 1e3:.0f} ({min(r['times']) * 1e3:.0f})"
        med += f" | {statistics.median(r['cpu']) * 1e3:.0f}"
        if "export_s" in r:
            ops = ", ".join(f"{k} {v}" for k, v in r["portable_ops"].items())
            print(f"| {name} | {r['export_s']:.1f} | {r['planned_MB']:.1f} | {r['xnnpack_subgraphs']} | "
                  f"{med} | {r['max_abs']:.2g} | {ops} |")
        else:
            print(f"| {name} | – | – | – | {med} | 0 | – |")


if __name__ == "__main__":
    main()
