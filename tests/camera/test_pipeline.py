"""The bundled real clip end to end: source, selection, detection, crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from secfepas_sdk.camera.detection import FaceDetector
from secfepas_sdk.camera.preprocess import PreprocessConfig, crop_face, preprocess_face
from secfepas_sdk.camera.selection import default_chain
from secfepas_sdk.camera.sources import open_source


def test_clip_through_selection_detection_and_preprocessing(
    sample_clip: Path, detector: FaceDetector
) -> None:
    chain = default_chain()
    results: list[tuple[int, bool]] = []
    tensors = []
    with open_source(sample_clip) as src:
        for frame in chain.filter(src):
            face = detector.best(frame.pixels)
            results.append((frame.index, face is not None))
            if face is not None:
                crop = crop_face(frame.pixels, face.box)
                assert crop.shape[0] == crop.shape[1] >= 60
                tensors.append(preprocess_face(frame.pixels, face.box, PreprocessConfig()))
    # The clip's script (tools/make_sample_video.py): candidates every 5 s,
    # stills dropped as redundant, the coffee cut has no face.
    assert results == [(0, True), (100, True), (200, True), (250, False), (300, True)]
    stats = chain.stats
    assert (stats.seen, stats.selected) == (360, 5)
    assert (stats.dropped_by("periodic"), stats.dropped_by("redundant")) == (352, 3)
    assert all(t.shape == (1, 3, 224, 224) and t.dtype == np.float32 for t in tensors)
    assert all(float(t.min()) >= 0.0 and float(t.max()) <= 1.0 for t in tensors)
