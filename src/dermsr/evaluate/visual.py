"""Pictures that show how outputs differ: intensity histograms, difference maps, a qualitative grid.

The numbers (:func:`intensity_histogram`, :func:`difference_map`) are plain NumPy. The
figures are drawn with matplotlib's Agg renderer on a :class:`matplotlib.figure.Figure` of
their own (pyplot's global state is never touched; matplotlib is imported only when a figure
is drawn) and saved as PNG without the ``Software`` metadata entry, so the same input gives
byte-identical files on the same matplotlib; files are written atomically.

Grey levels everywhere are BT.601 luma on the 0-255 scale, ``0.299 R + 0.587 G + 0.114 B``
(OpenCV's ``COLOR_RGB2GRAY`` weights), after scaling the image by 255 / L.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, InputError
from ..io import atomic_write_bytes
from ..validation import is_int
from ._images import as_pair, as_single
from .metrics import GREY_WEIGHTS

__all__ = [
    "HISTOGRAM_BINS",
    "Crop",
    "difference_figure",
    "difference_map",
    "grey_levels",
    "histogram_figure",
    "intensity_histogram",
    "intensity_histograms",
    "qualitative_grid",
    "save_figure",
]

#: One bin per 8-bit grey level, 0 … 255.
HISTOGRAM_BINS = 256

#: A crop box ``(top, left, height, width)`` in reference (high-resolution) pixels.
Crop = tuple[int, int, int, int]


def _figure_class() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise BackendUnavailableError(
            f"figures need matplotlib ({exc}); pip install 'dermsr[metrics]'"
        ) from exc

    def make(**kwargs: Any) -> Any:
        fig = Figure(**kwargs)
        FigureCanvasAgg(fig)
        return fig

    return make


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 100) -> Path:
    """Save a figure as PNG, reproducibly (no ``Software`` metadata) and atomically."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"figures are saved as PNG; expected a path ending in .png, got {p.name!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    atomic_write_bytes(p, buf.getvalue())
    return p


# ---------------------------------------------------------------------------------------------
# Histograms
# ---------------------------------------------------------------------------------------------
def grey_levels(image: Any, *, data_range: float | None = None) -> np.ndarray:
    """Integer grey levels 0-255 of an image (or batch) as uint8 (N, H, W).

    ``round(0.299 R + 0.587 G + 0.114 B)`` on the 0-255 scale (half up), clipped to 0-255;
    a grey image is only scaled and rounded.

    >>> grey_levels(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8))
    array([[[ 76, 150,  29]]], dtype=uint8)
    """
    return _grey_levels(image, data_range)[0]


def _grey_levels(image: Any, data_range: float | None) -> tuple[np.ndarray, bool]:
    im, rng = as_single(image, data_range)
    x = im.data * (255.0 / rng)
    grey = x[..., 0] if x.shape[3] == 1 else x @ GREY_WEIGHTS
    return np.clip(np.floor(grey + 0.5), 0, 255).astype(np.uint8), im.batched


def intensity_histogram(image: Any, *, data_range: float | None = None) -> np.ndarray:
    """Pixel counts of the 256 grey levels (int64, shape (256,); (N, 256) for a batch).

    >>> h = intensity_histogram(np.full((4, 4), 200, np.uint8))
    >>> h.shape, int(h[200]), int(h.sum())
    ((256,), 16, 16)
    """
    levels, batched = _grey_levels(image, data_range)
    hists = np.stack([np.bincount(g.ravel(), minlength=HISTOGRAM_BINS) for g in levels]).astype(np.int64)
    return hists if batched else hists[0]


def intensity_histograms(
    images: Mapping[str, Any], *, data_range: float | None = None
) -> dict[str, np.ndarray]:
    """:func:`intensity_histogram` of each named image (one curve per output in a plot)."""
    if not isinstance(images, Mapping) or not images:
        raise InputError("expected a non-empty mapping of name -> image")
    return {str(name): intensity_histogram(im, data_range=data_range) for name, im in images.items()}


def histogram_figure(
    histograms: Mapping[str, np.ndarray],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = "Grey-level intensity histogram",
    density: bool = False,
    log: bool = False,
    size: tuple[float, float] = (7.0, 4.0),
    dpi: int = 100,
) -> Any:
    """Overlay one histogram curve per name (grey level 0-255 on x, pixel count on y).

    ``density=True`` plots fractions of pixels instead of counts (images of different sizes),
    ``log=True`` a logarithmic y axis. Saved as PNG to ``path`` if given; returns the figure.
    """
    if not isinstance(histograms, Mapping) or not histograms:
        raise InputError("expected a non-empty mapping of name -> histogram")
    make = _figure_class()
    fig = make(figsize=size, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    levels = np.arange(HISTOGRAM_BINS)
    for name, h in histograms.items():
        h = np.asarray(h, dtype=np.float64)
        if h.shape != (HISTOGRAM_BINS,):
            raise InputError(f"histogram {name!r}: expected shape ({HISTOGRAM_BINS},), got {h.shape}")
        if density:
            h = h / max(h.sum(), 1.0)
        ax.plot(levels, h, label=str(name), linewidth=1.0)
    ax.set_xlim(0, HISTOGRAM_BINS - 1)
    ax.set_xlabel("grey level (BT.601 luma, 0-255)")
    ax.set_ylabel("fraction of pixels" if density else "pixels")
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


# ---------------------------------------------------------------------------------------------
# Difference maps
# ---------------------------------------------------------------------------------------------
def _abs_diff_255(ref: Any, test: Any, data_range: float | None) -> tuple[np.ndarray, bool]:
    pair = as_pair(ref, test, data_range)
    return np.abs(pair.a - pair.b) * (255.0 / pair.data_range), pair.batched


def difference_map(
    ref: Any, test: Any, *, amplify: float = 1.0, data_range: float | None = None
) -> np.ndarray:
    """Per-channel ``|ref − test|`` as a uint8 image on the 0-255 scale (HWC RGB, or HW grey).

    Computed in float64 (no uint8 wrap-around), multiplied by ``amplify`` to make small
    differences visible, rounded and clipped at 255. A batch gives (N, H, W, C).

    >>> a = np.array([[[10, 200, 0]]], np.uint8); b = np.array([[[250, 190, 0]]], np.uint8)
    >>> difference_map(a, b)
    array([[[240,  10,   0]]], dtype=uint8)
    >>> difference_map(a, b, amplify=10)
    array([[[255, 100,   0]]], dtype=uint8)
    """
    if not isinstance(amplify, (int, float, np.integer, np.floating)) or isinstance(amplify, bool) or not amplify > 0:
        raise InputError(f"amplify must be a positive number, got {amplify!r}")
    d, batched = _abs_diff_255(ref, test, data_range)
    out = np.clip(np.floor(d * float(amplify) + 0.5), 0, 255).astype(np.uint8)
    if batched:
        return out
    out = out[0]
    return out[:, :, 0] if out.shape[2] == 1 else out


def difference_figure(
    ref: Any,
    test: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    reduce: str = "max",
    vmax: float | None = None,
    cmap: str = "inferno",
    title: str | None = None,
    data_range: float | None = None,
    dpi: int = 100,
) -> Any:
    """Heat map of ``|ref − test|`` (0-255 scale, unrounded) with a colour bar as its scale.

    Per pixel the channels are reduced by ``reduce`` ("max" or "mean"). The colour scale
    runs from 0 to ``vmax`` (default: the largest difference, at least 1 grey level), so
    differences far below one grey level are still visible and the bar says how large they are.
    """
    if reduce not in ("max", "mean"):
        raise InputError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    d, batched = _abs_diff_255(ref, test, data_range)
    if batched:
        raise InputError("difference_figure draws one image pair; got a batch")
    mag = d[0].max(axis=2) if reduce == "max" else d[0].mean(axis=2)
    top = float(vmax) if vmax is not None else max(float(mag.max()), 1.0)
    if not top > 0:
        raise InputError(f"vmax must be positive, got {vmax!r}")
    make = _figure_class()
    h, w = mag.shape
    fig = make(figsize=(6.0, 6.0 * h / w + 0.6), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(mag, cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    bar = fig.colorbar(im, ax=ax, shrink=0.85)
    bar.set_label(f"|ref − test|, {reduce} over channels (0-255 scale)")
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


# ---------------------------------------------------------------------------------------------
# Qualitative grid
# ---------------------------------------------------------------------------------------------
def _display(image: Any, what: str) -> np.ndarray:
    """An image as float (H, W, 3) or (H, W) in [0, 1] for imshow."""
    im, rng = as_single(image, None, what)
    if im.batched:
        raise InputError(f"{what}: expected one image, got a batch of shape {im.shape}")
    x = np.clip(im.data[0] / rng, 0.0, 1.0)
    return x[:, :, 0] if x.shape[2] == 1 else x


def _check_crop_box(crop: Sequence[int], h: int, w: int) -> Crop:
    if len(crop) != 4 or not all(is_int(v) for v in crop):
        raise InputError(f"a crop is (top, left, height, width) in integers, got {crop!r}")
    top, left, ch, cw = (int(v) for v in crop)
    if ch < 1 or cw < 1 or top < 0 or left < 0 or top + ch > h or left + cw > w:
        raise InputError(f"crop {crop!r} does not lie inside the {h}×{w} reference image")
    return top, left, ch, cw


def qualitative_grid(
    degraded: Any,
    outputs: Mapping[str, Any],
    reference: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    crops: Sequence[Crop] | None = None,
    panel_size: float = 2.6,
    dpi: int = 100,
) -> Any:
    """A figure: degraded input, each output, HR reference side by side, with zoomed crops.

    The first row shows the whole images with the crop boxes drawn; each further row shows
    one crop, enlarged with nearest-neighbour display so single pixels stay visible.
    ``crops`` are ``(top, left, height, width)`` boxes in reference pixels (default: one
    centred box a quarter of the smaller side); the degraded input, which is smaller, is
    cropped at the same place scaled by its size ratio. Every output must have the
    reference's size.
    """
    if not isinstance(outputs, Mapping):
        raise InputError("outputs must be a mapping of name -> image")
    ref = _display(reference, "reference")
    h, w = ref.shape[:2]
    columns: list[tuple[str, np.ndarray]] = [("degraded input", _display(degraded, "degraded"))]
    for name, out in outputs.items():
        img = _display(out, str(name))
        if img.shape[:2] != (h, w):
            raise InputError(
                f"output {name!r} is {img.shape[0]}×{img.shape[1]} but the reference is {h}×{w}"
            )
        columns.append((str(name), img))
    columns.append(("HR reference", ref))
    if crops is None:
        side = max(min(h, w) // 4, 1)
        crops = [((h - side) // 2, (w - side) // 2, side, side)]
    boxes = [_check_crop_box(c, h, w) for c in crops]

    make = _figure_class()
    from matplotlib.patches import Rectangle

    n_rows, n_cols = 1 + len(boxes), len(columns)
    fig = make(figsize=(panel_size * n_cols, panel_size * n_rows), dpi=dpi, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    colours = ("#ffd400", "#00e5ff", "#ff4fd8", "#7cff4f")
    for col, (name, img) in enumerate(columns):
        ih, iw = img.shape[:2]
        sy, sx = ih / h, iw / w  # this image's pixels per reference pixel
        kw = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if img.ndim == 2 else {}
        ax = axes[0, col]
        ax.imshow(img, interpolation="nearest", extent=(0, w, h, 0), **kw)
        ax.set_title(name, fontsize="small")
        for k, (top, left, ch, cw) in enumerate(boxes):
            ax.add_patch(Rectangle((left, top), cw, ch, fill=False, linewidth=1.2,
                                   edgecolor=colours[k % len(colours)]))
        for k, (top, left, ch, cw) in enumerate(boxes):
            y0, x0 = int(np.floor(top * sy)), int(np.floor(left * sx))
            y1 = max(int(np.ceil((top + ch) * sy)), y0 + 1)
            x1 = max(int(np.ceil((left + cw) * sx)), x0 + 1)
            zax = axes[1 + k, col]
            zax.imshow(img[y0:y1, x0:x1], interpolation="nearest", **kw)
            for spine in zax.spines.values():
                spine.set_edgecolor(colours[k % len(colours)])
                spine.set_linewidth(2.0)
        for r in range(n_rows):
            axes[r, col].set_xticks([])
            axes[r, col].set_yticks([])
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
