"""``dermsr bench``: latency, initialisation, throughput, memory, overhead and GFLOP/s per runtime."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import InputError
from ._options import TILE_HELP, parse_tile


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench",
        help="benchmark every runtime (latency, init, throughput, memory, overhead, GFLOP/s)",
        description="Time the model on each runtime, each backend×size×threads cell in a fresh "
        "process: median/min/max inference ms after a warm-up, initialisation (load + first "
        "run), images/s and input megapixels/s, peak RSS, overhead over the runtime's raw API "
        "call, GFLOP per image and the fraction of this CPU's estimated peak. "
        "See docs/performance.md.",
    )
    p.add_argument("--backends", default=None,
                   help="comma-separated runtimes, may include 'auto' (default: every registered one)")
    p.add_argument("--sizes", default="224",
                   help="comma-separated input sizes, N or WxH (default: 224, about a minute for four "
                        "runtimes; 224,512,2048x1536 adds the tile size photos run at and a phone photo)")
    p.add_argument("--repeat", type=int, default=10, help="timed runs per cell (default: 10)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed runs after the first (initialisation) run (default: 1)")
    p.add_argument("--threads", default=None,
                   help="runtime threads, or a comma list such as 1,2 (default: the runtime's default)")
    p.add_argument("--model", default=None, help="built-in model name or weights file (default model if omitted)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (backends that support it)")
    p.add_argument("--tile", default="auto", help=TILE_HELP)
    p.add_argument("--no-raw", action="store_true", help="skip the raw runtime call comparison")
    p.add_argument("--input", choices=("float32", "uint8"), default="float32",
                   help="float32: time Enhancer.run on an NCHW tensor (default); uint8: time "
                        "Enhancer.enhance on an HxWx3 uint8 photo, the path an app takes")
    p.add_argument("--precision", default="fp32",
                   help="comma-separated precisions, e.g. fp32,bf16,int8 (default: fp32); a runtime "
                        "that does not run one is listed as skipped")
    p.add_argument("--calibration", type=Path, default=None, metavar="DIR",
                   help="int8: folder of images to calibrate on (default: the bundled samples)")
    p.add_argument("--no-fidelity", action="store_true",
                   help="skip the PSNR-vs-fp32 check on the bundled held-out crops")
    p.add_argument("--in-process", action="store_true",
                   help="run every cell in this process (faster; memory and init less honest)")
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="override the estimated machine peak (GFLOP/s) used for '%% peak'")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write environment and results as JSON to FILE")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _threads(text: str | None) -> list[int | None]:
    if text is None:
        return [None]
    out: list[int | None] = []
    for part in str(text).split(","):
        part = part.strip()
        if part in ("", "default"):
            out.append(None)
            continue
        try:
            n = int(part)
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"--threads must be positive integers or 'default', got {text!r}")
        out.append(n)
    return out


def run(args: argparse.Namespace) -> int:
    from ..bench import environment, format_table, parse_sizes, precision_summary, run_benchmarks
    from ..io import atomic_write_bytes

    sizes = parse_sizes(args.sizes)
    threads = _threads(args.threads)
    if args.repeat < 1 or args.warmup < 0:
        raise InputError(f"--repeat must be >= 1 and --warmup >= 0, got {args.repeat}, {args.warmup}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else None
    from ..validation import check_precision

    precisions = [check_precision(p.strip(), "--precision") for p in args.precision.split(",") if p.strip()]
    if not precisions:
        raise InputError(f"--precision expects e.g. fp32,bf16,int8, got {args.precision!r}")

    def progress(r) -> None:
        if not args.quiet:
            what = f"{r.median_ms:.1f} ms" if r.status == "ok" else f"{r.status}: {r.reason}"
            prec = "" if r.precision == "fp32" else f"/{r.precision}"
            print(f"  {r.backend}{prec} {r.size} threads={r.threads or 'default'}: {what}", file=sys.stderr)

    env = environment()
    results = run_benchmarks(
        backends, sizes, model=args.model, repeat=args.repeat, warmup=args.warmup,
        threads=threads, device=args.device, tile=parse_tile(args.tile), raw=not args.no_raw,
        peak=args.peak_gflops, isolate=not args.in_process, progress=progress, input_dtype=args.input,
        precisions=precisions, fidelity=not args.no_fidelity,
        calibration=None if args.calibration is None else str(args.calibration),
    )
    cpu = env["cpu"]
    print(f"{env['date']}  dermsr {env['dermsr']}  Python {env['python']}  CPU {cpu['model']} "
          f"({cpu['cores']} cores, {cpu['simd']})  est. peak "
          f"{env['peak_gflops'] or 0:.0f} GFLOP/s" + (f" (override {args.peak_gflops})" if args.peak_gflops else ""))
    print(format_table(results, markdown=args.markdown))
    print("times: median of --repeat runs after warm-up; init = load + first run; in-MP/s = input "
          "megapixels/s; peak MB = peak RSS growth of the process; overhead = dermsr / raw runtime call; "
          "dB vs fp32 = worst PSNR against PyTorch fp32 on the bundled held-out crops")
    for line in precision_summary(results):
        print(line)
    if args.json is not None:
        payload = {"environment": env, "args": {k: v for k, v in vars(args).items()
                                                if k not in ("_run", "json")},
                   "results": [r.to_dict() for r in results]}
        atomic_write_bytes(args.json, json.dumps(payload, indent=2, default=str).encode())
    return 0 if all(r.status != "error" for r in results) else 1
