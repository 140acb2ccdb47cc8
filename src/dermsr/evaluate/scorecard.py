"""Does a model help on *your* images? Models against bicubic, Lanczos and the ground truth.

``dermsr evaluate`` (and :func:`scorecard`) degrades high-resolution images by named
protocols, restores them with every named model and with the interpolation baselines, and
scores each result against the HR image: means per image set and protocol, per-image win rates
against bicubic, the mean colour shift per channel, crops for the eye, and the targets of the
project's model card. The tables in docs/model-card.md are its output.

Protocols (LR from HR; all seeded, so every run sees the same inputs):

* ``bicubic-x4``: HR = the image downsized (area) to a short side of at most
  ``hr_short_side``; LR = ``Degrader.preset("bicubic-x4")`` of it.
* ``thesis``: LR = ``Degrader.preset("thesis")`` of the full-resolution image (224²); HR =
  its central square crop resized to 896² (``INTER_AREA``, the ground truth of ``dermsr
  study``). Images whose short side is below 896 px are skipped (the HR would be enlarged).
* ``phone``, ``realistic``: HR as for ``bicubic-x4``; LR = that preset with a seed derived
  from the image's name and ``seed``.

Image sets are folders. ``held_out=True`` scores only a folder's held-out split (the split
``dermsr train`` made with the same ``seed``/``val_fraction``: by image, per folder), so the
numbers are on images the model never saw; ``held_out=False`` scores every image (a folder no
model was trained on). Sets that share a ``group`` name (e.g. ``dermoscopy``) are pooled.

>>> parse_image_set("clinical=photos/pad")
ImageSet(group='clinical', folder=PosixPath('photos/pad'), held_out=True)
>>> meets_targets({"psnr": 38.0, "ssim": 0.96, "lpips": 0.18, "psnr_win": 0.9},
...               {"psnr": 37.5, "ssim": 0.95, "lpips": 0.25})
{'psnr': True, 'ssim': True, 'lpips': True, 'psnr_win': True}
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .metric_info import FIDELITY_METRICS, METRIC_INFO, better

__all__ = [
    "BASELINES",
    "PROTOCOLS",
    "TARGETS",
    "ImageSet",
    "format_markdown",
    "meets_targets",
    "metric_functions",
    "parse_image_set",
    "protocol_pair",
    "scorecard",
    "upscale",
]

#: Degradation protocols, in table order.
PROTOCOLS = ("bicubic-x4", "thesis", "phone", "realistic")
#: Interpolation baselines → OpenCV interpolation names.
BASELINES = {"bicubic": "INTER_CUBIC", "lanczos": "INTER_LANCZOS4"}
#: The model card's targets against bicubic: PSNR ≥ bicubic + 0.3 dB, SSIM ≥ bicubic,
#: LPIPS ≤ 0.85 × bicubic, PSNR better than bicubic on ≥ 80 % of the images.
TARGETS = {"psnr_gain_db": 0.3, "lpips_ratio": 0.85, "psnr_win_rate": 0.8}
#: The thesis protocol's HR side (4 × its 224² LR).
THESIS_HR = 896


@dataclass(frozen=True)
class ImageSet:
    """A folder of HR images, the group it is reported under, and whether only its held-out
    split is scored."""

    group: str
    folder: Path
    held_out: bool = True


def parse_image_set(spec: str, held_out: bool = True) -> ImageSet:
    """``"DIR"`` (group = the folder's name) or ``"GROUP=DIR"`` → :class:`ImageSet`."""
    text = str(spec)
    group, eq, folder = text.partition("=")
    if eq and group and "/" not in group and folder:
        return ImageSet(group, Path(folder), held_out)
    path = Path(text)
    return ImageSet(path.resolve().name or text, path, held_out)


def _image_seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"dermsr-eval:{seed}:{name}".encode()).digest()[:4], "big")


def protocol_pair(path: str | Path, protocol: str, *, hr_short_side: int = 896, scale: int = 4,
                  seed: int = 0, image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(LR, HR) float32 HWC in [0, 1] for one image under ``protocol``; ``None`` when the image
    is too small for it (thesis on an image with a short side below 896 px). ``image``: the
    file's full-resolution decode (``load_hr(path)``) when the caller already has it, so one
    image scored under several protocols is read once."""
    from ..data.folders import load_hr, shrink_to_short_side
    from ..degrade import Degrader
    from ..degrade.pairs import as_pair

    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    full = load_hr(path) if image is None else image
    img = full if protocol == "thesis" else shrink_to_short_side(full, hr_short_side)
    if protocol == "thesis" and min(img.shape[:2]) < THESIS_HR:
        return None
    return as_pair(Degrader.preset(protocol).apply(img, seed=seed), img, scale)


def upscale(lr: np.ndarray, scale: int, method: str = "bicubic") -> np.ndarray:
    """float32 HWC LR → ×scale with an OpenCV interpolation baseline, clipped to [0, 1]."""
    import cv2

    if method not in BASELINES:
        raise InputError(f"baseline must be one of {sorted(BASELINES)}, got {method!r}")
    h, w = lr.shape[:2]
    out = cv2.resize(lr, (w * scale, h * scale), interpolation=getattr(cv2, BASELINES[method]))
    return np.clip(out, 0.0, 1.0)


def metric_functions(lpips_backbone: str | None = None) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """``{"psnr": f, "ssim": f[, "lpips": f, "feature_distance": f]}`` with ``f(output,
    reference) -> float`` on float HWC images in [0, 1] (PSNR/SSIM over RGB, data range 1).
    LPIPS and the feature distance use the AlexNet trunk ``lpips_backbone``, else
    ``$DERMSR_LPIPS_BACKBONE``, else the one shipped with dermsr; they are left out only when
    ``dermsr[metrics]`` is not installed. Never downloads."""
    import os

    from ..machine import missing_modules
    from .features import feature_distance
    from .lpips import ENV_VAR, PACKAGED_BACKBONE, lpips_distance
    from .metrics import psnr, ssim

    fns: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "psnr": lambda a, b: float(psnr(a, b, data_range=1.0)),
        "ssim": lambda a, b: float(ssim(a, b, data_range=1.0)),
    }
    backbone = lpips_backbone or os.environ.get(ENV_VAR) or None
    if backbone or (PACKAGED_BACKBONE.is_file() and not missing_modules(["lpips", "torch"])):
        fns["lpips"] = lambda a, b: float(lpips_distance(a, b, backbone=backbone, data_range=1.0))
        fns["feature_distance"] = lambda a, b: float(feature_distance(a, b, backbone=backbone, data_range=1.0))
    return fns


def meets_targets(model: dict[str, float], bicubic: dict[str, float]) -> dict[str, bool]:
    """Which of :data:`TARGETS` a model's summary meets against bicubic's."""
    out = {"psnr": model["psnr"] >= bicubic["psnr"] + TARGETS["psnr_gain_db"],
           "ssim": model["ssim"] >= bicubic["ssim"]}
    if "lpips" in model and "lpips" in bicubic:
        out["lpips"] = model["lpips"] <= TARGETS["lpips_ratio"] * bicubic["lpips"]
    if "psnr_win" in model:
        out["psnr_win"] = model["psnr_win"] >= TARGETS["psnr_win_rate"]
    return out


def _images(sets: Sequence[ImageSet], val_fraction: float, seed: int) -> list[tuple[str, str, Path]]:
    """(group, name, path) of every image to score, in a stable order."""
    from ..data.folders import list_images, split_images

    out = []
    for s in sets:
        rel = {f.relative_to(s.folder).as_posix(): f for f in list_images(s.folder)}
        names = split_images(list(rel), val_fraction, seed).val if s.held_out else sorted(rel)
        out += [(s.group, f"{s.folder.resolve().name}/{n}", rel[n]) for n in names]
    if not out:
        raise InputError("no images to score (every held-out split is empty)")
    return out


def _summarise(rows: list[dict[str, Any]], metrics: Sequence[str]) -> dict[str, Any]:
    """Means, per-image win rates against bicubic and colour shifts, by group/protocol/method."""
    summary: dict[str, Any] = {}
    keys = sorted({(r["group"], r["protocol"]) for r in rows}, key=lambda k: (k[0], PROTOCOLS.index(k[1])))
    for group, protocol in keys:
        sel = [r for r in rows if r["group"] == group and r["protocol"] == protocol]
        bic = {r["image"]: r for r in sel if r["method"] == "bicubic"}
        methods = list(dict.fromkeys(r["method"] for r in sel))
        per: dict[str, Any] = {}
        for m in methods:
            mine = [r for r in sel if r["method"] == m]
            s: dict[str, Any] = {k: float(np.mean([r[k] for r in mine])) for k in metrics}
            s["shift"] = [float(np.mean([r["shift"][c] for r in mine])) for c in range(3)]
            s["images"] = len(mine)
            if m != "bicubic":
                for k in metrics:
                    s[f"{k}_win"] = float(np.mean([better(k, r[k], bic[r["image"]][k]) for r in mine]))
            per[m] = s
        summary.setdefault(group, {})[protocol] = per
    return summary


def scorecard(
    sets: Sequence[ImageSet],
    models: Sequence[str],
    *,
    protocols: Sequence[str] = ("bicubic-x4", "thesis", "phone"),
    baselines: Sequence[str] = ("bicubic", "lanczos"),
    val_fraction: float = 0.1,
    seed: int = 0,
    hr_short_side: int = 896,
    lpips_backbone: str | None = None,
    backend: str = "torch",
    threads: int | None = None,
    crops: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``models`` and ``baselines`` on every image of ``sets`` under every protocol.

    Returns ``{"settings", "summary", "targets_met", "rows"}``: ``rows`` has one entry per
    (image, protocol, method) with PSNR, SSIM, LPIPS and the feature distance (with
    ``dermsr[metrics]``) and ``shift`` (mean of
    output − HR per RGB channel, in grey levels of 255); ``summary[group][protocol][method]``
    the means, ``<metric>_win`` (share of images where the method beats bicubic) and the mean
    shift; ``targets_met[group][protocol][model]`` :func:`meets_targets`. With ``crops``, one
    PNG per (group, protocol) shows the same crop of the first image for every method.
    """
    from tqdm import tqdm

    from ..data.folders import load_hr
    from ..enhance import Enhancer

    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise InputError(f"protocols must be among {PROTOCOLS}, got {list(protocols)}")
    bad = [b for b in baselines if b not in BASELINES]
    if bad or "bicubic" not in baselines:
        raise InputError(f"baselines must include 'bicubic' and be among {sorted(BASELINES)}, got {list(baselines)}")
    if not models:
        raise InputError("name at least one model (--model)")
    images = _images(sets, val_fraction, seed)
    fns = metric_functions(lpips_backbone)
    enhancers = {m: Enhancer(m, backend=backend, threads=threads) for m in models}
    scales = {e.scale for e in enhancers.values()}
    if len(scales) != 1:
        raise InputError(f"models of different scales cannot share a protocol: {sorted(scales)}")
    scale = scales.pop()
    crop_dir = Path(crops) if crops is not None else None
    drawn: set[tuple[str, str]] = set()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    decoded: tuple[Path | None, np.ndarray | None] = (None, None)
    jobs = [(g, n, p, proto) for g, n, p in images for proto in protocols]
    for group, name, path, protocol in tqdm(jobs, desc="scoring", unit="pair", disable=not progress,
                                            file=sys.stderr):
        if decoded[0] != path:  # jobs run image by image: decode each file once for all protocols
            decoded = (path, load_hr(path))
        pair = protocol_pair(path, protocol, hr_short_side=hr_short_side, scale=scale, image=decoded[1],
                             seed=_image_seed(name, seed))
        if pair is None:
            skipped.append({"image": name, "protocol": protocol, "why": "short side below 896 px"})
            continue
        lr, hr = pair
        outputs: dict[str, np.ndarray] = {b: upscale(lr, scale, b) for b in baselines}
        for m, enh in enhancers.items():
            outputs[m] = np.asarray(enh.enhance(lr), dtype=np.float32)
        for method, out in outputs.items():
            row: dict[str, Any] = {"group": group, "image": name, "protocol": protocol, "method": method}
            row.update({k: fn(out, hr) for k, fn in fns.items()})
            row["shift"] = [float(v) for v in (out - hr).reshape(-1, 3).mean(axis=0) * 255.0]
            rows.append(row)
        if crop_dir is not None and (group, protocol) not in drawn:
            drawn.add((group, protocol))
            _crop_figure(crop_dir / f"{group}_{protocol}.png", lr, outputs, hr)
    summary = _summarise(rows, list(fns))
    verdicts = {g: {p: {m: meets_targets(per[m], per["bicubic"]) for m in models} for p, per in protos.items()}
                for g, protos in summary.items()}
    return {
        "settings": {"sets": [{"group": s.group, "folder": str(s.folder), "held_out": s.held_out} for s in sets],
                     "models": list(models), "baselines": list(baselines), "protocols": list(protocols),
                     "val_fraction": val_fraction, "seed": seed, "hr_short_side": hr_short_side,
                     "backend": backend, "images": [n for _, n, _ in images], "skipped": skipped,
                     "targets": TARGETS},
        "summary": summary,
        "targets_met": verdicts,
        "rows": rows,
    }


def _crop_figure(path: Path, lr: np.ndarray, outputs: dict[str, np.ndarray], hr: np.ndarray) -> None:
    """The same central crop (a quarter of the short side, at most 192 px) of every output."""
    from .visual import qualitative_grid

    h, w = hr.shape[:2]
    side = max(8, min(192, min(h, w) // 4))
    box = ((h - side) // 2, (w - side) // 2, side, side)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = qualitative_grid(lr, outputs, hr, path, crops=[box])
    import matplotlib.pyplot as plt

    plt.close(fig)


def format_markdown(result: dict[str, Any]) -> str:
    """The summary as Markdown: one table per (group, protocol), win rates against bicubic."""
    lines: list[str] = []
    for group, protos in result["summary"].items():
        for protocol, per in protos.items():
            metrics = [k for k in FIDELITY_METRICS if k in per["bicubic"]]
            n = per["bicubic"]["images"]
            lines.append(f"**{group}, {protocol}** ({n} image{'s' if n != 1 else ''})\n")
            head = ["method", *[METRIC_INFO[k].label for k in metrics],
                    *[f"{METRIC_INFO[k].label.split(' (')[0]} wins" for k in metrics], "ΔR ΔG ΔB"]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for method, s in per.items():
                wins = ["—" if method == "bicubic" else f"{100 * s[f'{k}_win']:.0f} %" for k in metrics]
                shift = " ".join(f"{v:+.2f}" for v in s["shift"])
                cells = [format(s[k], METRIC_INFO[k].fmt) for k in metrics]
                lines.append("| " + " | ".join([method, *cells, *wins, shift]) + " |")
            met = result["targets_met"][group][protocol]
            for model, verdict in met.items():
                ok = ", ".join(f"{k} {'✔' if v else '✘'}" for k, v in verdict.items())
                lines.append(f"\n{model} targets: {ok}")
            lines.append("")
    skipped = result["settings"].get("skipped") or []
    if skipped:
        lines.append(f"Skipped {len(skipped)} (image, protocol) pair(s): image too small for the protocol.")
    return "\n".join(lines)
