"""ASV benchmarks: every registered runtime × input size, time, peak memory and quality.

Compare two commits, or run against the installed environment (see docs/performance.md)::

    asv machine --yes
    asv continuous --quick HEAD~1 HEAD
    asv run --quick --environment existing:same

The parameter lists are fixed (the built-in runtimes and ``auto``), so every commit is
benchmarked over the same cells and ``asv continuous`` can compare them. A cell that cannot
run at a commit — a runtime not installed, or an API this commit of dermsr does not have — is
*skipped*: ``setup`` raises ``NotImplementedError``, which ASV reports as skipped, not
failed. dermsr is imported inside the functions for the same reason.

- ``EnhanceSuite``: 224 and 512 untiled (the model on the whole image), ``time_``/``peakmem_``.
- ``PhotoSuite``: a 2048×1536 uint8 phone photo through ``enhance`` (``tile="auto"``: 512-pixel
  tiles with the model's receptive field as context), time and peak memory; heavy (tens of
  seconds per run on 2 cores), so one run.
- ``QualitySuite``: ``track_`` PSNR and max |diff| of each backend against the PyTorch
  reference on a real dermoscopic crop, so a quality regression shows next to a speed one.
- ``OverheadSuite``: ``track_`` dermsr's ``Enhancer.run`` over the runtime's raw call (224).
"""

from __future__ import annotations

import numpy as np

#: The runtimes benchmarked, fixed so that every commit has the same cells.
BACKENDS = ["torch", "onnxruntime", "ncnn", "executorch", "openvino"]
QUALITY_SIZE = 224
PHOTO_SIZE = "2048x1536"


def _api():
    """dermsr's benchmark helpers, or NotImplementedError (ASV: skip) at a commit without them."""
    try:
        from dermsr import bench

        return bench.bench_backend, bench.make_input, bench.make_photo, bench.parse_size
    except (ImportError, AttributeError) as exc:
        raise NotImplementedError(f"this commit of dermsr lacks the benchmark API: {exc}") from exc


def require(backend: str) -> str:
    """The concrete backend name, or NotImplementedError (ASV: skip) if it cannot run here."""
    from dermsr import Enhancer
    from dermsr.backends import get_backend
    from dermsr.errors import DermsrError, UnknownNameError

    if backend == "auto":
        try:
            return Enhancer(backend="auto").backend_name
        except DermsrError as exc:
            raise NotImplementedError(f"auto: {exc}") from exc
    try:
        a = get_backend(backend).availability()
    except UnknownNameError as exc:
        raise NotImplementedError(str(exc)) from exc
    if not a.available:
        raise NotImplementedError(f"{backend} unavailable: {a.reason}")
    return backend


def _enhancer(backend: str, tile):
    from dermsr import Enhancer

    try:
        return Enhancer(backend=backend, tile=tile)
    except Exception as exc:  # a runtime that is installed but cannot load: skip, say why
        raise NotImplementedError(f"{backend}: {exc}") from exc


class EnhanceSuite:
    """Untiled inference, 224×224 → 896×896 (the reference study's size) and 512×512."""

    params = (["auto", *BACKENDS], ["224", "512"])
    param_names = ("backend", "size")
    number = 1
    repeat = (3, 10, 30.0)
    rounds = 1
    warmup_time = 0.0
    timeout = 600

    def setup(self, backend: str, size: str) -> None:
        require(backend)
        _, make_input, _, parse_size = _api()
        h, w = parse_size(size)
        self.x = make_input(h, w)
        self.enhancer = _enhancer(backend, None)
        self.enhancer.run(self.x)  # load the session + first run, outside the timing

    def time_enhance(self, backend: str, size: str) -> None:
        self.enhancer.run(self.x)

    def peakmem_enhance(self, backend: str, size: str) -> None:
        self.enhancer.run(self.x)


class PhotoSuite:
    """A 2048×1536 uint8 phone photo through ``Enhancer.enhance`` (the path an app takes:
    tiled by ``tile="auto"``, converted straight into the uint8 output); one run, it is heavy."""

    params = (BACKENDS,)
    param_names = ("backend",)
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0.0
    timeout = 900

    def setup(self, backend: str) -> None:
        require(backend)
        _, make_input, make_photo, parse_size = _api()
        h, w = parse_size(PHOTO_SIZE)
        self.image = make_photo(h, w)
        self.enhancer = _enhancer(backend, "auto")
        self.enhancer.run(make_input(32, 32))  # create the session outside the timing

    def time_enhance_photo(self, backend: str) -> None:
        self.enhancer.enhance(self.image)

    def peakmem_enhance_photo(self, backend: str) -> None:
        self.enhancer.enhance(self.image)


def _dermoscopy_crop(side: int) -> np.ndarray:
    """A real ISIC dermoscopic crop (bundled sample), float32 NCHW in [0, 1]."""
    from dermsr.data import sample_images
    from dermsr.io import read_image

    img = read_image(sample_images()[0])
    h, w = img.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    crop = img[top : top + side, left : left + side, :3].astype(np.float32) / 255.0
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])


class QualitySuite:
    """Agreement of each backend with the PyTorch reference (fp32), on a real image."""

    params = (BACKENDS,)
    param_names = ("backend",)
    timeout = 600

    def setup_cache(self):
        x = _dermoscopy_crop(QUALITY_SIZE)
        from dermsr import Enhancer

        return x, Enhancer(backend="torch", tile=None).run(x)

    def setup(self, cache, backend: str) -> None:
        require(backend)
        x, ref = cache
        self.ref = ref
        self.y = _enhancer(backend, None).run(x)

    def track_psnr_vs_torch(self, cache, backend: str) -> float:
        from dermsr.evaluate.metrics import psnr

        return float(np.asarray(psnr(self.y, self.ref, data_range=1.0)).ravel()[0])

    track_psnr_vs_torch.unit = "dB"

    def track_max_abs_vs_torch(self, cache, backend: str) -> float:
        return float(np.max(np.abs(self.y - self.ref)))

    track_max_abs_vs_torch.unit = "abs"


class OverheadSuite:
    """Median ``Enhancer.run`` / median raw runtime call on the same 224×224 tensor."""

    params = (BACKENDS,)
    param_names = ("backend",)
    timeout = 600

    def setup(self, backend: str) -> None:
        require(backend)

    def track_overhead(self, backend: str) -> float:
        bench_backend = _api()[0]
        r = bench_backend(backend, size=(QUALITY_SIZE, QUALITY_SIZE), repeat=5, tile=None)
        if r.overhead is None:
            raise NotImplementedError(r.reason or r.overhead_note or "no overhead figure")
        return r.overhead

    track_overhead.unit = "ratio"
