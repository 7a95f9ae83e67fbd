"""The plaintext fixed-point simulation agrees with onnxruntime and flags overflow."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.simulate import Overflow, simulate


def test_simulation_matches_onnxruntime(make_small_cnn) -> None:
    model = make_small_cnn(softmax=False)
    plan, weights = compile_onnx(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 2, 12, 12)).astype(np.float32)
    ref = sess.run(None, {"x": x})[0].reshape(-1)
    assert np.abs(simulate(plan, weights, x) - ref).max() < 0.02


def test_simulation_flags_overflow(make_small_cnn) -> None:
    plan, weights = compile_onnx(make_small_cnn(softmax=False), ring_bits=16, frac_bits=8)
    x = np.full((1, 2, 12, 12), 50.0, dtype=np.float32)
    with pytest.raises(Overflow):
        simulate(plan, weights, x)
