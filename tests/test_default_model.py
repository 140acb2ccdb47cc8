"""The default model, dermsr-blind-x4: what it is, that everything uses it by default, and that
on held-out images it does what docs/model-card-blind.md says (checked on seeded crops against
bicubic and scikit-image's PSNR)."""

from __future__ import annotations

import json
from importlib import resources

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from dermsr import Enhancer
from dermsr.cli import main
from dermsr.models import DEFAULT_MODEL, builtin_model_names, load_model

#: ``Model.sha256`` of the shipped weights (docs/model-card-blind.md).
BLIND_SHA256 = "5eeaace67c14e0d9a38d091e222a05c59a4ec9c11966802c84473173bed03b9d"


def test_the_default_is_the_blind_dermatology_model(capsys):
    assert DEFAULT_MODEL == "dermsr-blind-x4" and DEFAULT_MODEL in builtin_model_names()
    assert load_model().name == "dermsr-blind-x4"
    assert Enhancer(threads=1).model.sha256 == BLIND_SHA256
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["default_model"] == "dermsr-blind-x4"
    # the released weights and the clean-only model stay selectable by name
    assert {"realesr-animevideov3-x4", "dermsr-isic-x4"} <= set(builtin_model_names())


def test_shipped_file_is_plain_numpy_with_the_card_hash():
    path = resources.files("dermsr.models") / "weights" / "dermsr-blind-x4.npz"
    with np.load(str(path), allow_pickle=False) as raw:
        arrays = {k: raw[k] for k in raw.files}
    model = load_model("dermsr-blind-x4")
    assert set(arrays) == set(model.weights) and all(np.array_equal(arrays[k], model.weights[k]) for k in arrays)
    assert model.sha256 == BLIND_SHA256
    c = model.config
    assert (c.num_feat, c.num_conv, model.scale, c.act_type, model.receptive_field) == (64, 16, 4, "prelu", 18)


def test_dermsr_enhance_without_model_uses_it(tmp_path):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8), (5, 5), 1.5)
    cv2.imwrite(str(tmp_path / "a.png"), img[:, :, ::-1])
    assert main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), "--quiet",
                 "--backend", "torch", "--threads", "1"]) == 0
    got = cv2.imread(str(tmp_path / "out.png"))[:, :, ::-1]
    want = Enhancer("dermsr-blind-x4", backend="torch", threads=1).enhance(img)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(("folder", "name"), [("train-isic", "ISIC_0000083.jpg"),   # held out in training
                                              ("clinical", "PAT_333_1469_499.png")])  # never trained on
def test_on_held_out_images_it_beats_bicubic_clean_and_phone(shared, folder, name):
    """The central 96² LR crop under the clean (bicubic-x4) and phone protocols of dermsr
    evaluate: better PSNR than bicubic, and on the phone upload better than dermsr-isic-x4,
    which sharpens the noise and JPEG blocks it was never trained on."""
    from dermsr.evaluate.scorecard import _image_seed, protocol_pair

    models = {m: Enhancer(m, backend="torch", threads=1) for m in ("dermsr-blind-x4", "dermsr-isic-x4")}
    for protocol in ("bicubic-x4", "phone"):
        pair = protocol_pair(shared / "data" / folder / name, protocol, seed=_image_seed(f"{folder}/{name}", 0))
        assert pair is not None
        lr, hr = pair
        y, x = lr.shape[0] // 2 - 48, lr.shape[1] // 2 - 48
        lr, hr = lr[y : y + 96, x : x + 96], hr[4 * y : 4 * y + 384, 4 * x : 4 * x + 384]
        psnr = {m: peak_signal_noise_ratio(hr, e.enhance(lr), data_range=1.0) for m, e in models.items()}
        bicubic = peak_signal_noise_ratio(hr, np.clip(cv2.resize(lr, (384, 384), interpolation=cv2.INTER_CUBIC), 0, 1),
                                          data_range=1.0)
        assert psnr["dermsr-blind-x4"] > bicubic, (protocol, psnr, bicubic)
        if protocol == "phone":
            assert psnr["dermsr-blind-x4"] > psnr["dermsr-isic-x4"], psnr
