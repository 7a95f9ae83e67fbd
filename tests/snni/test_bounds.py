"""Public activation bounds: derived soundly, checked by Plan, used by the runtime."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.bounds import input_bound_units, tensor_bounds
from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.plan import Plan
from secfepas_sdk.snni.runtime import ClientRuntime, ServerRuntime
from secfepas_sdk.snni.simulate import simulate

BOUND = 2.5


def test_bounds_hold_on_extreme_inputs(make_small_cnn) -> None:
    """Every tensor of the fixed-point simulation stays within its derived bound,
    including on inputs at the range's corners."""
    plan, weights = compile_onnx(make_small_cnn(softmax=False), input_bound=BOUND)
    assert plan.input_bound == BOUND and any(getattr(op, "bound_bits", None) for op in plan.ops)
    bounds = tensor_bounds(
        plan.input_name, input_bound_units(BOUND, plan.frac_bits), plan.shapes, plan.ops
    )
    rng = np.random.default_rng(0)
    shape = plan.input_shape
    for x in (
        np.full(shape, BOUND),
        np.full(shape, -BOUND),
        rng.choice([-BOUND, BOUND], shape),
        rng.uniform(-BOUND, BOUND, shape),
    ):
        env: dict[str, np.ndarray] = {}
        simulate(plan, weights, x.astype(np.float32), keep=env)
        for name, value in env.items():
            assert np.abs(value).max(initial=0) <= bounds[name], name


def test_plan_refuses_unprovable_bounds(make_small_cnn) -> None:
    plan, _ = compile_onnx(make_small_cnn(softmax=False), input_bound=BOUND)
    assert Plan.from_json(plan.to_json()) == plan
    assert '"version":3' in plan.to_json()  # 2 for the bounds, 3 for the budget
    pool = next(i for i, op in enumerate(plan.ops) if getattr(op, "bound_bits", None))
    ops = list(plan.ops)
    tight = replace(ops[pool], bound_bits=3)
    with pytest.raises(SnniError, match="not implied"):
        replace(plan, ops=(*ops[:pool], tight, *ops[pool + 1 :]))
    with pytest.raises(SnniError, match="no input_bound"):
        replace(plan, input_bound=None)
    with pytest.raises(SnniError, match="ot_k"):
        replace(ops[pool], ot_k=5)
    # Without a bound nor per-op choices the plan stays version 1 (old packages load).
    plain, _ = compile_onnx(make_small_cnn(softmax=False))
    assert all(getattr(op, "bound_bits", None) is None for op in plain.ops)


def test_secure_run_with_bounds_and_ot_k(make_small_cnn) -> None:
    """Bounds, dropped max-pool bits and a k = 8 OT session for max-pool together
    still match onnxruntime; inputs beyond the public range are refused."""
    model = make_small_cnn(softmax=False)
    plan, weights = compile_onnx(model, input_bound=BOUND, ot_k={"maxpool": 8})
    assert plan.ot_ks == (8,)
    rng = np.random.default_rng(5)
    xs = [rng.uniform(-BOUND, BOUND, plan.input_shape).astype(np.float32) for _ in range(2)]
    client, server = ClientRuntime(plan), ServerRuntime(plan, weights)

    def c(ch):
        client.setup(ch)
        return [client.infer(ch, x) for x in xs]

    def s(ch):
        server.setup(ch)
        for _ in xs:
            server.infer(ch)

    outs, _ = run_pair(c, s)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for x, y in zip(xs, outs, strict=True):
        ref = sess.run(None, {sess.get_inputs()[0].name: x})[0].reshape(-1)
        assert np.abs(y - ref).max() < 0.02 * max(1.0, np.abs(ref).max())
    with pytest.raises(SnniError, match="public range"):
        client.infer(None, np.full(plan.input_shape, BOUND + 0.1, np.float32))  # type: ignore[arg-type]
    client.close()
    server.close()
