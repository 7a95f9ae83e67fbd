"""Fine-tune an ImageNet network on UNBC-McMaster into a 4-class pain model, with
per-epoch checkpoints (a killed run resumes) and an atomic ONNX export.

Frames become tensors as the camera makes them: the face the camera's detector
finds (once per frame and run, training/faces.py), cropped, resized and
normalised by the camera's own preprocessing (secfepas_sdk.models.preprocess),
so the contract the export states (crop margin, RGB, size, ImageNet mean/std,
area interpolation) is exactly what the camera will do."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from secfepas_sdk._extras import require
from secfepas_sdk.errors import ConfigError
from secfepas_sdk.models.contract import DEFAULT_MARGIN, IMAGENET_MEAN, IMAGENET_STD
from secfepas_sdk.models.preprocess import PreprocessConfig, preprocess_face
from secfepas_sdk.models.training.faces import Box, FaceFinder, find_faces, read_frame
from secfepas_sdk.models.training.nets import ARCHS
from secfepas_sdk.models.training.pretrained import load_pretrained
from secfepas_sdk.models.training.unbc import (
    CLASS_NAMES,
    Frame,
    balanced_subset,
    scan_unbc,
    split_frames,
)

__all__ = ["TrainConfig", "TrainResult", "train"]

CHECKPOINT_NAME = "last.pt"
METADATA_KEY = "secfepas.preprocess"
FRAME_SPLIT_WARNING = (
    "--split frames: the paper's random frame split puts near-identical frames of one "
    "person on both sides, which inflates accuracy (FEAPAS: 99.1% with cross-validation, "
    "90.6% on unseen subjects); use --split subjects for a fair estimate"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    data: Path
    arch: str
    pretrained: Path
    out: Path
    epochs: int = 10
    batch_size: int = 32
    split: str = "subjects"
    checkpoint: Path | None = None
    size: int = 224
    seed: int = 0
    lr: float = 3e-4
    crop_margin: float = DEFAULT_MARGIN


@dataclass(frozen=True, slots=True)
class TrainResult:
    onnx: Path
    train_frames: int
    val_frames: int
    val_subjects: tuple[str, ...]
    val_accuracy: float
    resumed_from: int
    import_command: str
    no_face: int
    """Frames skipped because the detector found no face in them."""


def _contract(cfg: TrainConfig) -> PreprocessConfig:
    """The camera's crop of the face box (margin, the input's aspect ratio), RGB,
    ImageNet mean/std, area interpolation: :func:`contract_fields`."""
    return PreprocessConfig(
        height=cfg.size, width=cfg.size, colour_order="RGB", margin=cfg.crop_margin,
        square=True, interpolation="area", mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )  # fmt: skip


Boxes = dict[Frame, Box]


def _load_batch(frames: list[Frame], config: PreprocessConfig, boxes: Boxes) -> torch.Tensor:
    tensors: list[NDArray[np.float32]] = [
        preprocess_face(read_frame(frame), boxes[frame], config) for frame in frames
    ]
    return torch.from_numpy(np.concatenate(tensors))


def _evaluate(
    model: nn.Module, frames: list[Frame], config: PreprocessConfig, boxes: Boxes, batch: int
) -> tuple[float, float]:
    """(mean loss, accuracy) on ``frames``, in eval mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            labels = torch.tensor([f.label for f in chunk])
            logits = model(_load_batch(chunk, config, boxes))
            loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
    return loss_sum / max(len(frames), 1), correct / max(len(frames), 1)


def _identity(cfg: TrainConfig, val_subjects: tuple[str, ...], n_frames: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (same network, data and split)."""
    return {
        "arch": cfg.arch, "size": cfg.size, "split": cfg.split, "seed": cfg.seed,
        "batch_size": cfg.batch_size, "frames": n_frames, "val_subjects": list(val_subjects),
        "crop_margin": cfg.crop_margin,
    }  # fmt: skip


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(path: Path, identity: dict[str, Any], model: nn.Module, opt: Any) -> int:
    """The epochs already done by the checkpoint at ``path`` (0 if there is none)."""
    if not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        same = {k: state["identity"].get(k) for k in identity} == identity
    except Exception as exc:  # a torn or foreign file
        raise ConfigError(f"{path}: not a training checkpoint ({type(exc).__name__})") from exc
    if not same:
        raise ConfigError(
            f"{path} is a checkpoint of another run (arch, size, split, seed, batch size, "
            "crop margin or data differ): give another --checkpoint DIR or delete it"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["epoch"])


def _export(model: nn.Module, cfg: TrainConfig) -> None:
    """ONNX (opset 13, batch 1) with the preprocessing contract in its metadata,
    written to a temporary file and renamed: never a half-written model."""
    onnx: Any = require("onnx", "train")
    model.eval()
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out.with_name(f".{cfg.out.name}.tmp")
    try:
        torch.onnx.export(
            model, (torch.zeros(1, 3, cfg.size, cfg.size),), str(tmp),
            input_names=["input"], output_names=["logits"], opset_version=13, dynamo=False,
        )  # fmt: skip
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(contract_fields(cfg))
        onnx.save(proto, str(tmp))
        os.replace(tmp, cfg.out)
    finally:
        tmp.unlink(missing_ok=True)


def contract_fields(cfg: TrainConfig) -> dict[str, Any]:
    """The preprocessing contract training used, as manifest fields."""
    return {
        "channels": 3, "colour_order": "RGB", "height": cfg.size, "width": cfg.size,
        "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "crop_margin": cfg.crop_margin,
        "crop_square": True, "interpolation": "area",
    }  # fmt: skip


def import_command(cfg: TrainConfig) -> str:
    """The exact ``model import`` call that states the contract training used."""
    c = contract_fields(cfg)
    return (
        f"secfepas model import {cfg.out} PKG_DIR --classes {' '.join(CLASS_NAMES)} "
        f"--colour-order RGB --size {cfg.size}x{cfg.size} "
        f"--mean {' '.join(map(str, c['mean']))} --std {' '.join(map(str, c['std']))} "
        f"--crop-margin {cfg.crop_margin:g} --interpolation area"
    )


def train(
    cfg: TrainConfig,
    finder: FaceFinder,
    report: Callable[[str], None] = print,
    step: Callable[[str], None] = lambda _s: None,
) -> TrainResult:
    """Fine-tune and export. ``finder`` is the camera's face detector (its
    ``best(pixels)``), run once per frame; ``report`` gets one line per epoch (and
    the faces found, the split); ``step`` the progress (a TTY progress line)."""
    if cfg.arch not in ARCHS:
        raise ConfigError(f"--arch {cfg.arch!r}: one of {', '.join(ARCHS)}")
    if cfg.epochs < 1 or cfg.batch_size < 1 or not 8 <= cfg.size <= 1024:
        raise ConfigError("--epochs and --batch-size must be >= 1, --size in [8, 1024]")
    if not 0.0 <= cfg.crop_margin <= 2.0:
        raise ConfigError(f"--crop-margin {cfg.crop_margin}: must be in [0, 2]")
    faces = find_faces(balanced_subset(scan_unbc(cfg.data), cfg.seed), finder, step)
    subset, boxes = faces.frames, faces.boxes
    missed = faces.no_face
    report(
        f"faces: found in {len(subset)} of {len(subset) + len(missed)} frames; "
        f"{len(missed)} frame(s) with no face skipped"
        + (f" (first {missed[0].image.relative_to(cfg.data)})" if missed else "")
    )
    train_set, val_set = split_frames(subset, cfg.split, cfg.seed)
    counts = np.bincount([f.label for f in train_set], minlength=len(CLASS_NAMES))
    if counts.min() == 0:
        k = int(counts.argmin())
        raise ConfigError(
            f"{cfg.data}: the training side of the split has no frame of class {k} "
            f"({CLASS_NAMES[k]}): more subjects with that class are needed"
        )
    val_subjects = tuple(sorted({f.subject for f in val_set})) if cfg.split == "subjects" else ()
    report(
        f"{len(subset)} frames in the balanced subset: {len(train_set)} train, {len(val_set)} "
        + (f"validation (held-out subjects: {', '.join(val_subjects)})" if val_subjects else
           "validation (random frames)")
    )  # fmt: skip
    if cfg.split == "frames":
        report(FRAME_SPLIT_WARNING)
    torch.manual_seed(cfg.seed)
    model = ARCHS[cfg.arch][0](num_classes=len(CLASS_NAMES))
    load_pretrained(model, cfg.arch, cfg.pretrained)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    identity = _identity(cfg, val_subjects, len(subset))
    ckpt = None if cfg.checkpoint is None else cfg.checkpoint / CHECKPOINT_NAME
    done = 0 if ckpt is None else _resume(ckpt, identity, model, opt)
    if done:
        report(f"resuming from {ckpt} after epoch {done}")
    config = _contract(cfg)
    weights = torch.tensor(1.0 / counts[[f.label for f in train_set]], dtype=torch.float64)
    val_acc = float("nan")
    for epoch in range(done, cfg.epochs):
        torch.manual_seed(cfg.seed + 1 + epoch)  # dropout and sampling: resumable as is
        order = torch.multinomial(weights, len(train_set), replacement=True).tolist()
        model.train()
        loss_sum, correct = 0.0, 0
        n_batches = -(-len(order) // cfg.batch_size)
        for b in range(n_batches):
            chunk = [train_set[i] for i in order[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            labels = torch.tensor([f.label for f in chunk])
            logits = model(_load_batch(chunk, config, boxes))
            loss = nn.functional.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            loss_sum += float(loss.detach()) * len(chunk)
            correct += int((logits.argmax(1) == labels).sum())
            step(f"epoch {epoch + 1}/{cfg.epochs} batch {b + 1}/{n_batches}")
        val_loss, val_acc = _evaluate(model, val_set, config, boxes, cfg.batch_size)
        report(
            f"epoch {epoch + 1}/{cfg.epochs}: train loss {loss_sum / len(order):.4f} "
            f"accuracy {100 * correct / len(order):.1f}%, validation loss {val_loss:.4f} "
            f"accuracy {100 * val_acc:.1f}%"
        )
        if ckpt is not None:
            _save_checkpoint(ckpt, {
                "identity": identity, "epoch": epoch + 1,
                "model": model.state_dict(), "optimizer": opt.state_dict(),
            })  # fmt: skip
    if done >= cfg.epochs:
        _val_loss, val_acc = _evaluate(model, val_set, config, boxes, cfg.batch_size)
    _export(model, cfg)
    return TrainResult(
        cfg.out,
        len(train_set),
        len(val_set),
        val_subjects,
        val_acc,
        done,
        import_command(cfg),
        len(missed),
    )
