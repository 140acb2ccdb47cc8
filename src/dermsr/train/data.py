"""Training data: image lists, the by-image validation split, decoded-once HR images, and
seeded paired-patch sampling through a pluggable degradation.

A *degradation* is any callable ``fn(hr, seed) -> (lr, hr_aligned)`` taking an RGB uint8 HWC
image; it may also return an object with ``.lr`` and ``.hr`` (what
``dermsr.degrade.Degrader.apply`` returns) or just the LR image (then the HR is the input,
cropped to ``lr size × scale``). :func:`resolve_degradation` turns a preset name, an
``"module:attr"`` import path, a ``Degrader`` or a callable into a :class:`Degradation`.

Degradations run either on each HR *patch* (cheap: the usual Real-ESRGAN/BasicSR practice)
or once on each whole *image* (needed when the degradation crops or resizes the whole frame,
like the ``thesis`` preset, whose LR is 224×224 and whose HR is the central square resized
to 896×896); patches are then cut from the aligned pair.

>>> split = split_images(["a.jpg", "b.jpg", "c.jpg", "d.jpg"], 0.25, seed=0)
>>> sorted(split.train + split.val) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
True
>>> split == split_images(["d.jpg", "c.jpg", "b.jpg", "a.jpg"], 0.25, seed=0)
True
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.folders import Split, list_images, load_hr, split_images
from ..degrade.pairs import as_pair, to_float
from ..errors import InputError

__all__ = [
    "DataSource",
    "Degradation",
    "PairSampler",
    "Split",
    "as_pair",
    "augment",
    "gather_images",
    "list_images",
    "load_hr",
    "parse_sources",
    "resolve_degradation",
    "split_images",
    "to_float",
]

#: Presets whose degradation acts on the whole frame (centre crop + fixed output size).
WHOLE_IMAGE_PRESETS = frozenset({"thesis"})


# -- image lists and the split --------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    """One training folder: its path, its group name (the folder's name) and, when given as
    ``DIR@N``, its own HR short side ``N`` (``None``: the run's ``hr_short_side``)."""

    root: Path
    name: str
    short_side: int | None = None


def parse_sources(data: str | Sequence[str]) -> list[DataSource]:
    """``"DIR"`` or several folders → :class:`DataSource` list.

    A folder may end in ``@N`` to downsize its images to a short side of at most ``N`` px
    (e.g. a folder of visibly compressed JPEGs, whose artefacts shrink with the image).

    >>> [(s.name, s.short_side) for s in parse_sources(["a/isic", "b/clinical@640"])]
    [('isic', None), ('clinical', 640)]
    """
    specs = [data] if isinstance(data, (str, Path)) else list(data)
    if not specs:
        raise InputError("--data needs at least one folder")
    out: list[DataSource] = []
    for spec in specs:
        text = str(spec)
        head, at, tail = text.rpartition("@")
        short: int | None = None
        if at and head and tail.isdigit():
            text, short = head, int(tail)
        root = Path(text)
        out.append(DataSource(root, root.resolve().name or text, short))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"data folders must have distinct names (they name the validation groups); "
                         f"{dup} appear more than once")
    return out


def gather_images(data: str | Sequence[str], val_fraction: float, seed: int = 0
                  ) -> tuple[dict[str, Path], Split, dict[str, DataSource]]:
    """Every image of every folder in ``data``, split by image within each folder.

    Returns ``(files, split, source)`` keyed by image name: the path relative to its folder
    for a single folder (as :func:`split_images` has always named them), ``<folder
    name>/<relative path>`` for several. Each folder is split on its own relative names, so
    a folder's held-out images do not change when other folders are added.
    """
    sources = parse_sources(data)
    files: dict[str, Path] = {}
    where: dict[str, DataSource] = {}
    train: list[str] = []
    val: list[str] = []
    for src in sources:
        rel = {f.relative_to(src.root).as_posix(): f for f in list_images(src.root)}
        part = split_images(list(rel), val_fraction, seed)
        prefix = f"{src.name}/" if len(sources) > 1 else ""
        for name, path in rel.items():
            files[prefix + name] = path
            where[prefix + name] = src
        train += [prefix + n for n in part.train]
        val += [prefix + n for n in part.val]
    return files, Split(train=train, val=val), where


# -- degradations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Degradation:
    """A named degradation ``fn(hr_uint8, seed)`` and whether it runs per patch or per image."""

    name: str
    fn: Callable[[np.ndarray, int], Any]
    on: str = "patch"

    def __post_init__(self) -> None:
        if self.on not in ("patch", "image"):
            raise InputError(f"Degradation.on must be 'patch' or 'image', got {self.on!r}")

    def pair(self, hr: np.ndarray, seed: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
        return as_pair(self.fn(hr, int(seed)), hr, scale)


def _wrap_object(obj: Any, name: str, on: str | None) -> Degradation:
    if isinstance(obj, Degradation):
        return obj
    if hasattr(obj, "apply") and callable(obj.apply):
        def fn(img: np.ndarray, seed: int, _d: Any = obj) -> Any:
            return _d.apply(img, seed=seed)
    elif callable(obj):
        fn = obj
    else:
        raise InputError(f"degradation {name!r} is not callable (got {type(obj).__name__})")
    return Degradation(name, fn, on or "patch")


def resolve_degradation(spec: Any, on: str | None = None) -> Degradation:
    """A preset name, ``"pkg.module:attr"``, a Degrader, or a callable → :class:`Degradation`.

    Preset names go to ``dermsr.degrade.Degrader.preset``; ``thesis`` runs on whole images,
    others on patches, unless ``on`` says otherwise.
    """
    if not isinstance(spec, str):
        return _wrap_object(spec, getattr(spec, "__name__", type(spec).__name__), on)
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"cannot import degradation {spec!r}: {exc}") from exc
        return _wrap_object(obj, spec, on)
    from ..degrade import Degrader

    degrader = Degrader.preset(spec)
    return _wrap_object(degrader, spec, on or ("image" if spec in WHOLE_IMAGE_PRESETS else "patch"))


# -- sampling -------------------------------------------------------------------------------
def augment(lr: np.ndarray, hr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 flips/90° rotations (``k`` in 0..7), applied identically to both."""
    def op(a: np.ndarray) -> np.ndarray:
        if k & 4:
            a = a.transpose(1, 0, 2)
        if k & 2:
            a = a[::-1]
        if k & 1:
            a = a[:, ::-1]
        return a

    return op(lr), op(hr)


class PairSampler:
    """Seeded source of aligned (LR, HR) patch batches from decoded HR images.

    All randomness comes from one ``numpy.random.Generator`` whose state :meth:`get_state` /
    :meth:`set_state` save and restore, so a resumed run draws the same next batch.
    Whole-image degradations are computed once per (degradation, image) with a seed derived
    from ``seed`` and the image's index, and cached (HR rounded to uint8). They run on
    ``originals[i]()`` when given (e.g. the full-resolution decode, so a protocol that crops
    and resizes the whole frame sees the same pixels as at evaluation), else on ``images[i]``.
    An image too small for a whole-image degradation (its HR would be *enlarged* from the
    source, e.g. the thesis protocol's 896² target from a 500 px phone photo) is never used
    with it: such a target is blurrier than the input deserves. Patch degradations use it.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        degradations: Sequence[Degradation],
        *,
        patch_size: int,
        scale: int,
        seed: int = 0,
        originals: Sequence[Callable[[], np.ndarray]] | None = None,
    ) -> None:
        if not images:
            raise InputError("no training images")
        if not degradations:
            raise InputError("no degradation given")
        self.images = list(images)
        self.degradations = list(degradations)
        self.patch = int(patch_size)
        self.scale = int(scale)
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        if originals is not None and len(originals) != len(self.images):
            raise InputError(f"got {len(originals)} originals for {len(self.images)} images")
        self.originals = originals
        self._pairs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray] | None] = {}
        hp = self.patch * self.scale
        for i, img in enumerate(self.images):
            if min(img.shape[:2]) < hp:
                raise InputError(
                    f"training image {i} is {img.shape[1]}×{img.shape[0]}, smaller than one HR "
                    f"patch ({hp} px = patch_size {self.patch} × scale {self.scale})"
                )

    def get_state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state

    def image_pair(self, d: int, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached whole-image pair of degradation ``d`` on image ``i``; ``None`` when the
        image is too small for it (its HR would be enlarged from the source)."""
        key = (d, i)
        if key not in self._pairs:
            seed = int.from_bytes(hashlib.sha256(f"{self.seed}:{d}:{i}".encode()).digest()[:4], "big")
            src = self.originals[i]() if self.originals is not None else self.images[i]
            lr, hr = self.degradations[d].pair(src, seed, self.scale)
            if min(hr.shape[:2]) > min(src.shape[:2]):
                self._pairs[key] = None
                return None
            if min(lr.shape[:2]) < self.patch:
                raise InputError(
                    f"degradation {self.degradations[d].name!r} gives a {lr.shape[1]}×{lr.shape[0]} "
                    f"LR image, smaller than patch_size {self.patch}"
                )
            # HR kept as uint8 (rounded) to hold many whole-image pairs in memory
            self._pairs[key] = (lr, np.round(hr * 255.0).astype(np.uint8))
        return self._pairs[key]

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented (LR p×p×3, HR ps×ps×3) float32 pair."""
        rng, p, s = self.rng, self.patch, self.scale
        d = int(rng.integers(len(self.degradations)))
        i = int(rng.integers(len(self.images)))
        deg = self.degradations[d]
        if deg.on == "image":
            pair = self.image_pair(d, i)
            tried = {i}
            while pair is None:  # too small for this degradation: draw another image
                if len(tried) == len(self.images) and all(
                        self.image_pair(d, k) is None for k in range(len(self.images))):
                    raise InputError(
                        f"every training image is too small for degradation {deg.name!r} "
                        "(its HR target would be enlarged from the source)")
                i = int(rng.integers(len(self.images)))
                tried.add(i)
                pair = self.image_pair(d, i)
            lr_img, hr_img = pair
            y = int(rng.integers(lr_img.shape[0] - p + 1))
            x = int(rng.integers(lr_img.shape[1] - p + 1))
            lr = lr_img[y : y + p, x : x + p]
            hr = hr_img[y * s : (y + p) * s, x * s : (x + p) * s].astype(np.float32) / np.float32(255.0)
        else:
            img = self.images[i]
            hp = p * s
            y = int(rng.integers(img.shape[0] - hp + 1))
            x = int(rng.integers(img.shape[1] - hp + 1))
            seed = int(rng.integers(2**31))
            lr, hr = deg.pair(np.ascontiguousarray(img[y : y + hp, x : x + hp]), seed, s)
            if lr.shape[:2] != (p, p):
                raise InputError(
                    f"degradation {deg.name!r} turned a {hp}×{hp} patch into {lr.shape[1]}×"
                    f"{lr.shape[0]}; expected {p}×{p} (scale {s}); use on='image' for "
                    "degradations that crop or resize the whole frame"
                )
        return augment(lr, hr, int(rng.integers(8)))

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs as float32 NCHW arrays (LR, HR)."""
        pairs = [self.sample() for _ in range(n)]
        lr = np.stack([a for a, _ in pairs]).transpose(0, 3, 1, 2)
        hr = np.stack([b for _, b in pairs]).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(lr), np.ascontiguousarray(hr)
