"""Enhance a folder of images on one machine: plan, run on a process pool, record, resume.

(Over 400 lines for now: planning, the worker pool and the manifest share the job record and
the resume rules; the manifest is the part to move out next.)

The functional core of ``dermsr enhance``:

* :func:`find_images` and :func:`plan_jobs` turn input files/folders into jobs (source →
  destination mirroring the folder structure), refusing any destination that is an input
  file or that two inputs would share.
* :func:`process_one` reads, enhances and writes one file and never raises: a bad file
  becomes a ``failed`` :class:`Result` while the rest continue.
* :func:`run_jobs` runs jobs in this process or on a pool of ``spawn``-ed worker processes,
  each owning its own :class:`~dermsr.Enhancer` runtime session.
* :class:`Manifest` appends one CSV row per finished file (flushed and synced per row), so
  it survives the process being killed.
* :func:`enhance_folder` ties them together with resume: outputs are written atomically
  (:func:`dermsr.io.write_image`: temporary file + rename), so an output file that exists is
  complete, and a rerun skips it; temporary files a killed run left behind are removed.

>>> from pathlib import Path
>>> output_path(Path("a/b.jpg"), Path("out"), None, False, 4).as_posix()
'out/a/b_x4.jpg'
>>> output_path(Path("scan.tif"), Path("out"), "jpg", True, 4).as_posix()  # 16-bit stays lossless
'out/scan_x4.png'
"""

from __future__ import annotations

import contextlib
import csv
import io
import multiprocessing
import os
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data.folders import _inside, find_images
from .errors import InputError, WriteError
from .io import IMAGE_SUFFIXES
from .machine import usable_cores
from .validation import check_int

if TYPE_CHECKING:  # pragma: no cover
    from .enhance import Enhancer

__all__ = [
    "LOCK_NAME",
    "MANIFEST_FIELDS",
    "MANIFEST_NAME",
    "Job",
    "Manifest",
    "Result",
    "Summary",
    "enhance_folder",
    "find_images",
    "output_path",
    "plan_jobs",
    "probe_16bit",
    "probe_alpha",
    "process_one",
    "read_manifest",
    "remove_partials",
    "run_jobs",
    "threads_per_worker",
]

MANIFEST_NAME = "manifest.csv"
MANIFEST_FIELDS = ("input", "output", "size_in", "size_out", "backend", "ms", "status", "error")
LOCK_NAME = ".dermsr-enhance.lock"
OK, SKIPPED, FAILED = "ok", "skipped", "failed"

_EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp")
_NO_ALPHA = (".jpg", ".jpeg")


# -- planning --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One file to enhance: ``src`` → ``dest``; ``rel`` is ``dest`` relative to the output folder."""

    src: Path
    dest: Path
    rel: Path


def output_path(rel: Path, out_dir: Path, fmt: str | None, is16: bool, scale: int, *,
                has_alpha: bool = False) -> Path:
    """``out_dir/<rel folder>/<stem>_x<scale>.<suffix>``; 16-bit images never go to 8-bit
    formats, nor images with an alpha channel to JPEG: those become PNG.

    >>> output_path(Path("logo.png"), Path("out"), "jpg", False, 4, has_alpha=True).as_posix()
    'out/logo_x4.png'
    """
    suffix = f".{fmt.lstrip('.')}" if fmt else rel.suffix.lower()
    if (is16 and suffix in _EIGHT_BIT_ONLY) or (has_alpha and suffix in _NO_ALPHA):
        suffix = ".png"
    return out_dir / rel.with_name(f"{rel.stem}_x{scale}{suffix}")


def probe_16bit(path: Path) -> bool:
    """Whether a PNG or TIFF file stores 16-bit samples, from its header only (no decoding)."""
    suffix = path.suffix.lower()
    if not path.is_file():  # opening a FIFO would block; reading reports what it is
        return False
    try:
        if suffix == ".png":
            with open(path, "rb") as f:
                head = f.read(26)
            # signature (8) + IHDR length/type (8) + width, height (8) + bit depth (1)
            return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16
        if suffix in (".tif", ".tiff"):
            from PIL import Image

            with Image.open(path) as im:
                bits = im.tag_v2.get(258, (8,))  # BitsPerSample (TIFF 6.0)
                return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    except (OSError, ValueError, struct.error, SyntaxError):
        return False  # unreadable: the worker reports it
    return False


def probe_alpha(path: Path) -> bool:
    """Whether :func:`dermsr.io.read_image` would give this file an alpha channel, from its
    header only: RGBA / grey+alpha images, and RGB or palette PNGs with a transparent colour
    (OpenCV expands those to RGBA)."""
    from .io import image_header

    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            im = image_header(f)
            if im is None:
                return False
            return im.mode in ("RGBA", "LA", "PA") or (im.mode in ("RGB", "P") and "transparency" in im.info)
    except OSError:
        return False  # unreadable: the worker reports it


def plan_jobs(
    found: Sequence[tuple[Path, Path]], out_dir: Path, *, fmt: str | None, scale: int
) -> tuple[list[Job], list[Result]]:
    """Jobs for ``found`` files, plus ``failed`` results for destinations that may not be written.

    A destination that is one of the input files, or that an earlier input already maps to
    (``a.png`` and ``a.jpg`` with ``--format png``), is refused.
    """
    inputs = {src.resolve() for src, _ in found}
    taken: dict[Path, Path] = {}
    jobs: list[Job] = []
    refused: list[Result] = []
    for src, rel in found:
        target = f".{fmt}" if fmt else rel.suffix.lower()
        is16 = target in _EIGHT_BIT_ONLY and probe_16bit(src)
        has_alpha = target in _NO_ALPHA and probe_alpha(src)
        dest = output_path(rel, out_dir, fmt, is16, scale, has_alpha=has_alpha)
        key = dest.resolve()
        if key in inputs:
            refused.append(Result(src, dest, FAILED, error=f"{dest}: refusing to overwrite an input file"))
        elif key in taken:
            refused.append(Result(src, dest, FAILED, error=f"{dest}: output name already used by {taken[key]}"))
        else:
            taken[key] = src
            jobs.append(Job(src, dest, dest.relative_to(out_dir)))
    return jobs, refused


def threads_per_worker(workers: int, threads: int | None = None) -> int:
    """Runtime threads for each of ``workers`` processes: ``threads`` if given, else the
    usable cores split evenly (at least one).

    >>> threads_per_worker(2, threads=3)
    3
    >>> threads_per_worker(10**6)
    1
    """
    if threads is not None:
        return int(threads)
    return max(1, usable_cores() // max(1, int(workers)))


# -- one file ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    """What happened to one file (one manifest row)."""

    src: Path
    dest: Path | None
    status: str  # "ok", "skipped" or "failed"
    size_in: tuple[int, int] | None = None  # (width, height)
    size_out: tuple[int, int] | None = None
    backend: str = ""
    ms: float | None = None  # read + enhance + write, milliseconds
    error: str = ""

    def row(self, out_dir: Path) -> dict[str, str]:
        def size(s: tuple[int, int] | None) -> str:
            return f"{s[0]}x{s[1]}" if s else ""

        dest = ""
        if self.dest is not None:
            dest = (self.dest.relative_to(out_dir) if _inside(self.dest, out_dir) else self.dest).as_posix()
        return {
            "input": str(self.src),
            "output": dest,
            "size_in": size(self.size_in),
            "size_out": size(self.size_out),
            "backend": self.backend,
            "ms": "" if self.ms is None else f"{self.ms:.1f}",
            "status": self.status,
            "error": " ".join(self.error.split()),
        }


def process_one(job: Job, enhancer: Enhancer, *, overwrite: bool = False, progress: Any = None) -> Result:
    """Read, enhance and atomically write one file. Never raises for a bad file: the error
    comes back as a ``failed`` result (type and message). ``progress`` is passed to
    :meth:`~dermsr.Enhancer.enhance` (tile progress inside a large image)."""
    from .io import read_image, write_image

    t0 = time.perf_counter()
    size_in = None
    try:
        if job.dest.exists() and not overwrite:
            return Result(job.src, job.dest, SKIPPED, backend=enhancer.backend_name, error="output exists")
        image = read_image(job.src)
        size_in = (image.shape[1], image.shape[0])
        if image.dtype.itemsize == 2 and job.dest.suffix.lower() in _EIGHT_BIT_ONLY:
            raise InputError(f"16-bit image cannot be written as {job.dest.suffix} without loss; use --format png")
        if image.ndim == 3 and image.shape[2] == 4 and job.dest.suffix.lower() in _NO_ALPHA:
            raise InputError(f"the image has an alpha channel, which {job.dest.suffix} cannot store; use --format png")
        out = enhancer.enhance(image, progress=progress)
        write_image(job.dest, out)
    except Exception as exc:  # one bad file must not stop the others
        return Result(job.src, job.dest, FAILED, size_in, backend=enhancer.backend_name,
                      ms=(time.perf_counter() - t0) * 1e3, error=f"{type(exc).__name__}: {exc}")
    return Result(job.src, job.dest, OK, size_in, (out.shape[1], out.shape[0]), enhancer.backend_name,
                  (time.perf_counter() - t0) * 1e3)


# -- many files --------------------------------------------------------------------------------
def _worker_main(conn: Any, enhancer: Enhancer, overwrite: bool, parent: int) -> None:
    """A worker process: open the session, then process the jobs the parent sends, one at a
    time, until it sends None or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    error = ""
    try:
        enhancer.session  # noqa: B018 - opened now, so per-file times exclude start-up
    except Exception as exc:  # a session that cannot open fails every file it is given
        error = f"{type(exc).__name__}: {exc}"
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if job is None or os.getppid() != parent:
            return
        if error:
            result = Result(job.src, job.dest, FAILED, backend=enhancer.backend_name, error=error)
        else:
            result = process_one(job, enhancer, overwrite=overwrite)
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    """The parent's handle on one worker process and the job it holds."""

    def __init__(self, ctx: Any, enhancer: Enhancer, overwrite: bool) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, enhancer, overwrite, os.getpid()),
                                name="dermsr-enhance-worker", daemon=True)
        self.proc.start()
        child.close()
        self.job: Job | None = None

    def give(self, job: Job) -> None:
        self.job = job
        self.conn.send(job)

    def stop(self, timeout: float) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.conn.close()


class _Interrupt:
    """First Ctrl-C: ask the run to stop after the files in progress. Second: stop now.

    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._main = threading.current_thread() is threading.main_thread()
        self._saved: Any = signal.getsignal(signal.SIGINT) if self._main else None

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("\ndermsr: stopping after the files in progress (Ctrl-C again to abort now)",
              file=sys.stderr, flush=True)

    def ignore(self) -> None:
        """Ignore Ctrl-C for now (processes spawned meanwhile start with it ignored)."""
        if self._main:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def arm(self) -> None:
        if self._main and not self.requested:
            signal.signal(signal.SIGINT, self._handler)

    def restore(self) -> None:
        if self._main:
            signal.signal(signal.SIGINT, self._saved)


def run_jobs(
    jobs: Iterable[Job],
    enhancer: Enhancer,
    on_result: Callable[[Result], Any],
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Any = None,
) -> int:
    """Run ``jobs``, calling ``on_result`` for each as it finishes (completion order).

    ``workers == 1`` runs in this process; more start that many ``spawn`` processes, each
    receiving a pickled copy of ``enhancer`` (which opens its own runtime session there) and
    holding one job at a time. A worker that dies (a crashing runtime, out of memory) fails
    the file it held and is replaced; after ``2 * workers + 1`` deaths no more jobs are
    started. The first Ctrl-C lets the files in progress finish and be reported, then raises
    :class:`KeyboardInterrupt`; a second one raises at once. Returns the number of jobs not
    run because too many workers died (0 normally). ``progress`` (tile progress inside each
    image, see :meth:`~dermsr.Enhancer.enhance`) applies when ``workers == 1``.
    """
    check_int(workers, "workers", lo=1)
    queue = iter(jobs)
    if workers == 1:
        stop = _Interrupt()
        stop.arm()
        try:
            for job in queue:
                if stop.requested:
                    raise KeyboardInterrupt
                on_result(process_one(job, enhancer, overwrite=overwrite, progress=progress))
        finally:
            stop.restore()
        return 0
    ctx = multiprocessing.get_context("spawn")
    max_deaths = 2 * workers + 1  # a runtime that crashes on everything must not loop forever
    deaths = 0
    stop = _Interrupt()
    # Ctrl-C stays ignored while the workers start, so they start with SIGINT ignored (an
    # ignored signal stays ignored across exec) and only the parent decides when to stop
    stop.ignore()
    pool: list[_Worker] = []
    pending: Job | None = None
    try:
        pool = [_Worker(ctx, enhancer, overwrite) for _ in range(workers)]
        stop.arm()

        def next_job() -> Job | None:
            nonlocal pending
            job, pending = (pending, None) if pending is not None else (next(queue, None), None)
            return job

        def feed(w: _Worker) -> None:
            nonlocal pending
            if stop.requested or deaths >= max_deaths:
                return
            job = next_job()
            if job is not None:
                try:
                    w.give(job)
                except OSError:  # died before taking it: put it back
                    w.job, pending = None, job

        for w in pool:
            feed(w)
        while any(w.job is not None for w in pool):
            busy = [w for w in pool if w.job is not None]
            ready = mp_connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=0.2)
            for i, w in enumerate(pool):
                if w.job is None or not (w.conn in ready or w.proc.sentinel in ready):
                    continue
                job, result = w.job, None
                try:
                    if w.conn.poll():
                        result = w.conn.recv()
                except (EOFError, OSError):
                    result = None
                if result is not None:
                    w.job = None
                    on_result(result)
                    feed(w)
                    continue
                if w.proc.is_alive():
                    continue
                # the worker died holding this job: record it, start a fresh worker
                deaths += 1
                on_result(Result(job.src, job.dest, FAILED, backend=enhancer.backend_name,
                                 error=f"worker process died while on this file (exit code {w.proc.exitcode})"))
                w.job = None
                w.stop(0)
                if deaths < max_deaths and not stop.requested:
                    stop.ignore()
                    pool[i] = w = _Worker(ctx, enhancer, overwrite)
                    stop.arm()
                    feed(w)
        if stop.requested:
            raise KeyboardInterrupt
    finally:
        stop.restore()
        for w in pool:
            w.stop(timeout=10)
    left = 0 if pending is None else 1
    return left + sum(1 for _ in queue)


# -- the manifest ------------------------------------------------------------------------------
def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """The last complete row for each output (key: output path relative to the output folder).

    Rows cut short by a killed process are ignored.
    """
    rows: dict[str, dict[str, str]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if None in row or any(row.get(k) is None for k in MANIFEST_FIELDS):
                    continue
                if row["status"] in (OK, SKIPPED, FAILED) and row["output"]:
                    rows[row["output"]] = row
    except FileNotFoundError:
        pass
    return rows


class Manifest:
    """Append-only CSV log of results, one flushed and fsync-ed row per file.

    Opening an existing manifest appends to it (after completing a line a killed run left
    half-written); a new one starts with the header row :data:`MANIFEST_FIELDS`.
    """

    def __init__(self, path: Path, out_dir: Path) -> None:
        self.path = Path(path)
        self.out_dir = out_dir
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            last = b""
            if self.path.exists() and self.path.stat().st_size:
                with open(self.path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    last = f.read(1)
            self._f = open(self.path, "a", newline="", encoding="utf-8")
        except OSError as exc:
            raise WriteError(f"{self.path}: cannot open the manifest ({exc.strerror or exc})") from exc
        if not last:
            self._write(dict(zip(MANIFEST_FIELDS, MANIFEST_FIELDS, strict=True)))
        elif last != b"\n":
            self._write_text("\r\n")  # finish the row a killed run left half-written

    def _write_text(self, text: str) -> None:
        """Append, flush and sync ``text``; a failure (a full disk) names the manifest."""
        try:
            self._f.write(text)
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:
            raise WriteError(f"{self.path}: cannot append to the manifest ({exc.strerror or exc})") from exc

    def _write(self, row: dict[str, str]) -> None:
        buf = io.StringIO()
        csv.DictWriter(buf, MANIFEST_FIELDS).writerow(row)
        self._write_text(buf.getvalue())  # one write per row

    def append(self, result: Result) -> None:
        self._write(result.row(self.out_dir))

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_partials(dests: Iterable[Path]) -> int:
    """Delete temporary ``.<name>.*.part`` files a killed run left beside these outputs."""
    by_dir: dict[Path, set[str]] = {}
    for d in dests:
        by_dir.setdefault(d.parent, set()).add(d.name)
    removed = 0
    for folder, names in by_dir.items():
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            n = entry.name
            if n.startswith(".") and n.endswith(".part") and n[1:].rsplit(".", 2)[0] in names:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:  # pragma: no cover - raced with another cleaner
                    pass
    return removed


# -- the whole run -----------------------------------------------------------------------------
@dataclass
class Summary:
    """Counts of one :func:`enhance_folder` run."""

    total: int = 0
    ok: int = 0
    skipped: int = 0  # output existed (already done, or written by a killed run)
    failed: int = 0
    not_run: int = 0  # not started because too many worker processes died
    partials_removed: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    pixels_out: int = 0
    failures: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> None:
        if result.status == OK:
            self.ok += 1
            if result.size_out:
                self.pixels_out += result.size_out[0] * result.size_out[1]
        elif result.status == SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(result)

    def __str__(self) -> str:
        rate = self.ok / self.seconds if self.seconds > 0 else 0.0
        parts = [f"{self.ok} enhanced", f"{self.skipped} skipped (output exists)", f"{self.failed} failed"]
        if self.not_run:
            parts.append(f"{self.not_run} not run (too many worker processes died)")
        text = f"{', '.join(parts)} of {self.total} in {self.seconds:.1f} s ({rate:.2f} img/s)"
        if self.interrupted:
            text += "; interrupted: run the same command again to resume"
        return text


def enhance_folder(
    inputs: Sequence[Path],
    out_dir: Path,
    enhancer: Enhancer,
    *,
    recursive: bool = False,
    fmt: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    on_planned: Callable[[int], Any] | None = None,
    on_result: Callable[[Result], Any] | None = None,
    progress: Any = None,
) -> Summary:
    """Enhance every image in ``inputs`` into ``out_dir`` (structure mirrored), resumably.

    Existing outputs are skipped unless ``overwrite`` (writes are atomic, so an existing
    output is complete). Each finished file is appended to ``out_dir/manifest.csv`` at once.
    Only one run may write into ``out_dir`` at a time: a lock file guards it, removed when the
    run ends (a killed run leaves it, unlocked; the next run takes it and removes it). Ctrl-C
    stops after the files in progress, with ``Summary.interrupted`` set. ``progress``: tile
    progress inside each image (:meth:`~dermsr.Enhancer.enhance`; ``workers == 1`` only).
    """
    from filelock import FileLock, Timeout

    out_dir = Path(out_dir)
    fmt = fmt.lower().lstrip(".") if fmt else None
    if fmt is not None and f".{fmt}" not in IMAGE_SUFFIXES:
        raise InputError(f"unsupported output format {fmt!r}; expected one of {IMAGE_SUFFIXES}")
    found = find_images(inputs, recursive=recursive, exclude_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_NAME
    previous = read_manifest(manifest_path)
    own = _own_outputs(found, out_dir, enhancer.scale)
    found = [(src, rel) for src, rel in found if src not in own and not _listed_output(src, out_dir, previous)]
    if not found:
        raise InputError("no images found in the given inputs")
    jobs, refused = plan_jobs(found, out_dir, fmt=fmt, scale=enhancer.scale)
    summary = Summary(total=len(found))
    lock = FileLock(str(out_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise InputError(f"{out_dir}: another 'dermsr enhance' is writing here (lock {LOCK_NAME})") from None
    t0 = time.perf_counter()
    try:
        summary.partials_removed = remove_partials(j.dest for j in jobs)
        if on_planned is not None:
            on_planned(len(found))
        with Manifest(manifest_path, out_dir) as manifest:

            def record(result: Result) -> None:
                already = result.status == SKIPPED and (
                    previous.get(result.row(out_dir)["output"], {}).get("status") in (OK, SKIPPED)
                )
                if not already:
                    manifest.append(result)
                summary.add(result)
                if on_result is not None:
                    on_result(result)

            for r in refused:
                record(r)
            todo = []
            for job in jobs:  # skip finished outputs here: no worker needs to see them
                if job.dest.exists() and not overwrite:
                    record(Result(job.src, job.dest, SKIPPED, backend=enhancer.backend_name, error="output exists"))
                else:
                    todo.append(job)
            try:
                summary.not_run = run_jobs(todo, enhancer, record, workers=workers, overwrite=overwrite,
                                           progress=progress)
            except KeyboardInterrupt:
                summary.interrupted = True
    finally:
        # removed while still held: a run waiting on this file finds it unlinked and retries
        with contextlib.suppress(OSError):  # Windows: filelock removes it on release instead
            os.unlink(out_dir / LOCK_NAME)
        lock.release()
        summary.seconds = time.perf_counter() - t0
    return summary


def _own_outputs(found: Sequence[tuple[Path, Path]], out_dir: Path, scale: int) -> set[Path]:
    """Files of ``found`` in the output folder that are another found file's output from an
    earlier run (``a_x4.png`` beside ``a.jpg``, whatever the format), when the output folder
    is an input folder: never enhanced again, even without the manifest that lists them."""
    tag = f"_x{scale}"
    stems = {(src.parent, src.stem) for src, _ in found}
    out = out_dir.resolve()
    return {
        src for src, _ in found
        if src.stem.endswith(tag) and (src.parent, src.stem[: -len(tag)]) in stems and _inside(src.resolve(), out)
    }


def _listed_output(src: Path, out_dir: Path, previous: dict[str, dict[str, str]]) -> bool:
    """Whether ``src`` is itself an output recorded in this folder's manifest."""
    if not previous or not _inside(src.resolve(), out_dir.resolve()):
        return False
    return src.resolve().relative_to(out_dir.resolve()).as_posix() in previous
