"""Folder processing: planning, manifest, error isolation, resume after Ctrl-C and SIGKILL."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import dermsr
from dermsr import Enhancer
from dermsr.backends import Capabilities, SessionBase, resolve_backend
from dermsr.cli import main
from dermsr.data import sample_images
from dermsr.enhance import registry
from dermsr.folder import (
    MANIFEST_FIELDS,
    Manifest,
    Result,
    enhance_folder,
    find_images,
    plan_jobs,
    probe_16bit,
    read_manifest,
    remove_partials,
)
from dermsr.io import read_image, write_image


def _crops(n: int, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """``n`` small RGB uint8 crops of the bundled samples, area-downscaled to ``sizes`` (w, h)."""
    imgs = [read_image(p) for p in sample_images()]
    out = []
    for i in range(n):
        img = imgs[i % len(imgs)]
        h, w = img.shape[:2]
        y0 = (i * 97) % (h // 2)
        part = img[y0 : y0 + h // 2, : w // 2]
        out.append(cv2.resize(part, sizes[i % len(sizes)], interpolation=cv2.INTER_AREA))
    return out


def _manifest_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _outputs(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.csv" and not p.name.startswith("."))


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer(threads=1)


# -- planning --------------------------------------------------------------------------------
def test_find_images_mirrors_structure_and_skips_output_folder(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    for rel in ("a.png", "sub/b.jpg", "sub/deeper/c.tif", "out/old_x4.png"):
        write_image(tmp_path / rel, img)
    (tmp_path / "notes.txt").write_text("not an image")
    flat = find_images([tmp_path], exclude_dir=tmp_path / "out")
    assert [rel.as_posix() for _, rel in flat] == ["a.png"]
    deep = find_images([tmp_path], recursive=True, exclude_dir=tmp_path / "out")
    assert [rel.as_posix() for _, rel in deep] == ["a.png", "sub/b.jpg", "sub/deeper/c.tif"]
    with pytest.raises(dermsr.errors.InputError, match="no such file or folder"):
        find_images([tmp_path / "missing"])


def test_plan_refuses_input_overwrite_and_name_collisions(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    for rel in ("a.png", "a_x4.png", "b.png", "b.jpg"):
        write_image(tmp_path / rel, img)
    found = find_images([tmp_path])
    jobs, refused = plan_jobs(found, tmp_path, fmt="png", scale=4)
    assert sorted(j.rel.as_posix() for j in jobs) == ["a_x4_x4.png", "b_x4.png"]
    errors = sorted(r.error for r in refused)
    assert len(errors) == 2
    assert "refusing to overwrite an input file" in errors[0] or "refusing" in errors[1]
    assert any("already used by" in e for e in errors)


def test_probe_16bit_agrees_with_opencv(tmp_path):
    for suffix in (".png", ".tif"):
        for dtype in (np.uint8, np.uint16):
            p = tmp_path / f"x_{np.dtype(dtype).name}{suffix}"
            write_image(p, np.zeros((5, 6, 3), dtype))
            decoded = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            assert probe_16bit(p) == (decoded.dtype == np.uint16)
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert probe_16bit(tmp_path / "junk.png") is False


def test_sixteen_bit_png_goes_to_png_even_with_jpg_format(tmp_path, enhancer):
    src = tmp_path / "in"
    write_image(src / "scan.png", np.full((6, 5, 3), 40000, np.uint16))
    summary = enhance_folder([src], tmp_path / "out", enhancer, fmt="jpg")
    assert summary.ok == 1
    out = cv2.imread(str(tmp_path / "out" / "scan_x4.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (24, 20, 3)


# -- manifest --------------------------------------------------------------------------------
def test_manifest_appends_and_survives_a_half_written_row(tmp_path):
    path = tmp_path / "manifest.csv"
    r = Result(tmp_path / "a.png", tmp_path / "a_x4.png", "ok", (3, 2), (12, 8), "torch", 12.345)
    with Manifest(path, tmp_path) as m:
        m.append(r)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{tmp_path / 'b.png'},b_x4.png,3x2")  # killed mid-row
    with Manifest(path, tmp_path) as m:
        m.append(Result(tmp_path / "c.png", tmp_path / "c_x4.png", "failed", error="Bad, thing\nhappened"))
    rows = _manifest_rows(tmp_path)
    assert list(rows[0]) == list(MANIFEST_FIELDS)
    assert rows[0] == {"input": str(tmp_path / "a.png"), "output": "a_x4.png", "size_in": "3x2",
                       "size_out": "12x8", "backend": "torch", "ms": "12.3", "status": "ok", "error": ""}
    current = read_manifest(path)
    assert sorted(current) == ["a_x4.png", "c_x4.png"]  # the cut row is ignored
    assert current["c_x4.png"]["error"] == "Bad, thing happened"
    assert path.read_text().count("input,output") == 1


def test_remove_partials_only_touches_our_temporaries(tmp_path):
    (tmp_path / ".a_x4.png.k3j2.part").write_bytes(b"partial")
    (tmp_path / ".other.png.zz.part").write_bytes(b"not ours")
    (tmp_path / "a_x4.png.part").write_bytes(b"not hidden: not ours")
    assert remove_partials([tmp_path / "a_x4.png"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.png.zz.part", "a_x4.png.part"]


# -- a whole run, in process -------------------------------------------------------------------
def test_run_records_every_file_and_isolates_a_corrupt_one(tmp_path, enhancer, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    crops = _crops(4, [(20, 16), (18, 14)])
    names = ["a.png", "b.png", "sub/c.png", "sub/d.jpg"]
    for name, img in zip(names, crops, strict=True):
        write_image(src / name, img)
    good = write_image(tmp_path / "whole.jpg", crops[0]).read_bytes()
    (src / "sub" / "broken.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    rc = main(["enhance", str(src), "-o", str(out), "--recursive", "--threads", "1", "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "4 enhanced" in err and "1 failed" in err and "broken.jpg" in err
    rows = {r["output"]: r for r in _manifest_rows(out)}
    assert sorted(rows) == ["a_x4.png", "b_x4.png", "sub/broken_x4.jpg", "sub/c_x4.png", "sub/d_x4.jpg"]
    bad = rows.pop("sub/broken_x4.jpg")
    assert bad["status"] == "failed" and "truncated" in bad["error"] and bad["input"].endswith("broken.jpg")
    assert not (out / "sub" / "broken_x4.jpg").exists()
    # nothing but outputs and the manifest is left behind: no lock, no temporary file
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted([*rows, "manifest.csv"])
    for rel, row in rows.items():
        assert row["status"] == "ok" and row["backend"] == resolve_backend("auto") and float(row["ms"]) > 0
        inp = cv2.imread(row["input"], cv2.IMREAD_UNCHANGED)
        got = cv2.imread(str(out / rel), cv2.IMREAD_UNCHANGED)
        assert row["size_in"] == f"{inp.shape[1]}x{inp.shape[0]}"
        assert row["size_out"] == f"{got.shape[1]}x{got.shape[0]}" == f"{4 * inp.shape[1]}x{4 * inp.shape[0]}"
        if rel.endswith(".png"):  # lossless: exactly what the Enhancer gives
            np.testing.assert_array_equal(read_image(out / rel), enhancer.enhance(read_image(row["input"])))


def test_rerun_skips_finished_outputs_and_never_touches_inputs(tmp_path):
    src = tmp_path / "in"
    for i, img in enumerate(_crops(2, [(12, 10)])):
        write_image(src / f"im{i}.png", img)
    before = {p: p.read_bytes() for p in src.iterdir()}
    # the output folder is the input folder: inputs must survive, outputs must not be re-read
    assert main(["enhance", str(src), "-o", str(src), "--threads", "1", "--quiet"]) == 0
    stamps = {p: p.stat().st_mtime_ns for p in src.glob("*_x4.png")}
    assert len(stamps) == 2
    assert main(["enhance", str(src), "-o", str(src), "--threads", "1", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in src.glob("*_x4.png")} == stamps
    assert sorted(p.name for p in src.glob("*.png")) == ["im0.png", "im0_x4.png", "im1.png", "im1_x4.png"]
    for p, data in before.items():
        assert p.read_bytes() == data
    assert [r["status"] for r in _manifest_rows(src)] == ["ok", "ok"]  # a rerun adds no rows


# -- interruption: Ctrl-C and SIGKILL in a subprocess with a worker pool ------------------------
def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "dermsr", "enhance", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(dermsr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    return env


def _start_and_stop(args: list[str], out: Path, sig: int, log: Path) -> tuple[int, int]:
    """Start the CLI, wait for its first finished file, send ``sig`` to its whole process
    group (parent and workers), and return (exit status, files done when the signal was sent)."""
    with open(log, "w") as f:
        proc = subprocess.Popen(_cli(args), stdout=f, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    deadline = time.monotonic() + 240
    done = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "manifest.csv").exists():
                done = sum(r["status"] == "ok" for r in _manifest_rows(out))
                if done:
                    break
            time.sleep(0.01)
        os.killpg(proc.pid, sig)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # pragma: no cover - only if the test itself fails
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if sig == signal.SIGKILL:  # orphaned workers may linger a moment: make sure they are gone
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return rc, done


def _check_complete_outputs(out: Path, n_inputs: int) -> list[Path]:
    outputs = _outputs(out)
    for p in outputs:
        raw = np.frombuffer(p.read_bytes(), np.uint8)
        decoded = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)  # independent decoder check
        assert decoded is not None, f"{p} does not decode"
        read_image(p)  # also refuses truncated files
    assert len(outputs) <= n_inputs
    return outputs


@pytest.fixture(scope="module")
def six_images(tmp_path_factory) -> tuple[Path, Path]:
    """Six small PNGs in two folders, and the outputs of a plain single-process run."""
    root = tmp_path_factory.mktemp("six")
    src = root / "in"
    for i, img in enumerate(_crops(6, [(96, 80), (88, 96), (80, 88)])):
        write_image(src / ("sub" if i % 2 else "") / f"img{i}.png", img)
    ref = root / "ref"
    assert main(["enhance", str(src), "-o", str(ref), "--recursive", "--threads", "1", "--quiet"]) == 0
    return src, ref


def _assert_same_as_reference(out: Path, ref: Path) -> None:
    got = [p.relative_to(out) for p in _outputs(out)]
    want = [p.relative_to(ref) for p in _outputs(ref)]
    assert got == want and len(got) == 6  # every output present, exactly once
    for rel in got:
        np.testing.assert_array_equal(read_image(out / rel), read_image(ref / rel))
    assert not list(out.rglob("*.part"))


@pytest.mark.slow
def test_sigkill_midway_then_resume_loses_nothing(six_images, tmp_path):
    src, ref = six_images
    out = tmp_path / "out"
    args = [str(src), "-o", str(out), "--recursive", "--workers", "2", "--threads", "1", "--quiet"]
    rc, done = _start_and_stop(args, out, signal.SIGKILL, tmp_path / "killed.log")
    assert rc == -signal.SIGKILL
    assert 1 <= done < 6, f"the kill did not land midway ({done} of 6 done)"
    partial = _check_complete_outputs(out, 6)
    assert len(partial) < 6
    resumed = subprocess.run(_cli(args), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{6 - len(partial)} enhanced, {len(partial)} skipped" in resumed.stderr
    _assert_same_as_reference(out, ref)
    final = read_manifest(out / "manifest.csv")
    assert sorted(final) == sorted(p.relative_to(out).as_posix() for p in _outputs(out))
    assert all(row["status"] in ("ok", "skipped") for row in final.values())


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_then_resume_completes(six_images, tmp_path):
    src, ref = six_images
    out = tmp_path / "out"
    args = [str(src), "-o", str(out), "--recursive", "--workers", "2", "--threads", "1"]
    rc, done = _start_and_stop(args, out, signal.SIGINT, tmp_path / "interrupted.log")
    assert 1 <= done < 6, f"the interrupt did not land midway ({done} of 6 done)"
    log = (tmp_path / "interrupted.log").read_text()
    assert rc == 130, log
    assert "interrupted: run the same command again to resume" in log
    partial = _check_complete_outputs(out, 6)
    # the workers finished and the parent recorded the files they held
    assert sorted(read_manifest(out / "manifest.csv")) == sorted(p.relative_to(out).as_posix() for p in partial)
    assert main(["enhance", *args, "--quiet"]) == 0
    _assert_same_as_reference(out, ref)


# -- a worker process that dies; a second run into the same folder -----------------------------
class _DyingSession(SessionBase):
    """Nearest-neighbour ×4, but the whole process exits on a 13x13 image (or on every image
    with ``always``): a crashing runtime."""

    backend = "dying-test"
    capabilities = Capabilities(thread_safe=True, batch=True)

    def __init__(self, always: bool) -> None:
        self.always = always

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.always or x.shape[2:] == (13, 13):
            os._exit(3)
        return x.repeat(4, axis=2).repeat(4, axis=3)


class _DyingBackend(registry.Backend):
    name = "dying-test"
    runtime_module = "numpy"

    def load(self, model, options):
        return _DyingSession(bool(options.extra.get("always")))


@pytest.fixture
def dying_backend():
    registry.register(_DyingBackend)
    yield "dying-test"
    registry.unregister("dying-test")


@pytest.mark.slow
def test_a_crashing_file_fails_alone_and_its_worker_is_replaced(tmp_path, dying_backend):
    src, out = tmp_path / "in", tmp_path / "out"
    write_image(src / "a_poison.png", np.zeros((13, 13, 3), np.uint8))
    for i in range(5):
        write_image(src / f"b{i}.png", np.full((8, 8, 3), 40 * i, np.uint8))
    summary = enhance_folder([src], out, Enhancer(backend=dying_backend), workers=2)
    assert (summary.ok, summary.failed, summary.not_run) == (5, 1, 0)
    rows = read_manifest(out / "manifest.csv")
    assert rows["a_poison_x4.png"]["status"] == "failed"
    assert "worker process died while on this file (exit code 3)" in rows["a_poison_x4.png"]["error"]
    for i in range(5):
        got = read_image(out / f"b{i}_x4.png")
        np.testing.assert_array_equal(got, np.full((32, 32, 3), 40 * i, np.uint8))


@pytest.mark.slow
def test_a_runtime_that_always_crashes_stops_the_run(tmp_path, dying_backend):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(8):
        write_image(src / f"b{i}.png", np.zeros((4, 4, 3), np.uint8))
    summary = enhance_folder([src], out, Enhancer(backend=dying_backend, always=True), workers=2)
    # after 2 * workers + 1 = 5 deaths nothing new starts; the other worker's file still counts
    assert summary.ok == 0 and 5 <= summary.failed <= 6 and summary.failed + summary.not_run == 8
    assert f"{summary.not_run} not run (too many worker processes died)" in str(summary)


def test_second_run_into_the_same_folder_is_refused(tmp_path, enhancer):
    from filelock import FileLock

    from dermsr.folder import LOCK_NAME

    src, out = tmp_path / "in", tmp_path / "out"
    write_image(src / "a.png", np.zeros((4, 4, 3), np.uint8))
    out.mkdir()
    with FileLock(str(out / LOCK_NAME)), pytest.raises(dermsr.errors.InputError, match="another 'dermsr enhance'"):
        enhance_folder([src], out, enhancer)
    assert (out / LOCK_NAME).exists()  # as a killed run leaves it: the file, unlocked
    assert enhance_folder([src], out, enhancer).ok == 1  # released: works
    assert not (out / LOCK_NAME).exists()  # and the run that took it removed it
