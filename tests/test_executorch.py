"""ExecuTorch backend and .pte export: agreement with PyTorch, raw-runtime loading, errors, stability.

Exports are slow (seconds each), so the whole file shares one artifact cache and uses four
programs: the backend's default (dynamic ≤548), export_pte's default (dynamic ≤224), one
fixed 7×13 program, and a tiny random model's for the cache-rebuild test.
"""

from __future__ import annotations

import gc
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("executorch")
torch = pytest.importorskip("torch")

from _support import tiny_model  # noqa: E402
from dermsr import Enhancer  # noqa: E402
from dermsr.enhance.backends.executorch import (  # noqa: E402
    ExecuTorchBackend,
    load_pte,
    thread_count,
)
from dermsr.enhance.registry import BackendOptions  # noqa: E402
from dermsr.errors import BackendError, InputError  # noqa: E402
from dermsr.export.cache import ENTRY_FILE, file_sha256  # noqa: E402
from dermsr.export.manifest import MANIFEST_NAME  # noqa: E402
from dermsr.export.pte import (  # noqa: E402
    GRAPHS,
    PTE_NAME,
    PteSpec,
    cached_pte,
    default_max_shape,
    export_pte,
)
from dermsr.models import load_model  # noqa: E402

SIZES = [(1, 1), (7, 13), (33, 20)]


@pytest.fixture(scope="module", autouse=True)
def et_cache(tmp_path_factory):
    """One artifact cache for this file, so each program is exported once."""
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("executorch-cache")
        mp.setenv("DERMSR_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def model():
    return load_model("realesr-animevideov3-x4")


@pytest.fixture(scope="module")
def net(model):
    return model.to_torch()


@pytest.fixture(scope="module")
def et(model, et_cache) -> Enhancer:
    return Enhancer(model, backend="executorch")


@pytest.fixture(scope="module")
def pt(model) -> Enhancer:
    return Enhancer(model, backend="torch")


def torch_ref(net, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


def rand(h: int, w: int, seed: int = 0, n: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def crop224(shared: Path) -> np.ndarray:
    """A 224×224 crop of a real ISIC image as float32 NCHW (the reference study's input size)."""
    import cv2

    bgr = cv2.imread(str(shared / "data" / "dermoscopy" / "ISIC_0000271.jpg"))
    rgb = bgr[272:496, 400:624, ::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255


# -- export_pte: files that ExecuTorch's own runtime runs, no dermsr code in the loop --------

def _raw_run(pte: Path, x: np.ndarray) -> np.ndarray:
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(pte)
    method = program.load_method("forward")
    (y,) = method.execute([torch.from_numpy(x)])
    return y.numpy().copy()


def test_export_pte_fixed_runs_in_raw_runtime(model, net, tmp_path):
    manifest_path = export_pte(model, tmp_path, tile_shape=(7, 13), dynamic=False)
    assert manifest_path == tmp_path / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    assert manifest["format"] == "executorch" and manifest["files"] == {"program": PTE_NAME}
    assert manifest["input"]["shape"] == [1, 3, 7, 13] and manifest["output"]["shape"] == [1, 3, 28, 52]
    assert manifest["tile_shape"] == [7, 13] and manifest["executorch"]["dynamic"] is False
    assert manifest["model"]["sha256"] == model.sha256
    assert manifest["executorch"]["sha256"] == file_sha256(tmp_path / PTE_NAME)
    # residual-first, fixed shape: one XNNPACK subgraph holds everything (18 convolutions + the
    # 1×1 channel repeat, 17 PReLU, the add, PixelShuffle's reshapes); only the unpacking of
    # the delegate's output stays outside
    delegation = manifest["executorch"]["delegation"]
    assert manifest["executorch"]["graph"] == "residual-first"
    assert delegation["delegated_subgraphs"] == 1
    ops = delegation["by_operator"]
    assert ops["aten_convolution_default"] == {"xnnpack": 19, "portable": 0}
    assert ops["aten_prelu_default"] == {"xnnpack": 17, "portable": 0}
    assert {op for op, n in ops.items() if n["portable"]} == {"getitem"}
    x = rand(7, 13, seed=1)
    y = _raw_run(tmp_path / PTE_NAME, x)
    assert np.abs(y - torch_ref(net, x)).max() <= 1e-4


def test_export_pte_default_is_dynamic_up_to_224(model, net, tmp_path, crop224):
    manifest = json.loads(export_pte(model, tmp_path).read_text())
    assert manifest["input"]["shape"] == [1, 3, "H", "W"] and manifest["tile_shape"] is None
    assert manifest["executorch"]["dynamic"] is True
    assert manifest["executorch"]["min_shape"] == [1, 1]
    assert manifest["executorch"]["max_shape"] == [224, 224]
    ops = manifest["executorch"]["delegation"]["by_operator"]
    assert "aten_upsample_nearest2d_vec" not in ops  # the residual-first rewrite removed it
    assert ops["aten_convolution_default"] == {"xnnpack": 19, "portable": 0}
    for h, w in SIZES:  # border-sized windows run exactly, no padding needed
        x = rand(h, w, seed=h)
        assert np.abs(_raw_run(tmp_path / PTE_NAME, x) - torch_ref(net, x)).max() <= 1e-4
    y = _raw_run(tmp_path / PTE_NAME, crop224)
    assert y.shape == (1, 3, 896, 896)
    assert np.abs(y - torch_ref(net, crop224)).max() <= 1e-4


def test_default_max_shape_covers_the_auto_tile(model):
    assert default_max_shape(model) == (548, 548)  # auto tile 512 + 2 × receptive field 18


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("name", ["realesr-animevideov3-x4", "realesr-animevideov3-x2"])
def test_graph_rewrites_are_bit_identical_in_torch(name, graph):
    from dermsr.export.deploy import DeployableSRVGG

    net = load_model(name).to_torch()
    deploy = DeployableSRVGG(net, graph).eval()
    for h, w in [(1, 1), (5, 9), (16, 12)]:
        x = torch.from_numpy(rand(h, w, seed=h * w))
        with torch.inference_mode():
            np.testing.assert_array_equal(deploy(x).numpy(), net(x).numpy())


# what each graph leaves outside XNNPACK in a dynamic-shape program (docs/backends/executorch.md)
PORTABLE = {
    "as-written": {"aten_upsample_nearest2d_vec", "aten_view_copy_default", "getitem", "sym_size", "mul"},
    "residual-first": {"aten_view_copy_default", "getitem", "sym_size", "mul"},
    "deconv": {"getitem"},
}


@pytest.mark.parametrize("graph", GRAPHS)
def test_graphs_delegation_and_agreement_dynamic(graph):
    tiny = tiny_model(seed=3)
    spec = PteSpec((24, 24), True, graph)
    folder = cached_pte(tiny, spec)
    report = json.loads((folder / "export-report.json").read_text())["delegation"]
    assert {op for op, n in report["by_operator"].items() if n["portable"]} == PORTABLE[graph]
    assert report["delegated_subgraphs"] == (1 if graph == "deconv" else 3)
    runner = load_pte(folder / PTE_NAME, spec=spec)
    for h, w in [(1, 1), (5, 9), (24, 17)]:
        x = rand(h, w, seed=w)
        assert np.abs(runner.run(x) - torch_ref(tiny.to_torch(), x)).max() <= 1e-5


def test_export_pte_rejects_bad_arguments(model, tmp_path):
    with pytest.raises(InputError, match="tile_shape"):
        export_pte(model, tmp_path, tile_shape=None, dynamic=False)
    with pytest.raises(InputError, match="tile_shape"):
        export_pte(model, tmp_path, tile_shape=(0, 5))
    with pytest.raises(InputError, match="dynamic"):
        export_pte(model, tmp_path, dynamic="yes")
    assert not (tmp_path / PTE_NAME).exists()


# -- the backend through the Enhancer ------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_matches_torch_small_sizes(et, pt, size):
    x = rand(*size, seed=sum(size))
    a, b = et.run(x), pt.run(x)
    assert a.shape == b.shape == (1, 3, size[0] * 4, size[1] * 4)
    assert np.abs(a - b).max() <= 1e-4


def test_matches_torch_real_224_crop(et, pt, crop224):
    a, b = et.run(crop224), pt.run(crop224)
    assert a.shape == (1, 3, 896, 896)
    assert np.abs(a - b).max() <= 1e-4
    assert psnr(a, b) >= 60


def test_tiled_matches_untiled_torch(model, pt):
    x = rand(33, 20, seed=5)
    tiled = Enhancer(model, backend="executorch", tile=12)
    assert len(tiled.tile_plan(33, 20)) == 6
    assert np.abs(tiled.run(x) - pt.run(x)).max() <= 1e-4


def test_windows_beyond_memory_plan_are_tiled_exactly(model, net):
    # tile=None sends the whole 2×600 strip; the program is planned for 548, so the session
    # cuts it with the full receptive field as context (compared unclamped, straight from the
    # session, against the network itself)
    x = rand(2, 600, seed=7)
    session = ExecuTorchBackend().load(model, BackendOptions())
    assert np.abs(session.run(x) - torch_ref(net, x)).max() <= 1e-4
    whole = Enhancer(model, backend="executorch", tile=None)
    assert np.abs(whole.run(x) - np.clip(torch_ref(net, x), 0, 1)).max() <= 1e-4


def test_batch(et, pt):
    x = rand(9, 11, seed=3, n=3)
    y = et.run(x)
    assert y.shape == (3, 3, 36, 44)
    for i in range(3):
        np.testing.assert_array_equal(y[i : i + 1], et.run(x[i : i + 1]))
    assert np.abs(y - pt.run(x)).max() <= 1e-4


def test_fixed_shape_mode(model, net):
    # one fixed-shape program per window shape; 7×13 was exported above and is reused
    fixed = Enhancer(model, backend="executorch", dynamic=False, tile=None)
    x = rand(7, 13, seed=11)
    assert np.abs(fixed.run(x) - np.clip(torch_ref(net, x), 0, 1)).max() <= 1e-4


def test_uint8_image_in_uint8_out(et, pt, crop224):
    img = np.rint(crop224[0, :, :40, :30].transpose(1, 2, 0) * 255).astype(np.uint8)
    a, b = et.enhance(img), pt.enhance(img)
    assert a.dtype == np.uint8 and a.shape == (160, 120, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


# -- errors -----------------------------------------------------------------------------

def test_corrupt_pte_names_the_file(tmp_path):
    bad = tmp_path / "broken.pte"
    bad.write_bytes(b"not a program" * 100)
    with pytest.raises(BackendError, match="executorch") as info:
        load_pte(bad)
    assert str(bad) in str(info.value)


def test_truncated_pte_names_the_file(model, tmp_path):
    export_pte(model, tmp_path, tile_shape=(7, 13), dynamic=False)
    pte = tmp_path / PTE_NAME
    pte.write_bytes(pte.read_bytes()[:50_000])
    with pytest.raises(BackendError) as info:
        load_pte(pte)
    assert str(pte) in str(info.value)


def test_missing_pte_names_the_file(tmp_path):
    with pytest.raises(BackendError, match=r"missing\.pte"):
        load_pte(tmp_path / "missing.pte")


def test_wrong_shape_is_an_error_not_a_crash(model, tmp_path):
    export_pte(model, tmp_path, tile_shape=(7, 13), dynamic=False)
    spec = PteSpec((7, 13))
    runner = load_pte(tmp_path / PTE_NAME, spec=spec)
    with pytest.raises(InputError, match="7×13"):
        runner.run(rand(7, 12))
    # without a spec the runtime itself refuses a static shape mismatch
    bare = load_pte(tmp_path / PTE_NAME)
    with pytest.raises(BackendError, match=PTE_NAME):
        bare.run(rand(6, 13))
    with pytest.raises(InputError):
        bare.run(rand(8, 13))


def test_cache_entry_that_fails_to_load_is_rebuilt():
    tiny = tiny_model()
    spec = PteSpec((5, 6))
    folder = cached_pte(tiny, spec, validate=lambda f: load_pte(f / PTE_NAME, spec=spec))
    pte = folder / PTE_NAME
    good = pte.read_bytes()
    # garbage whose recorded hash matches: only loading it can tell
    pte.write_bytes(b"\0" * len(good))
    record = json.loads((folder / ENTRY_FILE).read_text())
    record["files"][PTE_NAME]["sha256"] = file_sha256(pte)
    (folder / ENTRY_FILE).write_text(json.dumps(record))
    session = ExecuTorchBackend().load(tiny, BackendOptions(extra={"dynamic": False}))
    x = rand(5, 6)
    assert np.abs(session.run(x) - torch_ref(tiny.to_torch(), x)).max() <= 1e-4
    assert pte.read_bytes() != b"\0" * len(good)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (BackendOptions(device="cuda"), "CPU"),
        (BackendOptions(half=True), "half"),
        (BackendOptions(extra={"dynamc": True}), "unknown executorch option"),
        (BackendOptions(extra={"dynamic": 1}), "dynamic"),
        (BackendOptions(extra={"max_side": 30}), "max_side"),
        (BackendOptions(extra={"graph": "fast"}), "graph"),
    ],
)
def test_bad_options(model, options, match):
    with pytest.raises(InputError, match=match):
        ExecuTorchBackend().load(model, options)


# -- stability: owned buffers, repeated runs, gc pressure, threads -------------------------

def test_repeated_runs_bit_identical(et):
    x = rand(33, 20, seed=2)
    first = et.run(x)
    for _ in range(4):
        np.testing.assert_array_equal(et.run(x), first)


def test_outputs_survive_gc_pressure_and_size_changes(et):
    inputs = {s: rand(*s, seed=10 + i) for i, s in enumerate(SIZES)}
    expected = {s: et.run(x.copy()) for s, x in inputs.items()}
    kept = []
    for i in range(12):
        s = SIZES[i % len(SIZES)]
        y = et.run(inputs[s].copy())  # the input copy dies right after the call
        kept.append((s, y))
        junk = [np.full((64, 64), i, np.float32) for _ in range(20)]  # reuse freed memory
        del junk
        gc.collect()
    for s, y in kept:  # no later call overwrote an earlier output
        np.testing.assert_array_equal(y, expected[s])


def test_concurrent_threads(et):
    jobs = [rand(*SIZES[i % 3], seed=100 + i) for i in range(12)]
    expected = [et.run(x) for x in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(et.run, jobs))
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_threads_option_and_pool_reset(model, et):
    x = rand(33, 20, seed=4)
    before = et.run(x)
    default = thread_count()
    one = Enhancer(model, backend="executorch", threads=1)
    y1 = one.run(x)
    assert thread_count() == 1
    assert np.abs(y1 - before).max() <= 1e-5
    # the default session reloads its program on the restored pool and is unchanged
    np.testing.assert_array_equal(et.run(x), before)
    assert thread_count() == default


def test_runtime_log_lines_stay_out_of_the_terminal_unless_verbose(tmp_path):
    """ExecuTorch's C++ cpuinfo lines ('Failed to open midr file ...') written to fd 2 while it
    loads are kept out of stderr; ``dermsr -v`` lets them through."""
    import os
    import subprocess
    import sys

    from dermsr.io import write_image

    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    cmd = [sys.executable, "-m", "dermsr", "enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"),
           "--backend", "executorch", "--quiet", "--overwrite"]
    env = dict(os.environ)  # the test cache: the program is exported once
    env.pop("DERMSR_VERBOSE", None)
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0, quiet.stderr
    assert "cpuinfo" not in quiet.stderr and quiet.stderr.count("\n") == 1, quiet.stderr  # the summary only
    verbose = subprocess.run([*cmd[:3], "-v", *cmd[3:]], capture_output=True, text=True, env=env, timeout=600)
    assert verbose.returncode == 0, verbose.stderr
    if not Path("/sys/devices/soc0/image_version").exists():  # where cpuinfo complains (x86 Linux)
        assert "Failed to open midr file" in verbose.stderr


def test_quiet_stderr_replays_what_it_caught_when_the_block_fails():
    import subprocess
    import sys

    code = (
        "import os\n"
        "from dermsr.enhance.backends._common import quiet_stderr\n"
        "with quiet_stderr():\n"
        "    os.write(2, b'native noise\\n')\n"
        "try:\n"
        "    with quiet_stderr():\n"
        "        os.write(2, b'native explanation\\n')\n"
        "        raise RuntimeError('boom')\n"
        "except RuntimeError:\n"
        "    pass\n"
        "os.write(2, b'after\\n')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == "native explanation\nafter\n"
