"""Export MTCNN's P-, R- and O-Net to ONNX from the facenet-pytorch 2.6.0 wheel.

The weights (MIT licence, Copyright (c) 2019 Timothy Esler) are read straight
from the wheel's ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` with
``torch.load(weights_only=True)``; the three networks are defined here in plain
torch (torchvision is not needed). Only this script needs torch:

    pip download --no-deps facenet-pytorch==2.6.0 -d /tmp/fp
    pip install torch==2.13.0
    python tools/export_mtcnn_onnx.py /tmp/fp/facenet_pytorch-2.6.0-py3-none-any.whl

Inputs are NCHW float32 RGB scaled as (x - 127.5) / 128. Outputs:
P-Net ``reg`` (N,4,h,w) and ``prob`` (N,2,h,w); R-Net ``reg`` (N,4), ``prob``
(N,2); O-Net ``reg`` (N,4), ``landmarks`` (N,10: five x then five y), ``prob``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT_DIR = Path(__file__).resolve().parent.parent / "secfepas_sdk" / "models" / "data" / "mtcnn"
OPSET = 17


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights come from Caffe, which flattens in (w, h, c) order.
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu5(self.dense5(x))
        prob = torch.softmax(self.dense6_1(x), dim=1)
        return self.dense6_2(x), self.dense6_3(x), prob


def _load_state(wheel: zipfile.ZipFile, name: str) -> dict[str, torch.Tensor]:
    data = wheel.read(f"facenet_pytorch/data/{name}.pt")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise SystemExit(f"{name}.pt is not a state dict")
    return state


def _export(
    net: nn.Module,
    name: str,
    dummy: torch.Tensor,
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
) -> Path:
    path = OUT_DIR / f"{name}.onnx"
    net.eval()
    with torch.no_grad():
        torch.onnx.export(
            net,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def _check(net: nn.Module, path: Path, sample: torch.Tensor) -> float:
    """Largest absolute difference between torch and onnxruntime outputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": sample.numpy()})
    with torch.no_grad():
        want = net(sample)
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="facenet_pytorch-2.6.0-py3-none-any.whl")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with zipfile.ZipFile(args.wheel) as wheel:
        (OUT_DIR / "LICENSE.facenet-pytorch.md").write_bytes(
            wheel.read("facenet_pytorch-2.6.0.dist-info/LICENSE.md")
        )
        nets: list[tuple[str, nn.Module, torch.Tensor, list[str], dict[str, dict[int, str]]]] = [
            (
                "pnet",
                PNet(),
                torch.randn(1, 3, 60, 80),
                ["reg", "prob"],
                {
                    "input": {0: "n", 2: "h", 3: "w"},
                    "reg": {0: "n", 2: "oh", 3: "ow"},
                    "prob": {0: "n", 2: "oh", 3: "ow"},
                },
            ),
            (
                "rnet",
                RNet(),
                torch.randn(4, 3, 24, 24),
                ["reg", "prob"],
                {"input": {0: "n"}, "reg": {0: "n"}, "prob": {0: "n"}},
            ),
            (
                "onet",
                ONet(),
                torch.randn(4, 3, 48, 48),
                ["reg", "landmarks", "prob"],
                {"input": {0: "n"}, "reg": {0: "n"}, "landmarks": {0: "n"}, "prob": {0: "n"}},
            ),
        ]
        for name, net, dummy, outputs, dynamic in nets:
            net.load_state_dict(_load_state(wheel, name), strict=True)
            path = _export(net, name, dummy, outputs, dynamic)
            other = (
                torch.randn(3, 3, *dummy.shape[2:])
                if name != "pnet"
                else torch.randn(2, 3, 97, 131)
            )
            err = _check(net, path, other)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            print(
                f"{path.name}: {path.stat().st_size} bytes, sha256 {digest}, max |diff| {err:.2e}"
            )
            if err > 1e-4:
                print(f"{name}: ONNX output differs from torch", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
