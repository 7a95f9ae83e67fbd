"""`secfepas camera detect` and `camera inspect`: the JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from secfepas_sdk.cli.main import main
from secfepas_sdk.models.bundled import sample_video_path


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def _secfepas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "secfepas_sdk.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_detect_json_contract(astronaut_png: Path) -> None:
    proc = _secfepas("camera", "detect", str(astronaut_png), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert list(out) == ["faces"] and len(out["faces"]) == 1
    face = out["faces"][0]
    assert set(face) == {"box", "score", "landmarks"}
    x1, y1, x2, y2 = face["box"]
    assert 150 < x1 < x2 < 300 and 40 < y1 < y2 < 200  # pixels of the 512x512 input
    assert 0.9 < face["score"] <= 1.0
    assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])


def test_detect_grey_image_and_text_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY))
    assert main(["camera", "detect", str(grey)]) == 0
    assert "1 face(s)" in capsys.readouterr().out
    nothing = tmp_path / "coffee.jpg"
    cv2.imwrite(str(nothing), data.coffee())
    assert main(["camera", "detect", str(nothing), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"faces": []}


def test_inspect_json_contract_writes_no_file(tmp_path: Path) -> None:
    proc = _secfepas("camera", "inspect", str(sample_video_path()), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]
    assert summary == {
        "summary": {
            "frames": 360,
            "selected": 5,
            "dropped_periodic": 352,
            "dropped_redundant": 3,
            "no_face": 1,
        }
    }
    assert [f["index"] for f in frames] == [0, 100, 200, 250, 300]
    assert [f["t"] for f in frames] == pytest.approx([0.0, 10.0, 20.0, 25.0, 30.0])
    assert [len(f["faces"]) for f in frames] == [1, 1, 1, 0, 1]
    assert all(set(f) == {"index", "t", "faces"} for f in frames)
    assert list(tmp_path.iterdir()) == []  # pixels never touch a file


@pytest.mark.parametrize("option", ["--save-crops", "--margin"])
def test_inspect_has_no_option_that_writes_crops(
    option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["camera", "inspect", "synthetic:", option, str(tmp_path / "crops")])
    assert exc.value.code == 2
    assert f"unrecognized arguments: {option}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_inspect_period_threshold_and_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    px = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), px)
    args = ["camera", "inspect", str(tmp_path), "--json", "--fps", "1", "--period", "2"]
    assert main([*args, "--threshold", "0"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["t"] for x in lines[:-1]] == [0.0, 2.0, 4.0]
    assert lines[-1]["summary"]["dropped_periodic"] == 3
    assert main(args) == 0  # identical images: redundant after the first
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]
    assert (summary["selected"], summary["dropped_redundant"]) == (1, 2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["camera", "detect", "/nonexistent.png"], "no such file"),
        (["camera", "inspect", "/nonexistent.mp4"], "no such file"),
        (["camera", "inspect", "synthetic:", "--period", "-1"], "period_s must be >= 0"),
        (["camera", "inspect", "synthetic:", "--max-frames", "0"], "--max-frames"),
        (["camera", "detect", "IMG", "--min-face-size", "4"], "min_face_size"),
    ],
)
def test_bad_input_exits_1_with_message(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "IMG" in argv:
        img = tmp_path / "x.png"
        cv2.imwrite(str(img), np.zeros((50, 50, 3), np.uint8))
        argv = [str(img) if a == "IMG" else a for a in argv]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_detect_not_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    assert main(["camera", "detect", str(bad)]) == 1
    assert "not an image" in capsys.readouterr().err
