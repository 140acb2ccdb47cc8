"""Model import: NCNN fidelity against NCNN itself, checkpoint formats, refused pickles."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from _support import tiny_model
from dermsr.errors import CheckpointError, UnknownNameError, UnsafeCheckpointError
from dermsr.models import (
    ModelConfig,
    expected_shapes,
    import_ncnn,
    infer_config,
    load_model,
    load_state_dict,
    ncnn_weights_dir,
)

ncnn = pytest.importorskip("ncnn")


def _ncnn_run(param: Path, binf: Path, chw: np.ndarray, names: tuple[str, str] = ("data", "output")) -> np.ndarray:
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(binf)) == 0
    inp = np.ascontiguousarray(chw, dtype=np.float32)
    with net.create_extractor() as ex:
        ex.input(names[0], ncnn.Mat(inp))
        ret, out = ex.extract(names[1])
        assert ret == 0
        result = np.array(out, copy=True)
    del inp
    return result


@pytest.mark.parametrize("scale", [4, 2, 3])
def test_imported_weights_reproduce_ncnn_on_real_images(scale, isic_crop, shared):
    """The PyTorch model built from the NCNN files gives NCNN's own output to ≤ 1e-4."""
    model = load_model(f"realesr-animevideov3-x{scale}")
    stem = f"REALESRGAN_ANIMAVIDEOV3_UP{scale}X"
    d = ncnn_weights_dir()
    images = [isic_crop]
    import cv2

    clinical = cv2.imread(str(shared / "data" / "clinical" / "PAT_995_1867_5.png"), cv2.IMREAD_COLOR)
    images.append(cv2.resize(clinical, (41, 37), interpolation=cv2.INTER_AREA)[:, :, ::-1])
    net = model.to_torch()
    for img in images:
        chw = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 255
        ref = _ncnn_run(d / f"{stem}.param", d / f"{stem}.bin", chw)
        with torch.inference_mode():
            out = net(torch.from_numpy(chw)[None]).numpy()[0]
        assert out.shape == (3, img.shape[0] * scale, img.shape[1] * scale)
        assert np.abs(out - ref).max() <= 1e-4


def test_builtin_metadata_matches_design_facts():
    m = load_model("realesr-animevideov3-x4")
    info = m.info()
    assert (info["scale"], info["num_conv"], info["num_feat"]) == (4, 16, 64)
    # conv 3→64 + PReLU(64), 16 × (conv 64→64 + PReLU(64)), conv 64→48; 3×3 kernels with biases
    assert info["num_params"] == (3 * 64 * 9 + 64 + 64) + 16 * (64 * 64 * 9 + 64 + 64) + (64 * 48 * 9 + 48) == 621_424
    assert info["receptive_field"] == 18
    assert load_model("realesr-animevideov3-x2").scale == 2
    assert load_model("realesr-animevideov3-x3").scale == 3


def test_general_x4v3_layout_is_inferred():
    """realesr-general-x4v3 has 32 body convolutions and 1,213,296 parameters
    ((3·64·9 + 128) + 32 · (64·64·9 + 128) + (64·48·9 + 48))."""
    config = ModelConfig(num_conv=32)
    sd = {k: np.zeros(s, np.float32) for k, s in expected_shapes(config).items()}
    got = infer_config(sd)
    assert got == config
    assert sum(int(np.prod(v.shape)) for v in sd.values()) == 1_213_296


@pytest.mark.parametrize("upscale", [1, 2, 3, 4])
def test_infer_config_round_trips(upscale):
    m = tiny_model(num_conv=3, num_feat=5, upscale=upscale)
    assert infer_config(m.weights) == m.config
    net = m.to_torch()
    assert set(net.state_dict()) == set(m.weights)


def test_relu_network_needs_act_type():
    m = tiny_model(act_type="relu")
    with pytest.raises(CheckpointError, match="act_type"):
        infer_config(m.weights)
    assert infer_config(m.weights, act_type="relu").act_type == "relu"


def test_foreign_state_dict_is_rejected_with_names():
    with pytest.raises(CheckpointError, match=r"conv_first\.weight"):
        infer_config({"conv_first.weight": np.zeros((64, 3, 3, 3), np.float32)})
    sd = dict(tiny_model().weights)
    sd["body.2.weight"] = np.zeros((8, 8, 5, 5), np.float32)
    with pytest.raises(CheckpointError, match=r"body\.2\.weight"):
        infer_config(sd)


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_checkpoint_wrappers_and_prefixes(tmp_path):
    m = tiny_model()
    sd = m.state_dict()
    other = {k: v + 1 for k, v in sd.items()}
    ema = _save({"params": other, "params_ema": sd}, tmp_path / "ema.pth")
    params = _save({"params": sd}, tmp_path / "params.pth")
    bare = _save(sd, tmp_path / "bare.pt")
    module = _save({"module." + k: v for k, v in sd.items()}, tmp_path / "dp.pth")
    for path in (ema, params, bare, module):
        loaded = load_model(path)
        assert loaded.config == m.config
        for k in m.weights:
            np.testing.assert_array_equal(loaded.weights[k], m.weights[k])


def test_safetensors_checkpoint(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    m = tiny_model()
    path = tmp_path / "w.safetensors"
    safetensors.save_file(m.state_dict(), str(path))
    assert load_model(path).sha256 == m.sha256


class _Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_pickle_that_runs_code_is_refused(tmp_path, container, capsys):
    path = tmp_path / "evil.pth"
    if container == "torch.save":
        torch.save({"params": _Evil()}, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"params": _Evil()}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_state_dict(path)
    assert "this would run code" not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError):
        load_model(p)
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "missing.pth")


def test_unknown_name_suggests_close_match():
    with pytest.raises(UnknownNameError, match="realesr-animevideov3-x4"):
        load_model("realesr-animevideo3-x4")


def _copy_ncnn(tmp_path: Path) -> tuple[Path, Path]:
    d = ncnn_weights_dir()
    param = tmp_path / "m.param"
    binf = tmp_path / "m.bin"
    param.write_bytes((d / "REALESRGAN_ANIMAVIDEOV3_UP4X.param").read_bytes())
    binf.write_bytes((d / "REALESRGAN_ANIMAVIDEOV3_UP4X.bin").read_bytes())
    return param, binf


def test_truncated_or_mismatched_ncnn_files_are_refused(tmp_path):
    param, binf = _copy_ncnn(tmp_path)
    good = binf.read_bytes()
    binf.write_bytes(good[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        import_ncnn(param, binf)
    binf.write_bytes(good + b"\0" * 8)
    with pytest.raises(CheckpointError, match="left over"):
        import_ncnn(param, binf)
    binf.write_bytes(good)
    lines = param.read_text().splitlines()
    param.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(CheckpointError, match="layers"):
        import_ncnn(param, binf)


def test_fp32_ncnn_weights_import(tmp_path):
    """A .bin with fp32-tagged convolution weights imports to the same values as fp16 ones."""
    param, binf = _copy_ncnn(tmp_path)
    config, ref = import_ncnn(param, binf)
    out = bytearray()
    for i in range(config.num_conv + 2):
        w = ref[f"body.{2 * i}.weight"]
        out += struct.pack("<I", 0) + w.astype("<f4").tobytes() + ref[f"body.{2 * i}.bias"].astype("<f4").tobytes()
        if i < config.num_conv + 1:
            out += ref[f"body.{2 * i + 1}.weight"].astype("<f4").tobytes()
    binf.write_bytes(bytes(out))
    config2, got = import_ncnn(param, binf)
    assert config2 == config
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])


WRITTEN = [
    ("tiny-prelu", lambda: tiny_model()),
    ("tiny-relu", lambda: tiny_model(act_type="relu", seed=1)),
    ("tiny-leakyrelu", lambda: tiny_model(act_type="leakyrelu", seed=2)),
    ("x2", lambda: load_model("realesr-animevideov3-x2")),
    ("x3", lambda: load_model("realesr-animevideov3-x3")),
    ("dermsr-isic-x4", lambda: load_model("dermsr-isic-x4")),
]


@pytest.mark.parametrize(("name", "make"), WRITTEN, ids=[w[0] for w in WRITTEN])
def test_numpy_written_ncnn_files_match_pytorch(tmp_path, name, make):
    """NCNN files written from NumPy weights (no torch, no PNNX) read back to the same model,
    and ncnn's own Net running them matches the PyTorch module to ~1e-5 at two sizes."""
    from dermsr.models.ncnn_write import INPUT_NAME, OUTPUT_NAME, ncnn_files

    model = make()
    param, weights = ncnn_files(model)
    (tmp_path / "m.param").write_text(param)
    (tmp_path / "m.bin").write_bytes(weights)
    config, back = import_ncnn(tmp_path / "m.param", tmp_path / "m.bin")
    assert config == model.config and set(back) == set(model.weights)
    assert all(np.array_equal(back[k], model.weights[k]) for k in back)
    net = model.to_torch()
    for h, w in ((19, 26), (8, 5)):
        x = np.random.default_rng(h).random((3, h, w), dtype=np.float32)
        got = _ncnn_run(tmp_path / "m.param", tmp_path / "m.bin", x, (INPUT_NAME, OUTPUT_NAME))
        with torch.no_grad():
            want = net(torch.from_numpy(x)[None])[0].numpy()
        assert got.shape == want.shape
        assert float(np.abs(got - want).max()) < 3e-5, name


def test_numpy_written_bin_is_what_pnnx_writes(tmp_path):
    """The writer's float32 .bin is byte for byte PNNX's for the same model, and its .param has
    PNNX's layers (ReLU kept separate), so the NCNN backend runs what `dermsr export` ships."""
    pytest.importorskip("pnnx")
    from dermsr.export.ncnn import check_param, write_ncnn
    from dermsr.models.ncnn_write import ncnn_files

    model = tiny_model(seed=5)
    pnnx_param, pnnx_bin = write_ncnn(model, tmp_path / "pnnx")
    param, weights = ncnn_files(model)
    assert weights == pnnx_bin.read_bytes()
    (tmp_path / "ours.param").write_text(param)
    check_param(tmp_path / "ours.param")  # in0 -> out0, Interp by scale factors only

    def layer_types(text: str) -> list[str]:
        return [line.split()[0] for line in text.splitlines()[2:]]

    assert layer_types(param) == layer_types(pnnx_param.read_text())
