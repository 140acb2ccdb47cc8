"""Ray Data: enhance image collections on a cluster, one Enhancer per actor.

:class:`EnhanceBatch` is the piece that scales: a callable class for
``ray.data.Dataset.map_batches`` that builds one :class:`~dermsr.Enhancer` per actor (so
each actor opens its runtime session once) and enhances each batch with
:meth:`~dermsr.Enhancer.enhance_batch`::

    ds = ds.map_batches(
        EnhanceBatch,
        fn_constructor_kwargs={"backend": "torch", "device": "cuda"},  # default: "auto"
        concurrency=4,        # four actors ...
        num_gpus=1,           # ... each holding one GPU (Ray sets CUDA_VISIBLE_DEVICES)
        batch_size=16,
        batch_format="numpy",
    )

:func:`read_batch` and :func:`write_batch` read and write with :mod:`dermsr.io` (EXIF
orientation, 16-bit, alpha, atomic writes) and turn a bad file into a ``failed`` row instead
of failing the job; :func:`enhance_dataset` chains read → enhance → write over the same
plan ``dermsr enhance`` uses (mirrored folders, resume by skipping existing outputs).
docs/archive.md shows the recipe on one machine and on a cluster.

Ray is optional (``pip install 'dermsr[ray]'``); this module imports it only inside
:func:`enhance_dataset`. The batch functions themselves are plain NumPy and can be called
without Ray:

>>> import numpy as np
>>> enhance = EnhanceBatch(threads=1)
>>> out = enhance({"image": np.zeros((2, 6, 5, 3), np.uint8), "id": np.array([7, 8])})
>>> out["image"].shape, out["id"].tolist()
((2, 24, 20, 3), [7, 8])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

__all__ = ["EnhanceBatch", "enhance_dataset", "read_batch", "write_batch"]

Batch = dict[str, np.ndarray]


def _rows(column: Any) -> list[np.ndarray]:
    """A Ray numpy column of images (one stacked (N, H, W[, C]) array, or an object array of
    arrays when sizes differ) as a list of images."""
    if isinstance(column, np.ndarray) and column.dtype != object:
        if column.ndim < 3:
            raise InputError(f"expected a column of images, got an array of shape {column.shape}")
        return list(column)
    return [np.asarray(x) for x in column]


def _column(images: Sequence[np.ndarray]) -> np.ndarray:
    """Images back as a Ray column: stacked when they share shape and dtype, else ragged."""
    if images and all(i.shape == images[0].shape and i.dtype == images[0].dtype for i in images):
        return np.stack(images)
    out = np.empty(len(images), dtype=object)
    for k, image in enumerate(images):
        out[k] = image
    return out


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def read_batch(batch: Batch, *, path_column: str = "path", column: str = "image") -> Batch:
    """Read the files named in ``batch[path_column]`` with :func:`dermsr.io.read_image`.

    Adds ``column`` (the images), ``size_in`` and ``error`` (empty when the file was read; a
    1×1 black placeholder image stands in for a file that was not).
    """
    from ..io import read_image

    images, sizes, errors = [], [], []
    for path in batch[path_column]:
        try:
            image = read_image(str(path))
            error = ""
        except Exception as exc:  # a bad file becomes a failed row, not a failed job
            image, error = np.zeros((1, 1, 3), np.uint8), f"{type(exc).__name__}: {exc}"
        images.append(image)
        sizes.append(_size(image) if not error else "")
        errors.append(error)
    out = dict(batch)
    out[column] = _column(images)
    out["size_in"] = np.array(sizes, dtype=object)
    out["error"] = np.array(errors, dtype=object)
    return out


class EnhanceBatch:
    """``map_batches`` callable: enhance ``batch[column]``, one Enhancer per actor.

    Constructor arguments are those of :class:`~dermsr.Enhancer` (``model``, ``backend``,
    ``device``, ``tile``, ``threads``, ...) plus ``column`` (default ``"image"``) and
    ``batch_size`` (images per runtime call within a Ray batch). Other columns pass through.
    If the batch has an ``error`` column (from :func:`read_batch`), rows with an error are
    left alone, and an image that cannot be enhanced gets an error instead of failing the
    batch; ``backend`` and ``ms`` (this row's share of the batch time) columns are added.
    """

    def __init__(
        self,
        model: Any = None,
        backend: str = "auto",
        *,
        column: str = "image",
        batch_size: int = 8,
        **enhancer_kwargs: Any,
    ) -> None:
        from ..enhance import Enhancer

        self.enhancer = Enhancer(model, backend, **enhancer_kwargs)
        self.column = column
        self.batch_size = batch_size

    def __call__(self, batch: Batch) -> Batch:
        if self.column not in batch:
            raise InputError(f"batch has no column {self.column!r}; columns: {sorted(batch)}")
        images = _rows(batch[self.column])
        out = dict(batch)
        if "error" not in batch:  # plain use: any error is the caller's to see
            out[self.column] = _column(self.enhancer.enhance_batch(images, batch_size=self.batch_size))
            return out
        errors = [str(e) for e in batch["error"]]
        todo = [i for i, e in enumerate(errors) if not e]
        t0 = time.perf_counter()
        try:
            done = self.enhancer.enhance_batch([images[i] for i in todo], batch_size=self.batch_size)
        except Exception:  # find the culprit: one image at a time
            done = []
            for i in todo:
                try:
                    done.append(self.enhancer.enhance(images[i]))
                except Exception as exc:
                    errors[i] = f"{type(exc).__name__}: {exc}"
                    done.append(images[i])
        ms = (time.perf_counter() - t0) * 1e3 / max(1, len(todo))
        for i, image in zip(todo, done, strict=True):
            images[i] = image
        out[self.column] = _column(images)
        out["error"] = np.array(errors, dtype=object)
        out["backend"] = np.array([self.enhancer.backend_name] * len(images), dtype=object)
        out["ms"] = np.array([np.nan if e else ms for e in errors])
        return out

    def __repr__(self) -> str:
        return f"EnhanceBatch({self.enhancer!r}, column={self.column!r})"


def write_batch(
    batch: Batch, *, column: str = "image", output_column: str = "output", overwrite: bool = False
) -> Batch:
    """Write each image to the path in ``batch[output_column]`` (atomically) and give back
    one result row per image, with the columns of ``dermsr enhance``'s manifest:
    ``input, output, size_in, size_out, backend, ms, status, error`` (no image data)."""
    from ..io import write_image

    n = len(batch[output_column])
    images = _rows(batch[column]) if n else []
    errors = [str(e) for e in batch.get("error", [""] * n)]
    status, size_out = [], []
    for i in range(n):
        dest = Path(str(batch[output_column][i]))
        if errors[i]:
            status.append("failed")
            size_out.append("")
            continue
        try:
            if dest.exists() and not overwrite:
                status.append("skipped")
                size_out.append("")
                errors[i] = "output exists"
                continue
            write_image(dest, images[i])
            status.append("ok")
            size_out.append(_size(images[i]))
        except Exception as exc:
            status.append("failed")
            size_out.append("")
            errors[i] = f"{type(exc).__name__}: {exc}"

    def col(name: str, default: Any = "") -> np.ndarray:
        return np.asarray(batch[name], dtype=object) if name in batch else np.array([default] * n, dtype=object)

    return {
        "input": col("path"),
        "output": np.asarray([str(x) for x in batch[output_column]], dtype=object),
        "size_in": col("size_in"),
        "size_out": np.array(size_out, dtype=object),
        "backend": col("backend"),
        "ms": np.asarray(batch["ms"], dtype=np.float64) if "ms" in batch else np.full(n, np.nan),
        "status": np.array(status, dtype=object),
        "error": np.array(errors, dtype=object),
    }


def enhance_dataset(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    recursive: bool = False,
    fmt: str | None = None,
    overwrite: bool = False,
    concurrency: int = 1,
    num_gpus: float | None = None,
    num_cpus: float | None = None,
    batch_size: int = 8,
    **enhancer_kwargs: Any,
) -> ray.data.Dataset:
    """Lazily build read → enhance → write over the images in ``inputs``; returns the Ray
    Dataset of result rows (run it with ``.materialize()``, ``.to_pandas()`` or
    ``.write_csv(...)``).

    Files are planned exactly as ``dermsr enhance`` plans them (same output names and
    mirrored folders; inputs never overwritten); outputs that exist are left out (no row)
    unless ``overwrite``, so running it again resumes. ``concurrency`` actors each hold one
    Enhancer built from ``enhancer_kwargs``, with ``num_gpus`` / ``num_cpus`` each (Ray's
    default: one CPU). Leave CPUs free for the read and write tasks: actors that hold every
    CPU of the cluster starve the tasks that feed them and the job waits forever. Paths must
    be visible to every node (a shared filesystem) on a multi-node cluster.

    Ray reports usage statistics over the network by default; unless ``RAY_USAGE_STATS_ENABLED``
    is set, this sets it to ``0`` for the cluster it starts (dermsr itself touches no network).
    """
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray.data

    from ..enhance import Enhancer
    from ..folder import find_images, plan_jobs

    out = Path(out_dir)
    scale = Enhancer(**enhancer_kwargs).scale  # also checks the arguments here, not in actors
    found = find_images([Path(p) for p in inputs], recursive=recursive, exclude_dir=out)
    jobs, refused = plan_jobs(found, out, fmt=fmt, scale=scale)
    if refused:
        raise InputError("; ".join(r.error for r in refused))
    items = [{"path": str(j.src), "output": str(j.dest)} for j in jobs if overwrite or not j.dest.exists()]
    if not items:
        return ray.data.from_items([])
    actor_args: dict[str, Any] = {"concurrency": concurrency}
    if num_gpus is not None:
        actor_args["num_gpus"] = num_gpus
    if num_cpus is not None:
        actor_args["num_cpus"] = num_cpus
    ds = ray.data.from_items(items)
    ds = ds.map_batches(read_batch, batch_format="numpy", batch_size=batch_size)
    ds = ds.map_batches(EnhanceBatch, fn_constructor_kwargs={**enhancer_kwargs, "batch_size": batch_size},
                        batch_size=batch_size, batch_format="numpy", **actor_args)
    return ds.map_batches(write_batch, fn_kwargs={"overwrite": overwrite}, batch_format="numpy",
                          batch_size=batch_size)
