"""Command line: version/info, one-line errors without tracebacks, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dermsr.cli import main
from dermsr.io import read_image, write_image


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    import dermsr

    assert capsys.readouterr().out.strip() == f"dermsr {dermsr.__version__}"


def test_info_json_lists_models_and_backends(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "realesr-animevideov3-x4" in info["models"]
    names = {b["name"]: b for b in info["backends"]}
    assert names["torch"]["available"] is True
    for b in info["backends"]:
        assert b["available"] or b["reason"]


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "dermsr", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("dermsr ")


def test_enhance_one_file(tmp_path, isic_crop):
    src = tmp_path / "in" / "lesion.png"
    write_image(src, isic_crop[:16, :20])
    assert main(["enhance", str(src), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    out = read_image(tmp_path / "out" / "lesion_x4.png")
    assert out.shape == (64, 80, 3)


def test_errors_are_one_line_without_traceback(tmp_path):
    cmd = [sys.executable, "-m", "dermsr", "enhance", str(tmp_path / "missing.png"), "-o", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "missing.png" in out.stderr
    out = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True)
    assert "Traceback" in out.stderr


def test_one_bad_file_does_not_stop_the_rest(tmp_path, isic_crop):
    d = tmp_path / "in"
    write_image(d / "good.png", isic_crop[:8, :8])
    (d / "bad.png").write_bytes(b"garbage")
    code = main(["enhance", str(d), "-o", str(tmp_path / "out"), "--quiet"])
    assert code != 0
    assert (tmp_path / "out" / "good_x4.png").exists()
    assert not (tmp_path / "out" / "bad_x4.png").exists()


def test_bad_model_name_is_a_clear_error(capsys, tmp_path, isic_crop):
    write_image(tmp_path / "a.png", isic_crop[:8, :8])
    assert main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path), "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "realesr-animevideov3-x4" in err
    assert not np.any([p.name.endswith("_x4.png") for p in tmp_path.iterdir()])
