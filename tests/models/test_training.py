"""`secfepas model train` end to end on a tiny archive in the UNBC-McMaster layout,
generated here from scikit-image's astronaut photo (shifted, rescaled, brightened
crops as 80x64 frames; a few "subjects") plus one frame with no face (the coffee
photo), with synthetic PSPI labels: loading, face detection and the camera's crop,
the subject split, training, resuming from a checkpoint, export, `model import`
and a secure selftest. It proves the mechanics, not accuracy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs torch (the train extra)")
pytest.importorskip("cv2")

import cv2
import torch

from secfepas_sdk.camera.detection import FaceDetector
from secfepas_sdk.errors import ConfigError, ModelPackageError
from secfepas_sdk.models.package import load_private
from secfepas_sdk.models.preprocess import PreprocessConfig, preprocess_face
from secfepas_sdk.models.training.faces import find_faces, read_frame
from secfepas_sdk.models.training.nets import SqueezeNet11
from secfepas_sdk.models.training.pretrained import load_pretrained
from secfepas_sdk.models.training.trainer import (
    METADATA_KEY,
    TrainConfig,
    _contract,
    _load_batch,
    train,
)
from secfepas_sdk.models.training.unbc import (
    balanced_subset,
    pspi_class,
    scan_unbc,
    split_frames,
)

SUBJECTS = ("042-ll042", "043-jh043", "047-jl047", "048-aa048", "049-bm049")
PSPI = (0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 5.0, 0.0)  # per frame of a sequence: 4 classes
NO_FACE = "Images/042-ll042/ll042t1aaaff/ll042t1aaaff009.png"  # the coffee photo, PSPI 1


def _write_archive(root: Path) -> Path:
    """Per subject: 2 sequences of 8 frames of 80x64 (UNBC's frames are 4:3), each a
    shifted, brightened crop of the astronaut's head and shoulders (MTCNN finds a
    face of about 26x32 in each); the PSPI follows the frame index. Plus NO_FACE."""
    from skimage import data

    face = cv2.cvtColor(np.ascontiguousarray(data.astronaut()[0:260, 90:420]), cv2.COLOR_RGB2BGR)
    for s, subject in enumerate(SUBJECTS):
        for q in range(2):
            sequence = f"{subject[4:]}t{q + 1}aaaff"
            img_dir = root / "Images" / subject / sequence
            lab_dir = root / "Frame_Labels" / "PSPI" / subject / sequence
            img_dir.mkdir(parents=True)
            lab_dir.mkdir(parents=True)
            for f, pspi in enumerate(PSPI):
                dy, dx = 4 * s + f, 3 * q + 2 * f
                crop = face[dy : dy + 220, dx : dx + 275].astype(np.float32)
                crop = crop * (0.6 + 0.1 * pspi_class(pspi)) + 8 * s
                frame = cv2.resize(np.clip(crop, 0, 255).astype(np.uint8), (80, 64))
                name = f"{sequence}{f + 1:03d}"
                cv2.imwrite(str(img_dir / f"{name}.png"), frame)
                (lab_dir / f"{name}_facs.txt").write_text(f"   {pspi:.7e}\n")
    coffee = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (80, 64))
    cv2.imwrite(str(root / NO_FACE), coffee)
    label = root / "Frame_Labels" / "PSPI" / Path(NO_FACE).relative_to("Images")
    label.with_name(f"{label.stem}_facs.txt").write_text("1.0\n")
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_archive(tmp_path_factory.mktemp("unbc"))


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-format SqueezeNet 1.1 state dict (1000-class head, torchvision's
    Fire names): seeded, since no ImageNet SqueezeNet weights are available offline."""
    torch.manual_seed(1)
    state = SqueezeNet11(num_classes=1000).state_dict()
    renamed = {
        k.replace(".expand1.", ".expand1x1.").replace(".expand3.", ".expand3x3."): v
        for k, v in state.items()
    }
    path = tmp_path_factory.mktemp("weights") / "squeezenet1_1-b8a52dc0.pth"
    torch.save(renamed, path)
    return path


def test_pspi_classes_follow_table_ii() -> None:
    assert [pspi_class(v) for v in (0.0, 0.5, 1.0, 2.0, 2.9, 3.0, 15.0)] == [0, 0, 1, 2, 2, 3, 3]


def test_scan_balance_and_subject_split(archive: Path) -> None:
    frames = scan_unbc(archive)
    assert len(frames) == len(SUBJECTS) * 2 * len(PSPI) + 1
    subset = balanced_subset(frames, seed=0)
    counts = np.bincount([f.label for f in subset], minlength=4)
    assert counts.tolist() == [20, 11, 10, 20]  # class 0 (40 frames) capped at 20
    train_set, val_set = split_frames(subset, "subjects", seed=0)
    train_subjects = {f.subject for f in train_set}
    val_subjects = {f.subject for f in val_set}
    assert len(val_subjects) == 1 and not train_subjects & val_subjects
    assert len(train_set) + len(val_set) == len(subset)
    f_train, f_val = split_frames(subset, "frames", seed=0)
    assert len(f_val) == 12 and {f.subject for f in f_train} & {f.subject for f in f_val}


def test_missing_label_and_empty_class_are_one_clear_error(tmp_path: Path) -> None:
    root = _write_archive(tmp_path / "a")
    victim = next((root / "Frame_Labels").rglob("*_facs.txt"))
    victim.unlink()
    with pytest.raises(ConfigError, match=r"1 frame\(s\) have no PSPI label file, first "):
        scan_unbc(root)
    root = _write_archive(tmp_path / "b")
    for label in (root / "Frame_Labels").rglob("*_facs.txt"):
        if label.read_text().strip() == f"{2.0:.7e}":
            label.write_text("1.0\n")
    with pytest.raises(ConfigError, match=r"class 2 \(moderate, PSPI 2\) has no frame"):
        scan_unbc(root)


def test_wrong_shape_pretrained_names_file_and_tensor(tmp_path: Path) -> None:
    state = SqueezeNet11(num_classes=1000).state_dict()
    state["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ModelPackageError, match=r"bad\.pth: tensor 'features\.0\.weight' has "
                       r"shape 32x3x3x3; squeezenet1_1 needs 64x3x3x3"):  # fmt: skip
        load_pretrained(SqueezeNet11(), "squeezenet1_1", bad)


def test_train_resume_export_import_selftest(
    archive: Path, imagenet_like: Path, tmp_path: Path
) -> None:
    """Through the CLI: 1 epoch, then a second run with --epochs 2 resumes from the
    checkpoint; the ONNX is imported and run securely, argmax as in plaintext."""
    out, ckpt = tmp_path / "pain.onnx", tmp_path / "ckpt"
    base = [
        sys.executable, "-m", "secfepas_sdk.cli.main", "model", "train", "--data", str(archive),
        "--arch", "squeezenet1_1", "--pretrained", str(imagenet_like), "--out", str(out),
        "--size", "32", "--batch-size", "16", "--checkpoint", str(ckpt), "--seed", "3",
    ]  # fmt: skip
    first = subprocess.run([*base, "--epochs", "1"], capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "epoch 1/1: train loss" in first.stdout and "held-out subjects:" in first.stdout
    skipped = f"faces: found in 60 of 61 frames; 1 frame(s) with no face skipped (first {NO_FACE})"
    assert skipped in first.stdout
    assert (ckpt / "last.pt").is_file() and out.is_file()
    second = subprocess.run([*base, "--epochs", "2"], capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr
    assert "after epoch 1" in second.stdout and "epoch 2/2: train loss" in second.stdout
    assert "epoch 1/2" not in second.stdout
    assert not list(tmp_path.glob(".*.tmp"))

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta[METADATA_KEY])["height"] == 32
    command = second.stdout.split("package it with:\n")[1].split()
    pkg = tmp_path / "pkg"
    command[command.index("PKG_DIR")] = str(pkg)
    imported = subprocess.run(
        [sys.executable, "-m", "secfepas_sdk.cli.main", *command[1:]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    manifest = load_private(pkg).manifest
    assert manifest.class_names == ("none", "little", "moderate", "extreme")
    assert manifest.preprocess.height == 32 and manifest.preprocess.colour_order == "RGB"
    assert manifest.preprocess.crop_margin == 0.2 and manifest.preprocess.crop_square

    # The resumed run is the uninterrupted one (sampling and dropout seeded per epoch).
    import onnxruntime as ort

    detector = _CountingFinder()
    straight = train(
        TrainConfig(
            data=archive, arch="squeezenet1_1", pretrained=imagenet_like,
            out=tmp_path / "straight.onnx", epochs=2, batch_size=16, size=32, seed=3,
        ),
        detector,
        report=lambda _line: None,
    )  # fmt: skip
    assert straight.no_face == 1 and detector.calls == 61  # once per frame, not per epoch
    probe = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    logits = [
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": probe})
        for p in (out, straight.onnx)
    ]
    np.testing.assert_allclose(logits[0][0], logits[1][0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="checkpoint of another run"):
        train(
            TrainConfig(
                data=archive, arch="squeezenet1_1", pretrained=imagenet_like,
                out=tmp_path / "other.onnx", epochs=3, batch_size=16, size=32, seed=4,
                checkpoint=ckpt,
            ),
            FaceDetector(),
            report=lambda _line: None,
        )  # fmt: skip
    assert not (tmp_path / "other.onnx").exists()

    image = next((archive / "Images").rglob("*.png"))
    selftest = subprocess.run(
        [sys.executable, "-m", "secfepas_sdk.cli.main", "snni", "selftest", "--model",
         str(pkg), "--input", str(image), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(selftest.stdout)
    assert report["argmax_match"], report
    assert selftest.returncode == 0


def test_frame_split_says_it_inflates_accuracy(
    archive: Path, imagenet_like: Path, tmp_path: Path
) -> None:
    lines: list[str] = []
    result = train(
        TrainConfig(
            data=archive, arch="squeezenet1_1", pretrained=imagenet_like,
            out=tmp_path / "m.onnx", epochs=1, batch_size=16, split="frames", size=32,
        ),
        FaceDetector(),
        report=lines.append,
    )  # fmt: skip
    assert any("inflates accuracy" in line and "90.6%" in line for line in lines)
    assert result.val_subjects == () and result.onnx.is_file()


class _CountingFinder:
    """The camera's detector, counting how often it runs."""

    def __init__(self) -> None:
        self.detector = FaceDetector()
        self.calls = 0

    def best(self, pixels: np.ndarray) -> object:
        self.calls += 1
        return self.detector.best(pixels)


def test_training_sees_the_camera_crop_of_each_face(archive: Path) -> None:
    """The tensor a frame becomes in training is the one the camera makes of it with
    the exported contract: the detector's best face, cropped with the margin."""
    subset = balanced_subset(scan_unbc(archive), seed=0)
    faces = find_faces(subset, FaceDetector())
    assert [f.image.relative_to(archive).as_posix() for f in faces.no_face] == [NO_FACE]
    assert len(faces.frames) == len(subset) - 1
    cfg = TrainConfig(data=archive, arch="squeezenet1_1", pretrained=Path("x"),
                      out=Path("m.onnx"), size=32)  # fmt: skip
    from secfepas_sdk.models.contract import build_contract
    from secfepas_sdk.models.training.trainer import contract_fields

    camera = PreprocessConfig.from_contract(build_contract(contract_fields(cfg), "training"))
    assert camera == _contract(cfg)
    frame = faces.frames[0]
    pixels = read_frame(frame)
    face = FaceDetector().best(pixels)
    assert face is not None and faces.boxes[frame] == face.box
    batch = _load_batch([frame], _contract(cfg), faces.boxes).numpy()
    np.testing.assert_array_equal(batch, preprocess_face(pixels, face.box, camera))
    whole = preprocess_face(pixels, (0.0, 0.0, 80.0, 64.0), PreprocessConfig(
        height=32, width=32, margin=0.0, mean=camera.mean, std=camera.std))  # fmt: skip
    assert np.abs(batch - whole).mean() > 0.1  # a face crop, not the whole frame


def test_no_face_anywhere_is_one_clear_error(tmp_path: Path) -> None:
    class Blind:
        def best(self, pixels: np.ndarray) -> None:
            return None

    frames = scan_unbc(_write_archive(tmp_path / "a"))
    with pytest.raises(ConfigError, match=r"no face found in any of the 81 frames"):
        find_faces(frames, Blind())
