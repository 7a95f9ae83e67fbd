"""The UNBC-McMaster Shoulder Pain archive, read in its own layout, as labelled frames.

    Images/<subject>/<sequence>/<frame>.png
    Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt   (one float: the PSPI)

PSPI maps to the paper's four classes (Table II): 0 none, 1 little, 2 moderate,
>= 3 extreme. Only file names and label values are read here; pixels are read
per batch by the trainer, so a 48k-frame archive never sits in memory."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from secfepas_sdk.errors import ConfigError

__all__ = [
    "CLASS_NAMES",
    "Frame",
    "balanced_subset",
    "pspi_class",
    "scan_unbc",
    "split_frames",
]

CLASS_NAMES = ("none", "little", "moderate", "extreme")
_MAX_LABEL_BYTES = 256


@dataclass(frozen=True, slots=True)
class Frame:
    subject: str
    sequence: str
    image: Path
    label: int


def pspi_class(pspi: float) -> int:
    """Table II of the paper: PSPI 0, 1, 2 are classes 0-2, and >= 3 is class 3."""
    return min(math.floor(pspi + 1e-6), 3) if pspi > 0 else 0


def _read_pspi(path: Path) -> float:
    try:
        raw = path.read_bytes()[: _MAX_LABEL_BYTES + 1]
    except OSError as exc:
        raise ConfigError(f"cannot read the label {path}: {exc.strerror or exc}") from None
    try:
        value = float(raw.decode("ascii").strip()) if len(raw) <= _MAX_LABEL_BYTES else None
    except (UnicodeDecodeError, ValueError):
        value = None
    if value is None or not math.isfinite(value) or not 0.0 <= value <= 16.0:
        raise ConfigError(f"{path}: not a PSPI score (one number from 0 to 16)")
    return value


def scan_unbc(root: Path) -> list[Frame]:
    """Every frame of the archive with its class; one clear error for a missing folder,
    a frame with no label file, or a class with no frame."""
    images_dir, labels_dir = root / "Images", root / "Frame_Labels" / "PSPI"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise ConfigError(
                f"{root} is not a UNBC-McMaster archive: no {folder.relative_to(root)}/ folder"
            )
    frames: list[Frame] = []
    missing: list[Path] = []
    for image in sorted(images_dir.glob("*/*/*.png")):
        subject, sequence = image.parent.parent.name, image.parent.name
        label = labels_dir / subject / sequence / f"{image.stem}_facs.txt"
        if not label.is_file():
            missing.append(label)
            continue
        frames.append(Frame(subject, sequence, image, pspi_class(_read_pspi(label))))
    if missing:
        raise ConfigError(
            f"{root}: {len(missing)} frame(s) have no PSPI label file, "
            f"first {missing[0].relative_to(root)}"
        )
    if not frames:
        raise ConfigError(f"{root}: no frame in Images/<subject>/<sequence>/*.png")
    counts = np.bincount([f.label for f in frames], minlength=len(CLASS_NAMES))
    for k, n in enumerate(counts):
        if n == 0:
            raise ConfigError(
                f"{root}: class {k} ({CLASS_NAMES[k]}, PSPI {'>= 3' if k == 3 else k}) has no "
                "frame; every class needs some"
            )
    return frames


def balanced_subset(frames: list[Frame], seed: int) -> list[Frame]:
    """Every class capped at the size of the second-largest class, frames drawn at random.

    UNBC is ~83% PSPI 0: the cap cuts the no-pain class down to the size of the
    next one and keeps every pain frame, so nothing rare is thrown away; weighted
    sampling in training evens out what remains."""
    labels = np.asarray([f.label for f in frames])
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    cap = int(np.sort(counts)[-2])
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for k in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == k)
        if members.size > cap:
            members = np.sort(rng.choice(members, cap, replace=False))
        keep.extend(int(i) for i in members)
    return [frames[i] for i in sorted(keep)]


def split_frames(
    frames: list[Frame], how: str, seed: int, val_fraction: float = 0.2
) -> tuple[list[Frame], list[Frame]]:
    """(train, validation). ``subjects``: 80/20 by person, so no one is on both sides;
    ``frames``: the paper's random frame split (near-duplicate frames of one person
    end up on both sides, which inflates validation accuracy)."""
    rng = np.random.default_rng(seed)
    if how == "frames":
        order = rng.permutation(len(frames))
        n_val = max(1, round(val_fraction * len(frames)))
        val_idx = set(order[:n_val].tolist())
        train = [f for i, f in enumerate(frames) if i not in val_idx]
        return train, [f for i, f in enumerate(frames) if i in val_idx]
    if how != "subjects":
        raise ConfigError(f"--split {how!r}: expected subjects or frames")
    subjects = sorted({f.subject for f in frames})
    if len(subjects) < 2:
        raise ConfigError(
            f"a subject split needs at least 2 subjects; the data has {len(subjects)}"
        )
    n_val = min(max(1, round(val_fraction * len(subjects))), len(subjects) - 1)
    held_out = {subjects[i] for i in rng.permutation(len(subjects))[:n_val]}
    train = [f for f in frames if f.subject not in held_out]
    return train, [f for f in frames if f.subject in held_out]
