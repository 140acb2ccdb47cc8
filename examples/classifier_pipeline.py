"""Degrade → enhance → classify: dermsr inside a skin-lesion classifier's pipeline.

Takes the bundled dermoscopic samples (dermsr.data.sample_images()), makes low-resolution
copies (dermsr's "bicubic-x4" degradation), restores them ×4 with dermsr, and classifies the
original, a plain bicubic upscale and the dermsr restoration with torchvision's
MobileNetV3-small. Each stage is timed. The classifier runs in a torch DataLoader whose
transform pipeline contains dermsr.transforms.Enhance, as a training or evaluation script
would use it.

Without --checkpoint the classifier has random weights (weights=None: nothing is
downloaded), so its predictions mean nothing; the point is the pipeline and its timings.
Give --checkpoint a state dict of a mobilenet_v3_small trained for --num-classes classes to
get real predictions.

    python examples/classifier_pipeline.py                    # ~10 s on a laptop CPU
    python examples/classifier_pipeline.py --max-size 256 --workers 2
    python examples/classifier_pipeline.py --checkpoint melanoma_mnv3s.pth --num-classes 2
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

import dermsr
from dermsr.data import sample_images
from dermsr.transforms import Enhance

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLASSES = ("nevus", "melanoma")


@contextmanager
def timed(label: str, times: dict[str, float]):
    t0 = time.perf_counter()
    yield
    times[label] = time.perf_counter() - t0


def load_hr(max_size: int) -> list[np.ndarray]:
    """The bundled samples, centre square crop, area-resized to ``max_size`` pixels a side."""
    out = []
    for path in sample_images():
        img = dermsr.read_image(path)
        h, w = img.shape[:2]
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        square = img[y0 : y0 + side, x0 : x0 + side]
        out.append(cv2.resize(square, (max_size, max_size), interpolation=cv2.INTER_AREA))
    return out


def make_degrader():
    """dermsr's "bicubic-x4" degradation, or a plain OpenCV ÷4 resize if dermsr.degrade is
    not installed in this version. Returns (name, fn: image -> (hr, lr))."""
    try:
        from dermsr.degrade import Degrader
    except ImportError:

        def fallback(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            h, w = (img.shape[0] // 4) * 4, (img.shape[1] // 4) * 4
            hr = img[:h, :w]
            return hr, cv2.resize(hr, (w // 4, h // 4), interpolation=cv2.INTER_CUBIC)

        return "cv2.resize /4 (bicubic; dermsr.degrade not available)", fallback
    degrader = Degrader.preset("bicubic-x4")

    def degrade(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = degrader.apply(img, seed=0)
        return result.hr, result.lr

    return "Degrader.preset('bicubic-x4')", degrade


def labels() -> list[int]:
    """Ground truth from the ISIC metadata beside each sample (0 nevus, 1 melanoma)."""
    out = []
    for path in sample_images():
        meta = json.loads(path.with_suffix(".json").read_text())
        out.append(int(meta["meta"]["clinical"]["diagnosis"] == "melanoma"))
    return out


class Samples:
    """A map-style dataset of (image, label) with a transform, as a training script has."""

    def __init__(self, images, targets, transform) -> None:
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.targets[i]


def build_classifier(checkpoint: Path | None, num_classes: int):
    import torch
    from torchvision.models import mobilenet_v3_small

    model = mobilenet_v3_small(weights=None, num_classes=num_classes)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return model.eval()


def classify(model, dataset, workers: int, batch_size: int) -> np.ndarray:
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        multiprocessing_context="spawn" if workers else None)
    probs = []
    with torch.inference_mode():
        for images, _ in loader:
            probs.append(torch.softmax(model(images), dim=1).numpy())
    return np.concatenate(probs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="mobilenet_v3_small state dict (default: random weights)")
    p.add_argument("--num-classes", type=int, default=2, help="classifier outputs (default 2: nevus, melanoma)")
    p.add_argument("--max-size", type=int, default=128, help="side of the high-resolution crops (default 128)")
    p.add_argument("--backend", default="auto", help="dermsr runtime (default auto: the fastest installed)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="dermsr runtime threads")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0: in this process)")
    p.add_argument("--batch-size", type=int, default=4)
    args = p.parse_args(argv)

    import torch
    from torchvision.transforms import v2

    times: dict[str, float] = {}
    # each DataLoader worker runs the runtime with one thread; in-process use may take more
    enhancer = dermsr.Enhancer(backend=args.backend, device=args.device,
                               threads=1 if args.workers else args.threads)
    hr_images = load_hr(args.max_size)
    name, degrade = make_degrader()
    with timed("degrade", times):
        pairs = [degrade(img) for img in hr_images]
    hr_images = [hr for hr, _ in pairs]
    lr_images = [lr for _, lr in pairs]
    with timed("bicubic x4 upscale (baseline)", times):
        bicubic_images = [cv2.resize(lr, (lr.shape[1] * 4, lr.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
                          for lr in lr_images]
    with timed("dermsr x4 (Enhancer.enhance_batch)", times):
        sr_images = enhancer.enhance_batch(lr_images)
    with timed("classifier init", times):
        model = build_classifier(args.checkpoint, args.num_classes)

    normalize = [v2.ToDtype(torch.float32, scale=True), v2.Resize(224, antialias=True),
                 v2.CenterCrop(224), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    targets = labels()
    variants = {
        "original": Samples(hr_images, targets, v2.Compose([v2.ToImage(), *normalize])),
        "bicubic x4": Samples(bicubic_images, targets, v2.Compose([v2.ToImage(), *normalize])),
        "dermsr x4": Samples(lr_images, targets, v2.Compose([v2.ToImage(), Enhance(enhancer), *normalize])),
    }
    probs = {}
    for label, dataset in variants.items():
        with timed(f"classify {label}" + (" (enhance in DataLoader)" if label == "dermsr x4" else ""), times):
            probs[label] = classify(model, dataset, args.workers, args.batch_size)

    print(f"degradation: {name}; {len(hr_images)} images, HR {hr_images[0].shape[1]}x{hr_images[0].shape[0]} "
          f"-> LR {lr_images[0].shape[1]}x{lr_images[0].shape[0]} -> dermsr {sr_images[0].shape[1]}x{sr_images[0].shape[0]}")
    print(f"enhancer: {enhancer!r}")
    print("\nstage timings:")
    for stage, seconds in times.items():
        print(f"  {stage:<45s} {seconds * 1e3:9.1f} ms")
    classes = CLASSES if args.num_classes == 2 else tuple(str(i) for i in range(args.num_classes))
    print("\ntop-1 per image" + ("" if args.checkpoint else " (random weights: meaningless)") + ":")
    print(f"  {'image':<14s} {'truth':<9s} " + " ".join(f"{v:<22s}" for v in variants))
    for i, path in enumerate(sample_images()):
        cells = []
        for v in variants:
            k = int(np.argmax(probs[v][i]))
            cells.append(f"{classes[k]} ({probs[v][i][k]:.2f})".ljust(22))
        print(f"  {path.stem:<14s} {CLASSES[targets[i]]:<9s} " + " ".join(cells))
    agree = np.mean(np.argmax(probs["dermsr x4"], 1) == np.argmax(probs["original"], 1))
    print(f"\ndermsr x4 agrees with the original's top-1 on {agree:.0%} of images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
