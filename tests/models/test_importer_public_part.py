"""No parameter value in a package's public part, nor in anything the edge sends:
a model whose biases and BN vectors are Constant nodes is imported, served by a
real edge over TLS, and every public file and the camera's received bytes are
searched for the float32, float64 and fixed-point encodings of every parameter."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from secfepas_sdk.certs import Pki, init_pki
from secfepas_sdk.errors import ModelPackageError
from secfepas_sdk.models.importer import import_onnx, strip_weights
from secfepas_sdk.models.package import (
    ARCHITECTURE,
    MANIFEST,
    PLAN,
    WEIGHTS,
    WEIGHTS_HASH,
    load_private,
    load_public,
    sha256,
)
from secfepas_sdk.protocol.connection import Connection, Role
from secfepas_sdk.protocol.transport import TlsFiles

PUBLIC = (MANIFEST, ARCHITECTURE, PLAN)


def _const(name: str, values: np.ndarray) -> Any:
    return helper.make_node(
        "Constant", [], [name], name=f"{name}_node", value=numpy_helper.from_array(values, name)
    )


def constant_params_model(rng: np.random.Generator) -> tuple[bytes, dict[str, np.ndarray]]:
    """Conv (bias: Constant) -> BN (all four vectors: Constants) -> ReLU -> 1x1 Conv
    (weight and bias: Constants) -> ReLU -> GAP -> Reshape (shape: Constant) -> Gemm
    (bias: Constant). Values are drawn away from 0 so that every encoding is distinctive."""

    def vec(*shape: int) -> np.ndarray:
        mag = rng.uniform(0.3, 0.9, shape) * rng.choice([-1.0, 1.0], shape)
        return mag.astype(np.float32)

    p = {
        "w1": vec(4, 3, 3, 3),
        "b1": vec(4),
        "gamma": rng.uniform(0.6, 1.4, 4).astype(np.float32),
        "beta": vec(4),
        "mu": vec(4),
        "var": rng.uniform(0.5, 2.0, 4).astype(np.float32),
        "w2": vec(6, 4, 1, 1),
        "b2": vec(6),
        "wf": vec(4, 6),
        "bf": vec(4),
    }
    nodes = [
        _const("b1", p["b1"]),
        *(_const(k, p[k]) for k in ("gamma", "beta", "mu", "var")),
        _const("w2", p["w2"]),
        _const("b2", p["b2"]),
        _const("shape", np.array([1, -1], np.int64)),
        _const("bf", p["bf"]),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mu", "var"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Reshape", ["g", "shape"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "constants",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
        initializer=[numpy_helper.from_array(p[k], k) for k in ("w1", "wf")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model.SerializeToString(), p


def _decimal(value: int) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![\w.])" + str(value).encode() + rb"(?![\w.])")


def needles(params: dict[str, np.ndarray], quantised: dict[str, np.ndarray], ring_bits: int) -> Any:
    """(label, bytes) for the binary encodings, (label, regex) for the text ones."""
    binary: list[tuple[str, bytes]] = []
    text: list[tuple[str, re.Pattern[bytes]]] = []
    for name, arr in params.items():
        for v in arr.reshape(-1):
            binary.append((f"{name} float32 {v}", np.float32(v).tobytes()))
        flat32 = arr.reshape(-1).astype(np.float32)
        for i in range(flat32.size - 1):  # neighbours as a tensor would carry them
            binary.append((f"{name} float32 pair {i}", flat32[i : i + 2].tobytes()))
            binary.append((f"{name} float64 {v}", np.float64(v).tobytes()))
            text.append((f"{name} decimal {v}", re.compile(re.escape(f"{float(v):.6g}").encode())))
    mask = (1 << ring_bits) - 1
    for name, arr in quantised.items():
        for v in (int(x) for x in arr.reshape(-1)):
            if abs(v) < 1 << 8:
                continue  # too short to be distinctive; weights here are ~2^11 and up
            binary.append((f"{name} int64 {v}", np.int64(v).tobytes()))
            binary.append((f"{name} ring {v}", np.uint64(v & mask).tobytes()))
            text.append((f"{name} fixed {v}", _decimal(v)))
    return binary, text


def leaks(
    data: bytes, binary: list[tuple[str, bytes]], text: Any, *, min_len: int = 0
) -> list[str]:
    """Labels of the needles found in ``data``. ``min_len`` skips binary needles shorter
    than that: in megabytes of uniformly random shares a given 4-byte float32 turns up
    by chance (about len / 2^32 times per needle), an 8-byte one never."""
    found = [label for label, pattern in binary if len(pattern) >= min_len and pattern in data]
    if min_len:
        # Over random bytes the same holds for text: "772" between two non-word bytes
        # turns up by chance in a few MB of shares (about len / 2^27 times per needle);
        # a JSON number of 4+ digits between JSON delimiters never does. The wire's only
        # text is the handshake's manifest and plan, whose files were searched whole above.
        text = [(label, _json_number(regex)) for label, regex in text]
        text = [(label, regex) for label, regex in text if regex is not None]
    found += [label for label, regex in text if regex.search(data)]
    return found


def _json_number(regex: re.Pattern[bytes]) -> re.Pattern[bytes] | None:
    """The decimal needle as a JSON number (between JSON delimiters), None below 4 digits."""
    digits = regex.pattern[len(rb"(?<![\w.])") : -len(rb"(?![\w.])")]
    if len(digits.lstrip(b"-")) < 4:
        return None
    return re.compile(rb"(?<=[:,\[\s])" + re.escape(digits) + rb"(?=[,\]}\s])")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki") / "site")


def test_strip_turns_constants_into_shape_only_inputs() -> None:
    raw, _ = constant_params_model(np.random.default_rng(1))
    stripped = onnx.load_from_string(strip_weights(raw))
    assert not stripped.graph.initializer
    assert all(n.op_type != "Constant" for n in stripped.graph.node)
    shapes = {
        i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in stripped.graph.input
    }
    assert shapes["b1"] == [4] and shapes["w2"] == [6, 4, 1, 1] and shapes["shape"] == [2]


def test_strip_refuses_other_tensor_attributes(tmp_path: Path) -> None:
    node = helper.make_node(
        "ConstantOfShape", ["s"], ["y"], name="fill",
        value=numpy_helper.from_array(np.array([0.123], np.float32)),
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    raw = helper.make_model(graph).SerializeToString()
    with pytest.raises(ModelPackageError, match=r"fill \(ConstantOfShape with a tensor attribute"):
        strip_weights(raw, "m.onnx")


def test_imported_constants_never_reach_the_public_part_or_the_wire(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    from secfepas_sdk.camera.client import RetryPolicy, SecureInferenceClient
    from secfepas_sdk.edge.server import Server
    from secfepas_sdk.edge.settings import load_settings

    raw, params = constant_params_model(np.random.default_rng(2))
    src = tmp_path / "constants.onnx"
    src.write_bytes(raw)
    pkg = tmp_path / "models" / "constants"
    import_onnx(src, pkg, model_id="constants", class_names=("a", "b", "c", "d"))
    private = load_private(pkg)
    binary, text = needles(params, private.weights.arrays, private.plan.ring_bits)
    assert len(binary) > 200
    # The private part does hold them (so the search below can find them).
    assert leaks((pkg / "private" / "reference.onnx").read_bytes(), binary, text)
    assert leaks(b"".join(a.tobytes() for a in private.weights.arrays.values()), binary, text)
    for name in PUBLIC:
        assert leaks((pkg / name).read_bytes(), binary, text) == [], name
    weights_sha = sha256((pkg / WEIGHTS).read_bytes())
    assert (pkg / WEIGHTS_HASH).read_text().strip() == weights_sha
    for name in PUBLIC:
        assert weights_sha.encode() not in (pkg / name).read_bytes()

    received: list[bytes] = []
    original = Connection.receive_data

    def record(self: Connection, data: bytes | bytearray | memoryview) -> None:
        if self.role is Role.CLIENT:
            received.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(Connection, "receive_data", record)
    settings = load_settings(
        None,
        model_dir=pkg.parent,
        ca=pki.ca_cert,
        cert=pki.edge_cert,
        key=pki.edge_key,
        port=0,
        metrics_enabled=False,
    )
    cam = pki.camera("camera-1")
    x = np.random.default_rng(3).uniform(-1.5, 1.5, (1, 3, 8, 8)).astype(np.float32)

    async def main() -> tuple[dict[str, Any], int]:
        server = Server(settings)
        await server.start()
        try:
            async with SecureInferenceClient(
                server.address,
                TlsFiles(ca=pki.ca_cert, cert=cam.cert, key=cam.key),
                "constants",
                retry=RetryPolicy(attempts=1),
            ) as client:
                result = await client.infer(x)
                return client.manifest, result.level
        finally:
            await server.stop(5.0)

    manifest, level = asyncio.run(main())
    assert 0 <= level < 4 and "weights_hash" not in manifest
    transcript = b"".join(received)
    assert len(transcript) > 100_000
    assert leaks(transcript, binary, text, min_len=8) == []
    assert weights_sha.encode() not in transcript


def test_older_manifest_with_weights_hash_still_loads(tmp_path: Path) -> None:
    from secfepas_sdk.models.bundled import demo_model_path

    pkg = tmp_path / "old"
    shutil.copytree(demo_model_path(), pkg)
    manifest = json.loads((pkg / MANIFEST).read_text())
    manifest["weights_hash"] = (pkg / WEIGHTS_HASH).read_text().strip()
    (pkg / MANIFEST).write_text(json.dumps(manifest))
    (pkg / WEIGHTS_HASH).unlink()
    private = load_private(pkg)
    assert "weights_hash" not in private.manifest.model_dump()
    assert load_public(pkg).manifest == private.manifest
    manifest["weights_hash"] = "0" * 64
    (pkg / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelPackageError, match="sha256 mismatch"):
        load_private(pkg)


def test_missing_private_weights_hash_is_refused(tmp_path: Path) -> None:
    from secfepas_sdk.models.bundled import demo_model_path

    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model_path(), pkg)
    (pkg / WEIGHTS_HASH).unlink()
    with pytest.raises(ModelPackageError, match=r"weights\.sha256"):
        load_private(pkg)
