"""Centred truncation: the secure truncation is 1 ulp low on average, the compiler adds
that ulp to the bias before each truncation, and only the biases (and their public
bound) change."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest

from secfepas_sdk.snni.channel import run_pair
from secfepas_sdk.snni.compile import compile_onnx
from secfepas_sdk.snni.nonlinear.engine import NonlinearEngine
from secfepas_sdk.snni.ops import Conv, Gemm
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RING = Ring(bits=37, frac_bits=12)


@pytest.mark.parametrize("op", ["truncate", "relu_truncate"])
def test_the_secure_truncation_is_one_ulp_low_on_average(op: str) -> None:
    """The premise: floor(x / 2^s) - c with P(c = 1) = frac(x / 2^s), so the mean error
    against x / 2^s is -1 ulp; with 2^s added first it is 0 (the compiler's centring)."""
    s = RING.frac_bits
    rng = np.random.default_rng(11)
    values = rng.integers(1 << 20, 1 << 30, 1 << 14)  # positive: relu_truncate is the identity

    def mean_error(offset: int) -> float:
        x0, x1 = RING.share(RING.from_signed(values + offset), Prg())

        def party(who: Party, share: np.ndarray):  # type: ignore[no-untyped-def]
            def run(channel):  # type: ignore[no-untyped-def]
                engine = NonlinearEngine(channel, party=who, ring=RING)
                engine.setup()
                return getattr(engine, op)(share, s)

            return run

        y0, y1 = run_pair(party(Party.CLIENT, x0), party(Party.SERVER, x1))
        got = RING.to_signed(RING.add(y0, y1)).astype(np.float64)
        return float((got - values / 2.0**s).mean())

    assert mean_error(0) == pytest.approx(-1.0, abs=0.05)
    assert mean_error(1 << s) == pytest.approx(0.0, abs=0.05)


def test_the_bias_before_each_truncation_gets_one_output_ulp(
    make_small_cnn: Callable[..., onnx.ModelProto],
) -> None:
    """small_cnn: conv1 (ReLU, then max-pool), one branch of the residual add (conv2,
    not conv3) and the final Gemm (its output truncation) move; nothing else does."""
    model = make_small_cnn()
    plan, weights = compile_onnx(model)
    plain_plan, plain = compile_onnx(model, centre=False)
    moved = {
        op.name
        for op in plan.ops
        if isinstance(op, Conv | Gemm)
        and not np.array_equal(weights.arrays[f"{op.name}/b"], plain.arrays[f"{op.name}/b"])
    }
    assert moved == {"conv1", "conv2", "fc"}
    for name in moved:
        diff = weights.arrays[f"{name}/b"] - plain.arrays[f"{name}/b"]
        assert set(diff.tolist()) == {1 << RING.frac_bits}
    for op, old in zip(plan.ops, plain_plan.ops, strict=True):
        assert (op.kind, op.name, op.inputs, op.output, op.shape) == (
            old.kind, old.name, old.inputs, old.output, old.shape,
        )  # fmt: skip
        if isinstance(op, Conv | Gemm):
            assert op.b_log2 is not None and old.b_log2 is not None
            bias = int(np.abs(weights.arrays[f"{op.name}/b"]).max())
            assert bias <= 1 << op.b_log2 and op.b_log2 >= old.b_log2
    for key, arr in plain.arrays.items():
        if key.endswith("/w"):
            assert np.array_equal(weights.arrays[key], arr)
