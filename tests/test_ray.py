"""dermsr.integrations.ray: batch functions without Ray, then the real thing on a local Ray."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dermsr import Enhancer
from dermsr.backends import resolve_backend
from dermsr.data import sample_images
from dermsr.errors import InputError
from dermsr.folder import enhance_folder
from dermsr.integrations.ray import EnhanceBatch, enhance_dataset, read_batch, write_batch
from dermsr.io import read_image, write_image

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'dermsr[ray]')")


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer(threads=1)


@pytest.fixture(scope="module")
def small_samples() -> list[np.ndarray]:
    """The three bundled samples downscaled /32 (47x35, 46x32, 32x24): three distinct sizes."""
    out = []
    for p in sample_images():
        img = read_image(p)
        out.append(cv2.resize(img, (img.shape[1] // 32, img.shape[0] // 32), interpolation=cv2.INTER_AREA))
    return out


def test_importing_the_module_does_not_import_ray():
    assert "ray" not in sys.modules or HAVE_RAY  # the import above must not need Ray


# -- the batch functions, no Ray needed -------------------------------------------------------
def test_enhance_batch_stacked_and_ragged_columns(enhancer, small_samples):
    fn = EnhanceBatch(threads=1)
    ragged = np.empty(3, dtype=object)
    for i, img in enumerate(small_samples):
        ragged[i] = img
    out = fn({"image": ragged, "path": np.array(["a", "b", "c"])})
    assert out["image"].dtype == object and out["path"].tolist() == ["a", "b", "c"]
    for got, img in zip(out["image"], small_samples, strict=True):
        np.testing.assert_array_equal(got, enhancer.enhance(img))  # sizes differ: no batching
    same = np.stack([img[:20, :24] for img in small_samples])
    out = fn({"image": same})
    assert out["image"].shape == (3, 80, 96, 3) and out["image"].dtype == np.uint8
    for got, img in zip(out["image"], same, strict=True):
        assert np.abs(got.astype(int) - enhancer.enhance(img).astype(int)).max() <= 1  # batched
    with pytest.raises(InputError, match="no column 'pixels'"):
        EnhanceBatch(threads=1, column="pixels")({"image": same})


def test_read_enhance_write_isolate_a_bad_file(tmp_path, enhancer, small_samples):
    write_image(tmp_path / "a.png", small_samples[0])
    write_image(tmp_path / "b.png", small_samples[1][..., 0])  # grey
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    batch = {
        "path": np.array([str(tmp_path / n) for n in ("a.png", "b.png", "c.png")], dtype=object),
        "output": np.array([str(tmp_path / "out" / n) for n in ("a_x4.png", "b_x4.png", "c_x4.png")], dtype=object),
    }
    batch = read_batch(batch)
    assert batch["size_in"].tolist() == ["47x35", "46x32", ""]
    assert batch["error"][2].startswith("ImageReadError")
    batch = EnhanceBatch(threads=1)(batch)
    rows = write_batch(batch)
    assert rows["status"].tolist() == ["ok", "ok", "failed"]
    assert rows["size_out"].tolist() == ["188x140", "184x128", ""]
    assert rows["backend"].tolist() == [resolve_backend("auto")] * 3 and np.isnan(rows["ms"][2]) and rows["ms"][0] > 0
    assert "image" not in rows
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "a_x4.png"), enhancer.enhance(small_samples[0]))
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "b_x4.png"), enhancer.enhance(small_samples[1][..., 0]))
    assert not (tmp_path / "out" / "c_x4.png").exists()
    again = write_batch(batch)
    assert again["status"].tolist() == ["skipped", "skipped", "failed"]


# -- on a local Ray instance -------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    if not HAVE_RAY:
        pytest.skip("ray is not installed (pip install 'dermsr[ray]')")
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"ray.init took {time.perf_counter() - t0:.1f} s")
    yield ray
    ray.shutdown()


@needs_ray
@pytest.mark.slow
def test_map_batches_with_actors_matches_single_process(local_ray, enhancer, small_samples):
    ray = local_ray
    ds = ray.data.from_items([{"image": img, "k": i} for i, img in enumerate(small_samples)])
    ds = ds.map_batches(EnhanceBatch, fn_constructor_kwargs={"threads": 1}, concurrency=1,
                        batch_size=3, batch_format="numpy")
    rows = sorted(ds.take_all(), key=lambda r: r["k"])
    assert [r["k"] for r in rows] == [0, 1, 2]
    for row, img in zip(rows, small_samples, strict=True):
        np.testing.assert_array_equal(np.asarray(row["image"]), enhancer.enhance(img))


@needs_ray
@pytest.mark.slow
def test_enhance_dataset_recipe_equals_the_folder_command(local_ray, tmp_path, small_samples):
    src = tmp_path / "in"
    write_image(src / "rgb.png", small_samples[0])
    write_image(src / "sub" / "grey.png", small_samples[1][..., 1])
    write_image(src / "sub" / "deep16.png", small_samples[2].astype(np.uint16) * 257)
    (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    ref = tmp_path / "ref"
    summary = enhance_folder([src], ref, Enhancer(threads=1), recursive=True)
    assert summary.ok == 3 and summary.failed == 1

    out = tmp_path / "ray-out"
    results = enhance_dataset([src], out, recursive=True, threads=1, concurrency=1, batch_size=2).to_pandas()
    by_output = {Path(o).relative_to(out).as_posix(): r for o, r in zip(results["output"], results.to_dict("records"), strict=True)}
    assert sorted(by_output) == ["rgb_x4.png", "sub/broken_x4.jpg", "sub/deep16_x4.png", "sub/grey_x4.png"]
    assert by_output["sub/broken_x4.jpg"]["status"] == "failed"
    assert "truncated" in by_output["sub/broken_x4.jpg"]["error"]
    for rel in ("rgb_x4.png", "sub/deep16_x4.png", "sub/grey_x4.png"):
        assert by_output[rel]["status"] == "ok"
        got, want = read_image(out / rel), read_image(ref / rel)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    # resume: finished outputs are not planned again; only the broken file is retried
    again = enhance_dataset([src], out, recursive=True, threads=1).to_pandas()
    assert again["status"].tolist() == ["failed"]
