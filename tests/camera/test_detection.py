"""MTCNN in onnxruntime on real images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from secfepas_sdk.camera.detection import DetectorConfig, Face, FaceDetector, iou, nms
from secfepas_sdk.errors import DetectionError
from secfepas_sdk.models.bundled import mtcnn_paths

# Annotated by hand on skimage.data.astronaut() (512x512): hairline to chin,
# cheek to cheek, read off a 10-pixel grid drawn over the image.
ASTRONAUT_FACE = np.array([180.0, 72.0, 268.0, 178.0], np.float32)


def _iou(a: tuple[float, ...] | NDArray[np.float32], b: NDArray[np.float32]) -> float:
    return float(iou(np.asarray(a, np.float32), b[None])[0])


def test_astronaut_has_exactly_one_face(
    detector: FaceDetector, astronaut_bgr: NDArray[np.uint8]
) -> None:
    faces = detector.detect(astronaut_bgr)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.95
    assert _iou(face.box, ASTRONAUT_FACE) >= 0.5
    (lex, ley), (rex, rey), (_nx, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
    x1, y1, x2, y2 = face.box
    for px, py in face.landmarks:
        assert x1 <= px <= x2 and y1 <= py <= y2
    assert lex < rex and lmx < rmx  # left is left in the image
    assert max(ley, rey) < ny < min(lmy, rmy)  # eyes above nose above mouth
    assert detector.best(astronaut_bgr) == face


def test_coffee_has_no_face(detector: FaceDetector, coffee_bgr: NDArray[np.uint8]) -> None:
    assert detector.detect(coffee_bgr) == []
    assert detector.best(coffee_bgr) is None


def test_boxes_scale_with_the_image(
    detector: FaceDetector, astronaut_bgr: NDArray[np.uint8]
) -> None:
    small = cv2.resize(astronaut_bgr, (256, 256), interpolation=cv2.INTER_AREA)
    (face,) = detector.detect(small)
    assert _iou(np.array(face.box) * 2.0, ASTRONAUT_FACE) >= 0.5


def test_grey_astronaut_still_found(
    detector: FaceDetector, astronaut_bgr: NDArray[np.uint8]
) -> None:
    grey = cv2.cvtColor(cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    faces = detector.detect(grey)
    assert len(faces) == 1 and _iou(faces[0].box, ASTRONAUT_FACE) >= 0.5


def test_two_faces_best_is_most_confident(
    detector: FaceDetector, astronaut_bgr: NDArray[np.uint8], coffee_bgr: NDArray[np.uint8]
) -> None:
    canvas = np.ascontiguousarray(cv2.resize(coffee_bgr, (800, 400)))
    face_region = astronaut_bgr[30:230, 140:310]
    canvas[50:250, 40:210] = face_region
    small = cv2.resize(face_region, (85, 100), interpolation=cv2.INTER_AREA)
    canvas[250:350, 600:685] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score
    best = detector.best(canvas)
    assert best is not None
    assert best == max(faces, key=lambda f: (f.score, f.area))


def test_minimum_face_size_is_honoured(astronaut_bgr: NDArray[np.uint8]) -> None:
    tiny = cv2.resize(astronaut_bgr, (128, 128), interpolation=cv2.INTER_AREA)  # face ~22 px
    assert FaceDetector(DetectorConfig(min_face_size=64)).detect(tiny) == []
    assert len(FaceDetector(DetectorConfig(min_face_size=16)).detect(tiny)) == 1
    assert FaceDetector().detect(tiny[:30, :30].copy()) == []  # smaller than the face size


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((64, 64), np.uint8),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((64, 64, 3), np.float32),
    ],
)
def test_bad_image_raises(detector: FaceDetector, pixels: NDArray[np.generic]) -> None:
    with pytest.raises(DetectionError):
        detector.detect(pixels)  # type: ignore[arg-type]


def test_missing_or_corrupt_model_files(tmp_path: Path) -> None:
    with pytest.raises(DetectionError, match="not found"):
        FaceDetector(model_dir=tmp_path)
    paths = mtcnn_paths()
    for p in (paths.pnet, paths.rnet):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    (tmp_path / "onet.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(DetectionError, match=r"cannot load MTCNN model onet\.onnx"):
        FaceDetector(model_dir=tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_face_size": 8},
        {"scale_factor": 1.0},
        {"thresholds": (0.6, 1.5, 0.7)},
        {"intra_op_threads": 0},
        {"max_rnet_candidates": 0},
    ],
)
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DetectorConfig(**kwargs)  # type: ignore[arg-type]


def test_nms_keeps_best_and_removes_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [2, 2, 6, 6]], np.float32)
    scores = np.array([0.9, 0.95, 0.5, 0.8], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]
    # Intersection over the smaller box also removes the nested one.
    assert nms(boxes, scores, 0.5, use_min=True).tolist() == [1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


def test_face_value_type() -> None:
    lm = ((1.0, 2.0),) * 5
    f = Face(box=(1.0, 2.0, 11.0, 22.0), score=0.5, landmarks=lm)
    assert f.area == 200.0
    assert f.to_json() == {
        "box": [1.0, 2.0, 11.0, 22.0],
        "score": 0.5,
        "landmarks": [[1.0, 2.0]] * 5,
    }
    with pytest.raises(ValueError):
        Face(box=(5.0, 0.0, 1.0, 1.0), score=0.5, landmarks=lm)
    with pytest.raises(ValueError):
        Face(box=(0.0, 0.0, 1.0, 1.0), score=1.5, landmarks=lm)
    with pytest.raises(ValueError):
        Face(box=(0.0, 0.0, 1.0, 1.0), score=0.5, landmarks=lm[:4])
