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


def test_enhance_one_file_to_a_named_file(tmp_path, isic_crop, capsys):
    """``enhance in.png -o out.png`` writes that very file (not a folder), equal to the API's
    output; a second run leaves it alone; several inputs with an image-named -o are refused."""
    from dermsr import Enhancer

    src = tmp_path / "lesion.png"
    write_image(src, isic_crop[:12, :16])
    dest = tmp_path / "sub" / "big.png"
    assert main(["enhance", str(src), "-o", str(dest), "--quiet"]) == 0
    assert dest.is_file()
    np.testing.assert_array_equal(read_image(dest), Enhancer().enhance(read_image(src)))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["big.png"]  # no manifest, lock or temp file
    assert "lesion.png (16x12) -> " in capsys.readouterr().err
    assert main(["enhance", str(src), "-o", str(dest), "--quiet"]) == 0
    assert "exists" in capsys.readouterr().err
    assert main(["enhance", str(src), str(src), "-o", str(tmp_path / "x.png")]) == 2
    assert "exactly one input file" in capsys.readouterr().err
    assert main(["enhance", str(src), "-o", str(tmp_path / "x.png"), "--format", "jpg"]) == 2
    assert not (tmp_path / "x.png").exists()
    folder = tmp_path / "looks-like.png"
    folder.mkdir()  # an existing folder stays a folder
    assert main(["enhance", str(src), "-o", str(folder), "--quiet"]) == 0
    assert (folder / "lesion_x4.png").is_file()


def test_enhance_shows_tile_progress_inside_a_large_image(tmp_path, isic_crop, capsys):
    src = tmp_path / "lesion.png"
    write_image(src, isic_crop[:24, :32])
    assert main(["enhance", str(src), "-o", str(tmp_path / "out.png"), "--tile", "16"]) == 0
    err = capsys.readouterr().err
    assert "tiles:   0%|          | 0/4 " in err  # 2 × 2 tiles, a tqdm bar with rate and ETA
    assert main(["enhance", str(src), "-o", str(tmp_path / "q.png"), "--tile", "16", "--quiet"]) == 0
    assert "tiles" not in capsys.readouterr().err


def test_info_says_what_auto_resolves_to(capsys):
    from dermsr.backends import AUTO_ORDER, available, resolve_backend

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    installed = [a.name for a in available() if a.available]
    assert info["auto"] == resolve_backend("auto") == next(n for n in AUTO_ORDER if n in installed)
    assert main(["info"]) == 0
    assert f"auto (the default backend) -> {info['auto']}" in capsys.readouterr().out


def test_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path):
    """A subcommand whose extra is not installed says which 'pip install' fixes it."""
    code = "import sys\nsys.modules['torch'] = None\nfrom dermsr.cli import main\nsys.exit(main(sys.argv[1:]))"
    for args, extra in ((["export", "--format", "onnx", "--out", str(tmp_path)], "export"),
                        (["train", "--data", str(tmp_path), "--out", str(tmp_path / "t")], "train"),
                        (["study", "--out", str(tmp_path / "s")], "metrics")):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1 and f"pip install 'dermsr[{extra}]'" in out.stderr, out.stderr
