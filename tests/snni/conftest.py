"""Shared snni fixtures: small real ONNX models built with onnx.helper (no torch
needed), and both parties of a protocol run over the in-memory pair or over
loopback TCP. Plain helpers live in testkit.snni."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from secfepas_sdk.protocol.transport import SocketChannel
from secfepas_sdk.snni.channel import Channel, run_pair


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(arr.astype(np.float32), name)


def small_cnn(seed: int = 0, *, size: int = 12, softmax: bool = True) -> onnx.ModelProto:
    """Conv+BN+ReLU, MaxPool, grouped strided conv, residual Add, Concat,
    AveragePool (ceil mode), GlobalAveragePool, Flatten, Dropout, Gemm, Softmax."""
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        fan = int(np.prod(shape[1:]))
        return rng.standard_normal(shape) * np.sqrt(2.0 / fan)

    inits = [
        _init("w1", w(4, 2, 3, 3)),
        _init("b1", rng.uniform(-0.1, 0.1, 4)),
        _init("g", rng.uniform(0.5, 1.5, 4)),
        _init("beta", rng.uniform(-0.2, 0.2, 4)),
        _init("mu", rng.uniform(-0.2, 0.2, 4)),
        _init("var", rng.uniform(0.5, 1.5, 4)),
        _init("w2", w(4, 2, 3, 3)),
        _init("w3", w(4, 4, 1, 1)),
        _init("w4", w(3, 8)),
        _init("b4", rng.uniform(-0.1, 0.1, 3)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization", ["c1", "g", "beta", "mu", "var"], ["bn1"], name="bn1"
        ),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node(
            "Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[1, 1], group=2
        ),
        helper.make_node("Conv", ["p1", "w3"], ["c3"], name="conv3"),
        helper.make_node("Add", ["c2", "c3"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["r2"], name="relu2"),
        helper.make_node("Concat", ["r2", "p1"], ["cat"], name="cat", axis=1),
        helper.make_node(
            "AveragePool",
            ["cat"],
            ["ap"],
            name="avg",
            kernel_shape=[2, 2],
            strides=[2, 2],
            ceil_mode=1,
        ),
        helper.make_node("GlobalAveragePool", ["ap"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat", axis=1),
        helper.make_node("Dropout", ["flat"], ["drop"], name="drop"),
        helper.make_node("Gemm", ["drop", "w4", "b4"], ["logits"], name="fc", transB=1),
    ]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1))
        out = "prob"
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, size, size])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def make_small_cnn() -> Callable[..., onnx.ModelProto]:
    return small_cnn


def squeezenet11(seed: int = 0, num_classes: int = 4) -> onnx.ModelProto:
    """SqueezeNet 1.1 (as torchvision defines it) with seeded He-initialised weights,
    built directly with onnx.helper so that the slow test needs no torch."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    counter = [0]

    def conv(x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> str:
        counter[0] += 1
        n = f"conv{counter[0]}"
        w = rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        inits.append(_init(f"{n}.w", w))
        inits.append(_init(f"{n}.b", rng.uniform(-0.1, 0.1, cout)))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{n}.w", f"{n}.b"],
                [n],
                name=n,
                strides=[stride, stride],
                pads=[pad] * 4,
            )
        )
        nodes.append(helper.make_node("Relu", [n], [f"{n}.r"], name=f"{n}.relu"))
        return f"{n}.r"

    def fire(x: str, cin: int, s: int, e: int) -> str:
        sq = conv(x, cin, s, 1)
        a, b = conv(sq, s, e, 1), conv(sq, s, e, 3, pad=1)
        out = f"cat{counter[0]}"
        nodes.append(helper.make_node("Concat", [a, b], [out], name=out, axis=1))
        return out

    def pool(x: str) -> str:
        out = f"pool{len(nodes)}"
        nodes.append(
            helper.make_node(
                "MaxPool", [x], [out], name=out, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1
            )
        )
        return out

    x = pool(conv("input", 3, 64, 3, stride=2))
    x = pool(fire(fire(x, 64, 16, 64), 128, 16, 64))
    x = pool(fire(fire(x, 128, 32, 128), 256, 32, 128))
    x = fire(fire(fire(fire(x, 256, 48, 192), 384, 48, 192), 384, 64, 256), 512, 64, 256)
    x = conv(x, 512, num_classes, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["logits"], name="flatten"))
    graph = helper.make_graph(
        nodes,
        "squeezenet1_1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="session")
def squeezenet_model() -> onnx.ModelProto:
    return squeezenet11()


def run_tcp(client: Callable[[Channel], Any], server: Callable[[Channel], Any]) -> tuple[Any, Any]:
    """Both parties in threads, connected through a real loopback TCP socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    results: list[Any] = [None, None]
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with SocketChannel(conn, timeout_s=60) as ch:
            try:
                results[1] = server(ch)
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with SocketChannel(socket.create_connection(("127.0.0.1", port)), timeout_s=60) as ch:
        try:
            results[0] = client(ch)
        except BaseException as exc:
            errors.append(exc)
    thread.join(60)
    listener.close()
    if errors:
        raise errors[0]
    return results[0], results[1]


@pytest.fixture(params=["memory", "tcp"])
def run_parties(request: pytest.FixtureRequest) -> Callable[..., tuple[Any, Any]]:
    if request.param == "memory":
        return run_pair
    return run_tcp
