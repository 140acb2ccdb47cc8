"""Other architectures through the optional spandrel extra (dermsr.models.foreign).

Every checkpoint here is a tiny, randomly initialised network built by this file with spandrel's
own architecture classes and saved as ``.safetensors`` and ``.pth``; nothing is downloaded.
References are independent of dermsr's code paths: the architecture's module called directly
in torch (with the padding its size requirements ask for written out here), torch's own
FlopCounterMode, and ONNX Runtime's InferenceSession on the exported file.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

spandrel = pytest.importorskip("spandrel", reason="the spandrel extra is not installed: pip install 'dermsr[spandrel]'")
torch = pytest.importorskip("torch")

from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.RCAN import RCAN  # noqa: E402
from spandrel.architectures.SAFMN import SAFMN  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402

from _support import tiny_rrdb  # noqa: E402
from dermsr import Enhancer  # noqa: E402
from dermsr.backends import BackendOptions, backend_names, get_backend, resolve_backend  # noqa: E402
from dermsr.errors import CheckpointError, UnsafeCheckpointError, UnsupportedModelError  # noqa: E402
from dermsr.machine import missing_modules  # noqa: E402
from dermsr.models import NetworkConfig, SizeRequirements, load_model  # noqa: E402
from dermsr.models.foreign import TILE_CONTEXT  # noqa: E402

#: name → (tiny network, the size requirements spandrel states for it)
ARCHS = {
    "SPAN": (lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=4), SizeRequirements()),
    "SwinIR": (lambda: SwinIR(upscale=4, in_chans=3, img_size=16, window_size=4, embed_dim=12, depths=[1, 1],
                              num_heads=[2, 2], mlp_ratio=2, upsampler="pixelshuffledirect"),
               SizeRequirements(minimum=16)),
    "RCAN": (lambda: RCAN(scale=4, n_resgroups=1, n_resblocks=2, n_feats=8, reduction=4), SizeRequirements()),
    "ESRGAN": (lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4),  # old keys: model.0.weight
               SizeRequirements(minimum=2)),
    "SAFMN": (lambda: SAFMN(dim=8, n_blocks=1, ffn_scale=2.0, upscaling_factor=4), SizeRequirements(multiple_of=8)),
}
#: max |tiled − untiled| on [0, 1] with the default tile context (96 pixels) on the 24×336
#: strip below; measured ≤ 2.4e-7 for SPAN, SwinIR, ESRGAN and SAFMN. RCAN's channel attention
#: averages over the whole input, so no context makes its tiles exact: measured 1.5e-4 (on a
#: 24×200 strip: 2.4e-4 with 16 pixels, 1.9e-4 with 32, 1.0e-4 with 64).
TILED_TOLERANCE = {"SPAN": 1e-5, "SwinIR": 1e-5, "RCAN": 5e-4, "ESRGAN": 1e-5, "SAFMN": 1e-5}
#: an image whose sides are neither multiples of 8 nor, in height, the minimum of 16
IMAGE = np.random.default_rng(3).integers(0, 256, (13, 21, 3), dtype=np.uint8)


def _calm(net):
    """Rescale the last convolution so the output is about 0.5 ± 0.15 (a random network's output
    is far outside [0, 1], where clamping would hide any difference)."""
    convs = [m for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d) and "mean" not in n]
    last = convs[-1]
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))

    def out(bias: float):
        last.bias.fill_(bias)
        return net(x.clone())

    with torch.no_grad():
        last.weight.mul_(0.15 / float(out(0.0).std()))
        low, high = out(0.0), out(1.0)
        last.bias.fill_((0.5 - float(low.mean())) / float((high - low).mean()))
    return net


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """name → (the architecture's own module, .safetensors path, .pth path)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("spandrel")
    out = {}
    for name, (build, _) in ARCHS.items():
        torch.manual_seed(0)
        with warnings.catch_warnings():  # torch.meshgrid's indexing note, from SwinIR's code
            warnings.simplefilter("ignore", UserWarning)
            net = _calm(build().eval())
        sd = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(sd, folder / f"{name}.safetensors")
        torch.save(sd, folder / f"{name}.pth")
        out[name] = (net, folder / f"{name}.safetensors", folder / f"{name}.pth")
    return out


def _reference(net, image: np.ndarray, req: SizeRequirements) -> np.ndarray:
    """The architecture's module itself: input padded at the bottom/right as its requirements
    say (reflect), output cropped back and clamped; float32 HWC."""
    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255)
    want_h = -(-max(h, req.minimum) // req.multiple_of) * req.multiple_of
    want_w = -(-max(w, req.minimum) // req.multiple_of) * req.multiple_of
    x = torch.nn.functional.pad(x, (0, want_w - w, 0, want_h - h), mode="reflect")
    with torch.no_grad():
        y = net(x.clone())[:, :, : 4 * h, : 4 * w].clamp(0, 1)
    return y[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_loads_and_matches_the_architecture_module(name, nets):
    net, safetensors, pth = nets[name]
    model, again = load_model(safetensors), load_model(pth)
    assert model.sha256 == again.sha256
    assert (model.architecture, model.scale, model.config.native, model.receptive_field) == (name, 4, False, None)
    assert model.config.size_requirements == ARCHS[name][1] and isinstance(model.config, NetworkConfig)
    assert model.tile_context == TILE_CONTEXT and model.info()["size_requirements"] == ARCHS[name][1].to_dict()
    enhancer = Enhancer(model)  # backend="auto": torch, the runtime that runs every architecture
    assert enhancer.backend_name == "torch"
    ref = _reference(net, IMAGE, ARCHS[name][1])
    out = enhancer.enhance(IMAGE.astype(np.float32) / 255)
    assert out.shape == (52, 84, 3)
    assert np.abs(out - ref).max() <= 1e-5  # measured ≤ 3.6e-7
    u8 = enhancer.enhance(IMAGE)
    assert u8.dtype == np.uint8 and np.abs(u8.astype(int) - np.round(ref * 255)).max() <= 1


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_tiled_matches_untiled_with_the_default_context(name, nets):
    """Tiles of 48 pixels on a 24×336 strip: with the 96-pixel default context the tiles of the
    middle see 240 of the 336 columns, so the test measures the context, not a whole image."""
    model = load_model(nets[name][1])
    strip = np.random.default_rng(5).random((24, 336, 3), dtype=np.float32)
    whole = Enhancer(model, backend="torch", tile=None).enhance(strip)
    tiled = Enhancer(model, backend="torch", tile=48)
    assert len(tiled.tile_plan(24, 336)) == 7
    assert max(t.window_shape[1] for t in tiled.tile_plan(24, 336)) < 336
    assert np.abs(tiled.enhance(strip) - whole).max() <= TILED_TOLERANCE[name]


def test_window_attention_needs_aligned_tiles(nets):
    """SwinIR's windows are 4 pixels: tiles whose windows start off that grid partition the
    image differently, and no context makes up for it (measured 0.16 with 16 pixels of context)."""
    model = load_model(nets["SwinIR"][1])
    assert model.config.tile_align == 4
    with pytest.warns(UserWarning, match="tile_pad=5 is less than the tile context"):
        plan = Enhancer(model, backend="torch", tile=13, tile_pad=5).tile_plan(40, 60)
    assert all(t.window[0] % 4 == 0 and t.window[2] % 4 == 0 for t in plan)
    assert load_model(nets["SAFMN"][1]).config.tile_align == 8  # its multiple_of
    assert load_model(nets["ESRGAN"][1]).config.tile_align == 1


def test_architectures_have_distinct_identities_and_counted_arithmetic(nets):
    from torch.utils.flop_counter import FlopCounterMode

    models = {name: load_model(nets[name][1]) for name in ARCHS}
    assert len({m.sha256 for m in models.values()}) == len(models)
    assert models["SwinIR"].config.to_dict()["architecture"] == "SwinIR"
    assert models["SwinIR"].config.to_dict()["hyperparameters"]["window_size"] == 4
    for name in ("ESRGAN", "SwinIR"):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            nets[name][0](torch.rand(1, 3, 24, 20))
        ours = models[name].gflops(24, 20) * 1e9
        if name == "ESRGAN":  # convolutions only: torch counts exactly what the hooks count
            assert ours == pytest.approx(counter.get_total_flops(), rel=1e-9)
        else:  # attention's matrix products are not Conv2d/Linear layers: counted by torch only
            # (measured 11.23 against 11.97 MFLOP)
            assert 0.5 * counter.get_total_flops() < ours < counter.get_total_flops()


def test_realesrgan_x2_rrdbnet_loads_through_spandrel(tmp_path):
    """Real-ESRGAN's ×2 RRDBNet (input pixel-unshuffled: 12 channels in) is not dermsr's ×4
    RRDBNet; spandrel reads it as ESRGAN ×2, which needs sides that are multiples of 4."""
    weights = dict(tiny_rrdb(num_block=1, num_feat=8, num_grow_ch=32).weights)
    weights["conv_first.weight"] = np.random.default_rng(1).normal(0, 0.05, (8, 12, 3, 3)).astype(np.float32)
    np.savez(tmp_path / "x2.npz", **weights)
    model = load_model(tmp_path / "x2.npz")
    assert (model.architecture, model.scale, model.config.size_requirements.multiple_of) == ("ESRGAN", 2, 4)
    assert Enhancer(model).enhance(IMAGE).shape == (26, 42, 3)


def test_onnxruntime_agrees_for_an_architecture_that_exports(nets, tmp_path):
    """RCAN exports with dynamic batch and size: the Enhancer on ONNX Runtime against torch, and
    ``dermsr export --format onnx`` run by a bare InferenceSession against the module itself."""
    if missing_modules(("onnxruntime", "onnx", "onnxscript")):
        pytest.skip("the onnx extra is not installed")
    import onnxruntime as ort

    from dermsr.cli import main

    model = load_model(nets["RCAN"][1])
    x = np.random.default_rng(7).random((2, 3, 19, 23), dtype=np.float32)
    on_ort = Enhancer(model, backend="onnxruntime", tile=None).run(x)
    on_torch = Enhancer(model, backend="torch", tile=None).run(x)
    assert np.abs(on_ort - on_torch).max() <= 5e-5  # measured 3.0e-7

    assert main(["export", "--format", "onnx", "--model", str(nets["RCAN"][1]), "--out", str(tmp_path)]) == 0
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": x})
    with torch.no_grad():
        ref = nets["RCAN"][0](torch.from_numpy(x.copy())).numpy()
    assert np.abs(y - ref).max() <= 5e-5  # measured 4.8e-7
    manifest = (tmp_path / "dermsr-manifest.json").read_text()
    assert '"architecture": "RCAN"' in manifest and '"size_requirements"' in manifest


def test_onnxruntime_refuses_an_architecture_that_does_not_export(nets):
    if missing_modules(("onnxruntime", "onnx", "onnxscript")):
        pytest.skip("the onnx extra is not installed")
    model = load_model(nets["SPAN"][1])
    enhancer = Enhancer(model, backend="onnxruntime")
    with pytest.raises(UnsupportedModelError, match=r"SPAN .*does not export to ONNX.*onnxruntime.*backend='torch'"):
        enhancer.enhance(IMAGE)


@pytest.mark.parametrize("backend", ["ncnn", "executorch", "openvino"])
def test_native_only_runtimes_refuse_with_the_runtimes_that_run_it(backend, nets):
    model = load_model(nets["SwinIR"][1])
    b = get_backend(backend)
    with pytest.raises(UnsupportedModelError, match=rf"backend '{backend}' runs dermsr's built-in.*SwinIR.*torch.*onnxruntime"):
        b.check_model(model)
    if not b.availability().available:
        return
    with pytest.raises(UnsupportedModelError, match="SwinIR"):
        Enhancer(model, backend=backend)
    with pytest.raises(UnsupportedModelError, match="SwinIR"):
        b.load(model, BackendOptions())


def test_native_only_exporters_refuse(nets, tmp_path):
    from dermsr.export.pte import export_pte
    from dermsr.models.ncnn_write import ncnn_files

    model = load_model(nets["ESRGAN"][1])
    with pytest.raises(UnsupportedModelError, match="ExecuTorch export"):
        export_pte(model, tmp_path)
    with pytest.raises(UnsupportedModelError, match="ESRGAN"):
        ncnn_files(model)
    assert resolve_backend("auto", model=model) == "torch"
    assert "torch" in backend_names()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace/save are deprecated
def test_torchscript_archive_is_refused(nets, tmp_path):
    scripted = torch.jit.trace(nets["ESRGAN"][0], torch.rand(1, 3, 8, 8))
    torch.jit.save(scripted, tmp_path / "esrgan.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"TorchScript archive.*re-save them with torch\.save\(module\.state_dict\(\)"):
        load_model(tmp_path / "esrgan.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_pickle_with_code_is_refused_before_spandrel_sees_it(nets, tmp_path):
    sd = dict(torch.load(nets["SPAN"][2], weights_only=True))
    torch.save({"params": sd, "hook": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(UnsafeCheckpointError, match=r"needs to run code to unpickle \(print\)"):
        load_model(tmp_path / "evil.pth")


def test_missing_extra_and_unknown_state_dicts_say_what_to_do(nets, tmp_path, monkeypatch):
    import dermsr._extras

    np.savez(tmp_path / "other.npz", **{"encoder.conv.weight": np.zeros((4, 3, 3, 3), np.float32)})
    with pytest.raises(CheckpointError, match=r"spandrel 0\.\d+\.\d+ does not recognise it either \(keys: encoder\.conv\.weight\)"):
        load_model(tmp_path / "other.npz")
    real = dermsr._extras.missing_modules
    monkeypatch.setattr(dermsr._extras, "missing_modules", lambda mods: [m for m in mods if m == "spandrel"] + real(
        [m for m in mods if m != "spandrel"]))
    with pytest.raises(CheckpointError, match=r"neither an SRVGGNetCompact nor a ×4 RRDBNet.*pip install 'dermsr\[spandrel\]'"):
        load_model(nets["SwinIR"][1])


def test_enhancer_with_a_spandrel_model_pickles(nets):
    enhancer = Enhancer(load_model(nets["SPAN"][1]), backend="torch")
    first = enhancer.enhance(IMAGE)
    assert np.array_equal(pickle.loads(pickle.dumps(enhancer)).enhance(IMAGE), first)
    assert type(enhancer.model.to_torch().net).__name__ == "SPAN"
