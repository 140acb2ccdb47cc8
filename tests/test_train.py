"""dermsr train: split discipline, sampling, losses, schedules, EMA checkpoints, exact resume,
checkpoints that load everywhere, the CLI, and the shipped dermatology weights."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
import torch

from dermsr.errors import CheckpointError, InputError
from dermsr.train import (
    Degradation,
    PairSampler,
    TrainConfig,
    learning_rate,
    parse_loss_spec,
    split_images,
    train,
)
from dermsr.train.data import augment, list_images
from dermsr.train.losses import gradient_l1

TINY = {"num_feat": 8, "num_conv": 2, "batch_size": 4, "patch_size": 16, "hr_short_side": 0,
        "threads": 1, "lr": 2e-3, "lr_min": 2e-3, "schedule": "constant", "ema_decay": 0.9}


def area_x4(hr: np.ndarray, seed: int):
    """A user degradation: ×4 area downscale (seed unused), HR cropped to match."""
    h, w = (hr.shape[0] // 4) * 4, (hr.shape[1] // 4) * 4
    hr = hr[:h, :w]
    return cv2.resize(hr, (w // 4, h // 4), interpolation=cv2.INTER_AREA), hr


@pytest.fixture(scope="module")
def data_dir(shared, tmp_path_factory):
    """Five 96×80 crops of real training images (downsized), as PNGs in a folder."""
    src = sorted((shared / "data" / "train-isic").glob("*.jpg"))[:5]
    folder = tmp_path_factory.mktemp("isic")
    for i, f in enumerate(src):
        bgr = cv2.imread(str(f))
        h, w = bgr.shape[:2]
        crop = bgr[h // 2 - 240 : h // 2 + 240, w // 2 - 288 : w // 2 + 288]
        small = cv2.resize(crop, (96, 80), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"img{i}.png"), small)
    return folder


def tiny_config(data_dir, out, **kw) -> TrainConfig:
    return TrainConfig(data=str(data_dir), out=str(out), **{**TINY, **kw})


# -- config and losses ------------------------------------------------------------------------
def test_loss_spec_parsing_and_errors():
    assert parse_loss_spec("l1") == {"l1": 1.0}
    assert parse_loss_spec(" L1 , grad:0.25 ") == {"l1": 1.0, "grad": 0.25}
    for bad in ("", "l2", "l1,l1", "grad:x", "l1:-1", "l1:0"):
        with pytest.raises(InputError):
            parse_loss_spec(bad)


def test_config_rejects_bad_values():
    for kw in ({"steps": 0}, {"ema_decay": 1.0}, {"val_fraction": 1.0}, {"schedule": "linear"},
               {"patch_size": -1}, {"lr": 0.0}):
        with pytest.raises(InputError):
            TrainConfig(data="d", out="o", **kw)


def test_gradient_loss_matches_numpy_reference():
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 3, 7, 9)), rng.random((2, 3, 7, 9))
    ref = 0.5 * (np.abs(np.diff(a, axis=3) - np.diff(b, axis=3)).mean()
                 + np.abs(np.diff(a, axis=2) - np.diff(b, axis=2)).mean())
    got = float(gradient_l1(torch.from_numpy(a), torch.from_numpy(b)))
    assert got == pytest.approx(ref, rel=1e-12)
    shifted = float(gradient_l1(torch.from_numpy(a), torch.from_numpy(a + 0.3)))
    assert shifted == pytest.approx(0.0, abs=1e-12)  # blind to a constant offset, unlike L1


def test_schedules():
    c = TrainConfig(data="d", out="o", steps=100, lr=1e-3, lr_min=1e-5, warmup=10)
    lrs = [learning_rate(s, c) for s in range(1, 101)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(x >= y for x, y in itertools.pairwise(lrs[10:]))  # cosine never rises
    assert lrs[-1] == pytest.approx(1e-5, rel=0.01)
    s = TrainConfig(data="d", out="o", schedule="step", step_size=10, gamma=0.5, lr=1e-3, lr_min=0)
    assert [learning_rate(i, s) for i in (1, 10, 11, 21)] == [1e-3, 1e-3, 5e-4, 2.5e-4]


# -- data -------------------------------------------------------------------------------------
def test_split_is_by_image_disjoint_stable_and_order_free():
    names = [f"ISIC_{i:07d}.jpg" for i in range(200)]
    a = split_images(names, 0.1, seed=3)
    b = split_images(list(reversed(names)), 0.1, seed=3)
    assert a == b
    assert not set(a.train) & set(a.val) and sorted(a.train + a.val) == sorted(names)
    assert 5 <= len(a.val) <= 40
    # adding images never moves an existing one to the other side
    c = split_images([*names, "new_1.jpg", "new_2.jpg"], 0.1, seed=3)
    assert set(a.val) <= set(c.val) and set(a.train) <= set(c.train)
    assert split_images(names, 0.1, seed=4) != a  # the seed matters
    tiny = split_images(["x.png", "y.png"], 0.01)
    assert len(tiny.val) == 1 and len(tiny.train) == 1


def test_training_never_sees_validation_images(data_dir, tmp_path):
    """Every HR patch the sampler draws comes from a training image, none from a held-out one."""
    cfg = tiny_config(data_dir, tmp_path, val_fraction=0.4, steps=1)
    train(cfg, degradations=[area_x4], progress=False)
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["val"] and split["train"] and not set(split["val"]) & set(split["train"])
    assert split == json.loads(json.dumps(split_images([p.name for p in list_images(data_dir)], 0.4, 0).__dict__))
    # patches from a sampler over the training images: each matches a window of one of them
    # (compared as whole grey levels 0..255, so an exact match has squared difference ~0)
    imgs = {n: np.ascontiguousarray(cv2.imread(str(data_dir / n))[:, :, ::-1]) for n in split["train"] + split["val"]}
    sampler = PairSampler([imgs[n] for n in split["train"]], [Degradation("area", area_x4)],
                          patch_size=8, scale=4, seed=1)
    _, hr = sampler.batch(6)
    for patch in hr.transpose(0, 2, 3, 1):
        p255 = np.round(patch * 255).astype(np.float32)
        found = {n for n, img in imgs.items() if any(
            cv2.matchTemplate(np.ascontiguousarray(augment(img, img, k)[0], dtype=np.float32), p255,
                              cv2.TM_SQDIFF).min() < 0.5
            for k in range(8))}
        assert found and found <= set(split["train"])


def test_sampler_pairs_are_aligned_and_seeded(data_dir):
    from dermsr.train.data import load_hr

    imgs = [load_hr(p) for p in list_images(data_dir)]
    s1 = PairSampler(imgs, [Degradation("area", area_x4)], patch_size=8, scale=4, seed=7)
    s2 = PairSampler(imgs, [Degradation("area", area_x4)], patch_size=8, scale=4, seed=7)
    lr1, hr1 = s1.batch(5)
    lr2, hr2 = s2.batch(5)
    assert lr1.shape == (5, 3, 8, 8) and hr1.shape == (5, 3, 32, 32)
    assert np.array_equal(lr1, lr2) and np.array_equal(hr1, hr2)
    # the LR is the area-downscaled HR (up to uint8 rounding): pairs stay aligned through augmentation
    for lr, hr in zip(lr1, hr1, strict=True):
        ref = hr.reshape(3, 8, 4, 8, 4).mean(axis=(2, 4))
        assert np.abs(ref - lr).max() <= 1.0 / 255 + 1e-6
    state = s1.get_state()
    nxt = s1.batch(2)
    s1.set_state(state)
    again = s1.batch(2)
    assert all(np.array_equal(a, b) for a, b in zip(nxt, again, strict=True))


def test_whole_image_degradation_pairs(data_dir):
    """An 'image' degradation (centre square → fixed LR size) is cut into aligned patches."""
    def centre_to_16(hr, seed):
        s = min(hr.shape[:2])
        y, x = (hr.shape[0] - s) // 2, (hr.shape[1] - s) // 2
        sq = hr[y : y + s, x : x + s]
        return cv2.resize(sq, (16, 16), interpolation=cv2.INTER_AREA), cv2.resize(sq, (64, 64), interpolation=cv2.INTER_AREA)

    from dermsr.train.data import load_hr

    imgs = [load_hr(p) for p in list_images(data_dir)]
    s = PairSampler(imgs, [Degradation("centre", centre_to_16, on="image")], patch_size=8, scale=4, seed=0)
    lr, hr = s.batch(4)
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 32, 32)
    for a, b in zip(lr, hr, strict=True):
        assert np.abs(b.reshape(3, 8, 4, 8, 4).mean(axis=(2, 4)) - a).max() < 0.03
    with pytest.raises(InputError, match="smaller than patch_size"):
        PairSampler(imgs, [Degradation("centre", centre_to_16, on="image")], patch_size=20, scale=4).batch(1)


def test_several_folders_split_each_folder_as_alone(tmp_path):
    """With several --data folders each is split on its own names (its held-out images do not
    move when folders are added), names carry the folder, and DIR@N sets that folder's size."""
    from dermsr.train.data import gather_images, parse_sources

    for folder, n in (("derm", 30), ("clin", 12)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            cv2.imwrite(str(tmp_path / folder / f"{folder}{i:02d}.png"), np.zeros((4, 4, 3), np.uint8))
    derm, clin = str(tmp_path / "derm"), str(tmp_path / "clin")
    files, split, source = gather_images([derm, clin + "@300"], 0.2, seed=1)
    alone = split_images([p.name for p in list_images(derm)], 0.2, 1)
    assert [n for n in split.val if n.startswith("derm/")] == [f"derm/{n}" for n in alone.val]
    assert [n for n in split.train if n.startswith("derm/")] == [f"derm/{n}" for n in alone.train]
    assert len(files) == 42 and sorted(split.train + split.val) == sorted(files)
    assert {n for n in split.val if n.startswith("clin/")}  # each folder holds some out
    assert source["clin/clin00.png"].short_side == 300 and source["derm/derm00.png"].short_side is None
    # one folder keeps the plain relative names of earlier runs
    assert gather_images(derm, 0.2, 1)[1] == alone
    with pytest.raises(InputError, match="distinct names"):
        parse_sources([derm, str(tmp_path / "x" / "derm")])
    cfg = TrainConfig(data=[derm, clin], out="o")
    assert cfg.data == (derm, clin) and TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert TrainConfig(data=[derm], out="o").data == derm


def test_whole_image_degradation_skips_images_too_small_for_it():
    """A whole-image protocol whose HR would be enlarged from a small source (the thesis 896²
    target from a 300 px photo) never trains on that image; patch degradations still do."""
    def to_64(hr, seed):  # a thesis-like protocol: LR 16², HR 64² whatever the source size
        return (cv2.resize(hr, (16, 16), interpolation=cv2.INTER_AREA),
                cv2.resize(hr, (64, 64), interpolation=cv2.INTER_AREA))

    big = np.full((80, 80, 3), 200, np.uint8)
    small = np.full((48, 48, 3), 20, np.uint8)
    s = PairSampler([small, big, small], [Degradation("to64", to_64, on="image")], patch_size=8,
                    scale=4, seed=0)
    _, hr = s.batch(12)
    assert (hr > 0.5).all()  # every patch from the big image
    assert s.image_pair(0, 0) is None and s.image_pair(0, 1) is not None
    with pytest.raises(InputError, match="too small"):
        PairSampler([small], [Degradation("to64", to_64, on="image")], patch_size=8, scale=4).batch(1)


# -- the loop ---------------------------------------------------------------------------------
def test_loss_decreases_and_checkpoint_loads(data_dir, tmp_path):
    from dermsr.models import load_model

    cfg = tiny_config(data_dir, tmp_path, steps=40, save_every=20, val_every=40, val_fraction=0.2)
    result = train(cfg, degradations=[area_x4], progress=False)
    losses = [e["loss"] for e in result.history if "loss" in e]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:4])
    vals = [e["val"] for e in result.history if "val" in e]
    assert vals and all(np.isfinite(v) for v in vals[-1].values())
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pth")) == ["ckpt_0000020.pth", "ckpt_0000040.pth"]
    # weights-only load of the plain file: params_ema and params, both SRVGGNetCompact
    raw = torch.load(result.weights, weights_only=True)
    assert set(raw) == {"params_ema", "params"}
    model = load_model(result.weights)
    assert (model.config.num_feat, model.config.num_conv, model.scale) == (8, 2, 4)
    assert np.array_equal(model.weights["body.0.weight"], raw["params_ema"]["body.0.weight"].numpy())
    # the resumable checkpoint is also an ordinary checkpoint
    assert load_model(result.checkpoint).sha256 == model.sha256


def _available_backends():
    from dermsr.backends import available

    return [a.name for a in available() if a.available]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "ncnn", "executorch"])
def test_trained_checkpoint_runs_on_every_backend(data_dir, tmp_path, backend, isic_crop):
    from dermsr import Enhancer
    from dermsr.models import load_model

    if backend not in _available_backends():
        pytest.skip(f"backend {backend} not available here")
    result = train(tiny_config(data_dir, tmp_path, steps=2), degradations=[area_x4], progress=False)
    enh = Enhancer(str(result.weights), backend=backend)
    img = isic_crop[:16, :24]
    out = enh.enhance(img)
    assert out.shape == (64, 96, 3) and out.dtype == np.uint8
    net = load_model(result.weights).to_torch()
    with torch.no_grad():
        ref = net(torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255)).clamp(0, 1)
    ref8 = np.rint(ref[0].numpy().transpose(1, 2, 0) * 255)
    assert np.abs(out.astype(np.float64) - ref8).max() <= 1


def test_resume_is_bitwise_exact_on_cpu(data_dir, tmp_path):
    """6 steps straight vs resuming that run's step-3 checkpoint for 3 more: bitwise-equal
    weights, EMA and per-step losses (cosine schedule, so the step count must be restored)."""
    common = {"steps": 6, "save_every": 3, "ema_decay": 0.5, "schedule": "cosine", "lr_min": 1e-4}
    straight = train(tiny_config(data_dir, tmp_path / "a", **common), degradations=[area_x4], progress=False)
    mid = tmp_path / "a" / "checkpoints" / "ckpt_0000003.pth"
    resumed = train(tiny_config(data_dir, tmp_path / "c", **common), degradations=[area_x4], resume=mid, progress=False)
    a = torch.load(straight.weights, weights_only=True)
    c = torch.load(resumed.weights, weights_only=True)
    for part in ("params", "params_ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], c[part][k]), (part, k)
    la = [e["loss"] for e in straight.history if "loss" in e][3:]
    lc = [e["loss"] for e in resumed.history if "loss" in e]
    assert la == lc and len(lc) == 3


def test_interrupted_then_resumed_matches(data_dir, tmp_path):
    """A run stopped after 3 of 6 steps (its checkpoint), then resumed, equals 6 straight steps."""
    common = {"steps": 6, "save_every": 3, "schedule": "constant"}
    straight = train(tiny_config(data_dir, tmp_path / "a", **common), degradations=[area_x4], progress=False)
    half = train(tiny_config(data_dir, tmp_path / "b", **{**common, "steps": 3}), degradations=[area_x4], progress=False)
    resumed = train(tiny_config(data_dir, tmp_path / "b", **common), degradations=[area_x4],
                    resume=half.checkpoint, progress=False)
    a = torch.load(straight.weights, weights_only=True)
    b = torch.load(resumed.weights, weights_only=True)
    assert all(torch.equal(a[p][k], b[p][k]) for p in a for k in a[p])


def test_resume_refuses_a_different_run(data_dir, tmp_path):
    first = train(tiny_config(data_dir, tmp_path, steps=1, save_every=1), degradations=[area_x4], progress=False)
    with pytest.raises(InputError, match="patch_size"):
        train(tiny_config(data_dir, tmp_path, steps=2, patch_size=8), degradations=[area_x4],
              resume=first.checkpoint, progress=False)
    with pytest.raises(CheckpointError, match="no training state"):
        train(tiny_config(data_dir, tmp_path, steps=2), degradations=[area_x4], resume=first.weights, progress=False)


def test_fine_tune_from_a_model(data_dir, tmp_path):
    from _support import tiny_model
    from dermsr.models import load_model
    from dermsr.train.loop import save_weights

    init = tiny_model(num_conv=2, num_feat=8)
    path = tmp_path / "init.pth"
    save_weights(path, init.to_torch(), init.to_torch())
    cfg = tiny_config(data_dir, tmp_path / "run", steps=1, init=str(path), lr=1e-9, lr_min=1e-9)
    res = train(cfg, degradations=[area_x4], progress=False)
    got = load_model(res.weights)
    # one step at a negligible learning rate: the fine-tuned weights start from init's
    assert np.allclose(got.weights["body.0.weight"], init.weights["body.0.weight"], atol=1e-6)


# -- the CLI ----------------------------------------------------------------------------------
def test_cli_trains_and_resumes(data_dir, tmp_path, capsys):
    from dermsr.cli import main
    from dermsr.models import load_model

    args = ["train", "--data", str(data_dir), "--out", str(tmp_path), "--preset", "test_train:area_x4",
            "--num-feat", "8", "--num-conv", "2", "--batch-size", "2", "--patch-size", "8",
            "--hr-short-side", "0", "--save-every", "2", "--threads", "1", "--quiet"]
    assert main([*args, "--steps", "2"]) == 0
    ckpt = tmp_path / "checkpoints" / "ckpt_0000002.pth"
    assert main(["train", "--resume", str(ckpt), "--steps", "4", "--quiet"]) == 0
    assert load_model(tmp_path / "model.pth").config.num_feat == 8
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert main(["train", "--steps", "3"]) == 2  # neither --data/--out nor --resume
    assert "--data" in capsys.readouterr().err


# -- protocol evaluation and the shipped weights ---------------------------------------------
def test_protocol_evaluation_mechanism(shared, tmp_path, capsys):
    """``dermsr evaluate`` on two small images: numbers match skimage on the same pairs, only
    held-out images are scored, win rates and colour shifts are per image, and the JSON holds
    every row. The old ``python -m dermsr.train.evaluate`` says what to run instead."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from dermsr.cli import main as cli
    from dermsr.degrade import Degrader

    data = tmp_path / "data"
    data.mkdir()
    for i, f in enumerate(sorted((shared / "data" / "train-isic").glob("*.jpg"))[5:7]):
        bgr = cv2.imread(str(f))
        cv2.imwrite(str(data / f"im{i}.png"), cv2.resize(bgr, (320, 240), interpolation=cv2.INTER_AREA))
    out = tmp_path / "m.json"
    from _support import tiny_model
    from dermsr.train.loop import save_weights

    net = tiny_model().to_torch()
    save_weights(tmp_path / "tiny.pth", net, net)
    common = ["--model", str(tmp_path / "tiny.pth"), "--val-fraction", "0.5", "--hr-short-side", "160",
              "--quiet", "--threads", "1", "--lpips-backbone", str(shared / "weights" / "lpips_alexnet_features.pth"),
              "--protocol", "bicubic-x4", "--protocol", "phone"]
    assert cli(["evaluate", "--data", f"derm={data}", "--json", str(out), *common]) == 0
    assert "**derm, phone** (1 image)" in capsys.readouterr().out
    res = json.loads(out.read_text())
    held = split_images(["im0.png", "im1.png"], 0.5, 0).val
    assert res["settings"]["images"] == [f"data/{held[0]}"] and len(held) == 1
    img = cv2.imread(str(data / held[0]))[:, :, ::-1]
    # bicubic-x4 protocol, recomputed independently: short side 160 (area), MATLAB bicubic ÷4
    hr = cv2.resize(np.ascontiguousarray(img), (213, 160), interpolation=cv2.INTER_AREA)
    r = Degrader.preset("bicubic-x4").apply(hr, seed=0)
    lr = r.lr.astype(np.float32) / 255
    bic = np.clip(cv2.resize(lr, (lr.shape[1] * 4, lr.shape[0] * 4), interpolation=cv2.INTER_CUBIC), 0, 1)
    lanczos = np.clip(cv2.resize(lr, (lr.shape[1] * 4, lr.shape[0] * 4), interpolation=cv2.INTER_LANCZOS4), 0, 1)
    ref_hr = r.hr.astype(np.float32) / 255
    rows = {(x["protocol"], x["method"]): x for x in res["rows"]}
    row = rows["bicubic-x4", "bicubic"]
    assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(ref_hr, bic, data_range=1.0), abs=1e-4)
    assert row["ssim"] == pytest.approx(structural_similarity(
        ref_hr, bic, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False), abs=1e-4)
    assert rows["bicubic-x4", "lanczos"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(ref_hr, lanczos, data_range=1.0), abs=1e-4)
    assert row["shift"] == pytest.approx(list((bic - ref_hr).reshape(-1, 3).mean(axis=0) * 255), abs=1e-3)
    # win rate over one image is 0 or 1, and agrees with the rows
    model = str(tmp_path / "tiny.pth")
    s = res["summary"]["derm"]["phone"][model]
    assert s["psnr_win"] == float(rows["phone", model]["psnr"] > rows["phone", "bicubic"]["psnr"])
    assert 0.0 < rows["phone", model]["lpips"] < 1.0
    assert set(res["summary"]["derm"]) == {"bicubic-x4", "phone"}
    assert res["targets_met"]["derm"]["phone"][model]["psnr_win"] == (s["psnr_win"] >= 0.8)
    import subprocess
    import sys

    old = subprocess.run([sys.executable, "-m", "dermsr.train.evaluate", "--data", str(data)],
                         capture_output=True, text=True, timeout=120)
    assert old.returncode == 2 and "dermsr evaluate" in old.stderr and "--unseen" in old.stderr


def test_evaluate_thesis_skips_small_images_and_draws_crops(shared, tmp_path, capsys):
    """The thesis protocol needs an 896 px short side (else its HR is enlarged): a smaller image
    is skipped and said so; --crops writes one figure per set and protocol."""
    from dermsr.cli import main as cli

    data = tmp_path / "small"
    data.mkdir()
    bgr = cv2.imread(str(sorted((shared / "data" / "train-isic").glob("*.jpg"))[0]))
    cv2.imwrite(str(data / "a.png"), cv2.resize(bgr, (200, 160), interpolation=cv2.INTER_AREA))
    out = tmp_path / "r.json"
    assert cli(["evaluate", "--unseen", str(data), "--model", "realesr-animevideov3-x4", "--protocol", "thesis",
                "--protocol", "bicubic-x4", "--quiet", "--threads", "1", "--json", str(out),
                "--crops", str(tmp_path / "crops")]) == 0
    res = json.loads(out.read_text())
    assert res["settings"]["skipped"] == [{"image": "small/a.png", "protocol": "thesis", "why": "short side below 896 px"}]
    assert {r["protocol"] for r in res["rows"]} == {"bicubic-x4"}
    assert "Skipped 1" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "crops").iterdir()] == ["small_bicubic-x4.png"]
    assert cli(["evaluate", "--model", "x"]) == 2


def test_shipped_dermatology_weights(shared):
    """dermsr-isic-x4 is a plain NumPy file (loads without torch) of a 64×16 ×4 network that
    loads by name with the weights hash the model card states and, on a held-out training-set
    image (bicubic-x4 protocol, central crop), beats bicubic."""
    from importlib import resources

    from skimage.metrics import peak_signal_noise_ratio

    from dermsr import Enhancer
    from dermsr.models import builtin_model_names, load_model
    from dermsr.train.evaluate import protocol_pair

    assert "dermsr-isic-x4" in builtin_model_names()
    path = resources.files("dermsr.models") / "weights" / "dermsr-isic-x4.npz"
    with np.load(str(path), allow_pickle=False) as raw:
        arrays = {k: raw[k] for k in raw.files}
    model = load_model("dermsr-isic-x4")
    assert set(arrays) == set(model.weights) and all(np.array_equal(arrays[k], model.weights[k]) for k in arrays)
    # the EMA weights of the trained .pth, unchanged (docs/model-card.md)
    assert model.sha256 == "86f3b481bf23806d3a8b68ddca93886ada867b1bd94a08c03d03ead211663f66"
    assert (model.config.num_feat, model.config.num_conv, model.scale, model.config.act_type) == (64, 16, 4, "prelu")
    assert model.sha256 != load_model("realesr-animevideov3-x4").sha256
    names = [p.name for p in sorted((shared / "data" / "train-isic").glob("*.jpg"))]
    held = split_images(names, 0.1, seed=0).val
    assert "ISIC_0000083.jpg" in held  # the split the shipped run used (docs/model-card.md)
    lr, hr = protocol_pair(shared / "data" / "train-isic" / "ISIC_0000083.jpg", "bicubic-x4")  # type: ignore[misc]
    y, x = lr.shape[0] // 2 - 32, lr.shape[1] // 2 - 32
    lr, hr = lr[y : y + 64, x : x + 64], hr[4 * y : 4 * y + 256, 4 * x : 4 * x + 256]
    sr = Enhancer("dermsr-isic-x4", threads=1).enhance(lr)
    bic = np.clip(cv2.resize(lr, (256, 256), interpolation=cv2.INTER_CUBIC), 0, 1)
    assert peak_signal_noise_ratio(hr, sr, data_range=1.0) > peak_signal_noise_ratio(hr, bic, data_range=1.0)


def test_all_loss_terms_train(data_dir, tmp_path, shared, monkeypatch):
    """l1 + grad + lpips (offline backbone from the env var) run end to end; lpips gradients flow."""
    monkeypatch.setenv("DERMSR_LPIPS_BACKBONE", str(shared / "weights" / "lpips_alexnet_features.pth"))
    cfg = tiny_config(data_dir, tmp_path, steps=2, patch_size=16, loss="l1,grad:0.1,lpips:0.05")
    res = train(cfg, degradations=[area_x4], progress=False)
    logged = [e for e in res.history if "loss" in e]
    for e in logged:
        assert {"l1", "grad", "lpips"} <= set(e) and np.isfinite(e["loss"])
        assert e["loss"] == pytest.approx(e["l1"] + 0.1 * e["grad"] + 0.05 * e["lpips"], rel=1e-5)
    from dermsr.train.losses import CompositeLoss

    crit = CompositeLoss({"lpips": 1.0})
    sr = torch.rand(1, 3, 64, 64, requires_grad=True)
    total, _ = crit(sr, torch.rand(1, 3, 64, 64))
    total.backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0
    monkeypatch.delenv("DERMSR_LPIPS_BACKBONE")
    with pytest.raises(InputError, match="DERMSR_LPIPS_BACKBONE"):
        CompositeLoss({"lpips": 1.0})
