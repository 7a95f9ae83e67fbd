"""MTCNN face detection: three ONNX stages in onnxruntime, glue in numpy.

The pipeline is the one of Zhang et al. (2016): an image pyramid scanned by
P-Net (12x12 window, stride 2), candidates refined by R-Net (24x24 crops) and
O-Net (48x48 crops, which also gives 5 landmarks), with non-maximum suppression
and box regression after each stage. The camera keeps only the most confident
face (:meth:`FaceDetector.best`): one patient per camera, and a confident
false positive is rarer than a second real face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk._extras import require
from secfepas_sdk.errors import DetectionError, InvalidValueError, ModelPackageError

__all__ = ["DetectorConfig", "Face", "FaceDetector", "iou", "nms"]

F32 = NDArray[np.float32]


@dataclass(frozen=True, slots=True, kw_only=True)
class Face:
    """A detected face in pixels of the input image (boxes clipped to it)."""

    box: tuple[float, float, float, float]
    """x1, y1, x2, y2."""
    score: float
    """O-Net face probability."""
    landmarks: tuple[tuple[float, float], ...]
    """Left eye, right eye, nose, left and right mouth corner, as (x, y)."""

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box
        if not all(math.isfinite(v) for v in self.box) or x2 < x1 or y2 < y1:
            raise InvalidValueError(f"bad box {self.box}")
        if not (0.0 <= self.score <= 1.0):
            raise InvalidValueError(f"score must be in [0, 1], got {self.score}")
        if len(self.landmarks) != 5 or any(len(p) != 2 for p in self.landmarks):
            raise InvalidValueError("landmarks must be five (x, y) pairs")

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON form: box, score, landmarks (rounded to 0.01 px)."""
        return {
            "box": [round(v, 2) for v in self.box],
            "score": round(self.score, 5),
            "landmarks": [[round(x, 2), round(y, 2)] for x, y in self.landmarks],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """Detector settings; the defaults are tuned for the latency budget (docs/camera.md)."""

    min_face_size: int = 40
    """Smallest face side, in pixels, that the pyramid looks for."""
    scale_factor: float = 0.709
    """Ratio between pyramid levels (sqrt(0.5): two levels per octave)."""
    thresholds: tuple[float, float, float] = (0.7, 0.7, 0.7)
    """Face probability needed to pass P-, R- and O-Net."""
    nms_thresholds: tuple[float, float, float, float] = (0.5, 0.6, 0.6, 0.7)
    """IoU for NMS within a pyramid level, across levels, after R-Net and after O-Net."""
    max_rnet_candidates: int = 400
    """Cap on boxes sent to R-Net (highest P-Net scores), bounding worst-case latency."""
    intra_op_threads: int = 1
    """onnxruntime threads per session; one leaves the other core to capture and SNNI."""

    def __post_init__(self) -> None:
        if self.min_face_size < 12:
            raise InvalidValueError("min_face_size must be >= 12 (P-Net's window)")
        if not (0.1 <= self.scale_factor < 1.0):
            raise InvalidValueError("scale_factor must be in [0.1, 1)")
        if any(not (0.0 <= t <= 1.0) for t in (*self.thresholds, *self.nms_thresholds)):
            raise InvalidValueError("thresholds must be in [0, 1]")
        if self.max_rnet_candidates < 1 or self.intra_op_threads < 1:
            raise InvalidValueError("max_rnet_candidates and intra_op_threads must be >= 1")


def iou(box: F32, boxes: F32) -> F32:
    """IoU of one box with each row of ``boxes`` (x1, y1, x2, y2)."""
    xx1 = np.maximum(box[0], boxes[:, 0])
    yy1 = np.maximum(box[1], boxes[:, 1])
    xx2 = np.minimum(box[2], boxes[:, 2])
    yy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9), dtype=np.float32)


def nms(boxes: F32, scores: F32, threshold: float, *, use_min: bool = False) -> NDArray[np.intp]:
    """Indices kept by greedy non-maximum suppression, best score first.

    Overlap is IoU, or intersection over the smaller area with ``use_min``
    (O-Net's rule, which removes a small box nested in a larger one).
    """
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    # One iteration per kept box, each vectorised over the remaining ones.
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        denom = np.minimum(areas[i], areas[rest]) if use_min else areas[i] + areas[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= threshold]
    return np.asarray(keep, dtype=np.intp)


def _regress(boxes: F32, reg: F32) -> F32:
    """Apply the nets' box offsets (fractions of the box size)."""
    w = (boxes[:, 2] - boxes[:, 0])[:, None]
    h = (boxes[:, 3] - boxes[:, 1])[:, None]
    scale = np.concatenate([w, h, w, h], axis=1)
    return np.asarray(boxes[:, :4] + reg * scale, dtype=np.float32)


def _square(boxes: F32) -> F32:
    """Grow each box to a square around its centre (the nets' input is square)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    cx = boxes[:, 0] + w * 0.5
    cy = boxes[:, 1] + h * 0.5
    half = side * 0.5
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).astype(np.float32)


class FaceDetector:
    """MTCNN in onnxruntime. Thread-compatible, not thread-safe: one per thread."""

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        model_dir: str | Path | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        ort: Any = require("onnxruntime", "camera")
        self._cv2: Any = require("cv2", "camera")
        if model_dir is None:
            from secfepas_sdk.models.bundled import mtcnn_paths

            try:
                paths = mtcnn_paths()
            except ModelPackageError as exc:
                raise DetectionError(str(exc)) from exc
            files = (paths.pnet, paths.rnet, paths.onet)
        else:
            base = Path(model_dir)
            files = (base / "pnet.onnx", base / "rnet.onnx", base / "onet.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.config.intra_op_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sessions = []
        for path in files:
            if not path.is_file():
                raise DetectionError(f"MTCNN model file not found: {path}")
            try:
                sessions.append(
                    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise DetectionError(f"cannot load MTCNN model {path.name}: {exc}") from exc
        self._pnet, self._rnet, self._onet = sessions

    # -- public API -------------------------------------------------------
    def detect(self, pixels: NDArray[np.uint8]) -> list[Face]:
        """All faces in a uint8 BGR HxWx3 image, most confident first."""
        if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
            raise DetectionError("detect() needs a uint8 numpy image")
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise DetectionError(f"detect() needs an HxWx3 BGR image, got shape {pixels.shape}")
        h, w = pixels.shape[:2]
        if min(h, w) < self.config.min_face_size:
            return []
        rgb = self._cv2.cvtColor(pixels, self._cv2.COLOR_BGR2RGB)
        boxes, scores = self._stage1(rgb)
        if boxes.shape[0] == 0:
            return []
        boxes, scores = self._stage2(rgb, boxes, scores)
        if boxes.shape[0] == 0:
            return []
        boxes, scores, marks = self._stage3(rgb, boxes)
        return self._faces(boxes, scores, marks, w, h)

    def best(self, pixels: NDArray[np.uint8]) -> Face | None:
        """The most confident face (ties: the larger one), or None."""
        faces = self.detect(pixels)
        if not faces:
            return None
        return max(faces, key=lambda f: (f.score, f.area))

    # -- stages -----------------------------------------------------------
    def _scales(self, h: int, w: int) -> list[float]:
        cfg = self.config
        m = 12.0 / cfg.min_face_size
        side = min(h, w) * m
        scales = []
        while side >= 12.0:
            scales.append(m)
            m *= cfg.scale_factor
            side *= cfg.scale_factor
        return scales

    @staticmethod
    def _normalise(batch: NDArray[Any]) -> F32:
        """uint8 NHWC RGB -> float32 NCHW, (x - 127.5) / 128 as the nets were trained."""
        x = batch.astype(np.float32)
        x -= 127.5
        x *= 0.0078125
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def _stage1(self, rgb: NDArray[np.uint8]) -> tuple[F32, F32]:
        cv2 = self._cv2
        cfg = self.config
        h, w = rgb.shape[:2]
        all_boxes: list[F32] = []
        level = rgb
        for s in self._scales(h, w):
            sw, sh = math.ceil(w * s), math.ceil(h * s)
            # Each level is area-resampled from the previous one: 4x cheaper than
            # resampling the full frame every time (INTER_AREA at odd ratios is slow).
            level = cv2.resize(level, (sw, sh), interpolation=cv2.INTER_AREA)
            reg, prob = self._pnet.run(None, {"input": self._normalise(level[None])})
            score_map = prob[0, 1]
            ys, xs = np.nonzero(score_map >= cfg.thresholds[0])
            if ys.size == 0:
                continue
            scores = score_map[ys, xs].astype(np.float32)
            offsets = reg[0][:, ys, xs].T.astype(np.float32)
            # Window (x, y) at this level maps back to [2x, 2x + 12) / s.
            x1 = np.floor((2.0 * xs + 1.0) / s)
            y1 = np.floor((2.0 * ys + 1.0) / s)
            x2 = np.floor((2.0 * xs + 12.0) / s)
            y2 = np.floor((2.0 * ys + 12.0) / s)
            boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
            keep = nms(boxes, scores, cfg.nms_thresholds[0])
            all_boxes.append(np.concatenate([boxes[keep], scores[keep, None], offsets[keep]], 1))
        if not all_boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        cand = np.concatenate(all_boxes, axis=0)
        keep = nms(cand[:, :4], cand[:, 4], cfg.nms_thresholds[1])
        cand = cand[keep[: cfg.max_rnet_candidates]]
        boxes = _square(_regress(cand[:, :4], cand[:, 5:9]))
        return boxes, cand[:, 4].copy()

    def _crops(self, rgb: NDArray[np.uint8], boxes: F32, size: int) -> NDArray[np.uint8]:
        """Resized crops of ``boxes`` (rounded, zero outside the image), N x size x size x 3."""
        cv2 = self._cv2
        h, w = rgb.shape[:2]
        ib = np.round(boxes).astype(np.int64)
        out = np.zeros((ib.shape[0], size, size, 3), np.uint8)
        # One cv2.resize per candidate box (at most max_rnet_candidates).
        for k, (x1, y1, x2, y2) in enumerate(ib.tolist()):
            bw, bh = x2 - x1, y2 - y1
            if bw < 1 or bh < 1:
                continue
            patch = np.zeros((bh, bw, 3), np.uint8)
            sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            if sx2 <= sx1 or sy2 <= sy1:
                continue
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
            interp = cv2.INTER_AREA if bw > size else cv2.INTER_LINEAR
            out[k] = cv2.resize(patch, (size, size), interpolation=interp)
        return out

    def _stage2(self, rgb: NDArray[np.uint8], boxes: F32, scores: F32) -> tuple[F32, F32]:
        cfg = self.config
        reg, prob = self._rnet.run(None, {"input": self._normalise(self._crops(rgb, boxes, 24))})
        p = prob[:, 1]
        ok = p >= cfg.thresholds[1]
        boxes, p, reg = boxes[ok], p[ok].astype(np.float32), reg[ok].astype(np.float32)
        keep = nms(boxes, p, cfg.nms_thresholds[2])
        boxes = _square(_regress(boxes[keep], reg[keep]))
        return boxes, p[keep]

    def _stage3(self, rgb: NDArray[np.uint8], boxes: F32) -> tuple[F32, F32, F32]:
        cfg = self.config
        batch = self._normalise(self._crops(rgb, boxes, 48))
        reg, marks, prob = self._onet.run(None, {"input": batch})
        p = prob[:, 1]
        ok = p >= cfg.thresholds[2]
        boxes, p = boxes[ok], p[ok].astype(np.float32)
        reg, marks = reg[ok].astype(np.float32), marks[ok].astype(np.float32)
        bw = (boxes[:, 2] - boxes[:, 0])[:, None]
        bh = (boxes[:, 3] - boxes[:, 1])[:, None]
        lx = boxes[:, 0:1] + bw * marks[:, 0:5]
        ly = boxes[:, 1:2] + bh * marks[:, 5:10]
        points = np.stack([lx, ly], axis=2).astype(np.float32)  # N x 5 x 2
        boxes = _regress(boxes, reg)
        keep = nms(boxes, p, cfg.nms_thresholds[3], use_min=True)
        return boxes[keep], p[keep], points[keep]

    @staticmethod
    def _faces(boxes: F32, scores: F32, points: F32, w: int, h: int) -> list[Face]:
        boxes = boxes.copy()
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        order = np.argsort(-scores, kind="stable")
        faces = []
        for i in order.tolist():
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            if x2 - x1 < 1.0 or y2 - y1 < 1.0:
                continue
            faces.append(
                Face(
                    box=(x1, y1, x2, y2),
                    score=min(max(float(scores[i]), 0.0), 1.0),
                    landmarks=tuple((float(px), float(py)) for px, py in points[i]),
                )
            )
        return faces
