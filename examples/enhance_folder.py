"""Enhance a folder of images offline: mirrored output tree, CSV manifest, resumable.

The same work as ``dermsr enhance DIR -o OUT --recursive --workers N``, through the Python
API (dermsr.folder), or through Ray Data with ``--ray`` (dermsr.integrations.ray; needs
``pip install 'dermsr[ray]'``). Run it twice: the second run skips every finished file.

    python examples/enhance_folder.py                 # bundled samples, downscaled, ~10 s
    python examples/enhance_folder.py photos/ -o enhanced/ --recursive --workers 2
    python examples/enhance_folder.py photos/ -o enhanced/ --ray --concurrency 2

Without an input folder the bundled samples are downscaled to --max-size pixels (long side)
into a folder beside OUT first, so the example runs in seconds on a CPU.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2

import dermsr
from dermsr.data import sample_images
from dermsr.folder import MANIFEST_NAME, enhance_folder, threads_per_worker


def small_samples(folder: Path, max_size: int) -> Path:
    """Downscaled PNG copies of the bundled samples (one in a sub-folder, to show mirroring)."""
    for i, path in enumerate(sample_images()):
        img = dermsr.read_image(path)
        f = max_size / max(img.shape[:2])
        small = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
        dest = folder / ("more" if i == 2 else "") / f"{path.stem}.png"
        if not dest.exists():
            dermsr.write_image(dest, small)
    return folder


def run_local(args: argparse.Namespace, inputs: Path) -> int:
    from tqdm import tqdm

    enhancer = dermsr.Enhancer(args.model, backend=args.backend, device=args.device,
                               threads=threads_per_worker(args.workers, args.threads))
    bar = tqdm(unit="img", file=sys.stderr)
    summary = enhance_folder([inputs], args.out, enhancer, recursive=True, workers=args.workers,
                             on_planned=lambda n: bar.reset(total=n), on_result=lambda r: bar.update())
    bar.close()
    print(summary)
    with open(args.out / MANIFEST_NAME, newline="") as f:
        rows = list(csv.DictReader(f))
    print(f"\n{args.out / MANIFEST_NAME} ({len(rows)} rows, newest last):")
    for row in rows[-6:]:
        print(f"  {row['status']:<8s} {row['output']:<36s} {row['size_in']:>9s} -> {row['size_out']:<9s} "
              f"{row['ms']:>8s} ms  {row['error']}")
    return 1 if summary.failed else 0


def run_ray(args: argparse.Namespace, inputs: Path) -> int:
    import ray

    from dermsr.integrations.ray import enhance_dataset

    # one CPU per actor plus one for the read/write tasks: actors holding every CPU would
    # leave none for the tasks that feed them, and the job would wait forever
    ray.init(num_cpus=args.concurrency + 1, include_dashboard=False, log_to_driver=False)
    try:
        ds = enhance_dataset([inputs], args.out, recursive=True, concurrency=args.concurrency,
                             num_cpus=1, threads=args.threads or 1, model=args.model, backend=args.backend,
                             device=args.device)
        results = ds.to_pandas()
    finally:
        ray.shutdown()
    if results.empty:
        print("nothing to do: every output exists")
        return 0
    print(results[["status", "output", "size_in", "size_out", "ms", "error"]].to_string(index=False))
    return int((results["status"] == "failed").any())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", nargs="?", type=Path, help="folder of images (default: downscaled bundled samples)")
    p.add_argument("-o", "--out", type=Path, default=Path("enhanced"))
    p.add_argument("--max-size", type=int, default=96, help="long side of the downscaled samples (default 96)")
    p.add_argument("--model", default=None)
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="runtime threads per worker")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--ray", action="store_true", help="run on a local Ray instance instead")
    p.add_argument("--concurrency", type=int, default=2, help="Ray actors (with --ray)")
    args = p.parse_args(argv)
    inputs = args.input or small_samples(args.out.parent / f"{args.out.name}-inputs", args.max_size)
    return run_ray(args, inputs) if args.ray else run_local(args, inputs)


if __name__ == "__main__":
    raise SystemExit(main())
