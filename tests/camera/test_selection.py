"""Selectors on synthetic frames, and the default threshold against the real clip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secfepas_sdk.camera.frames import Frame
from secfepas_sdk.camera.selection import (
    DEFAULT_REDUNDANCY_THRESHOLD,
    PeriodicSelector,
    RedundancySelector,
    SelectionStats,
    SelectorChain,
    dc_difference,
    dc_image,
    default_chain,
)
from secfepas_sdk.camera.sources import open_source
from secfepas_sdk.camera.testing import SyntheticSource


def _frame(px: np.ndarray, t: float, i: int = 0) -> Frame:
    return Frame(pixels=np.ascontiguousarray(px), timestamp=t, index=i, source_id="t")


def test_dc_image_is_block_mean_of_grey() -> None:
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (20, 27, 3), dtype=np.uint8)  # partial blocks are ignored
    dc = dc_image(px)
    assert dc.shape == (2, 3)
    grey = 0.114 * px[..., 0] + 0.587 * px[..., 1] + 0.299 * px[..., 2]
    want = grey[:16, :24].reshape(2, 8, 3, 8).mean(axis=(1, 3))
    assert np.allclose(dc, want, atol=0.6)
    assert dc_difference(dc, dc) == 0.0
    assert dc_difference(dc, dc[:1]) == math.inf
    with pytest.raises(ValueError):
        dc_image(np.zeros((4, 40, 3), np.uint8))


def test_static_scene_keeps_only_the_first_frame() -> None:
    chain = SelectorChain([PeriodicSelector(0.0), RedundancySelector()])
    with SyntheticSource(count=60, noise_std=3.0, seed=2) as src:
        selected = [f.index for f in chain.filter(src)]
    assert selected == [0]
    assert chain.stats == SelectionStats(
        seen=60, selected=1, dropped={"periodic": 0, "redundant": 59}
    )


def test_scene_change_is_selected() -> None:
    chain = SelectorChain([PeriodicSelector(0.0), RedundancySelector()])
    with SyntheticSource(count=50, noise_std=3.0, scene_changes=[20, 35], seed=3) as src:
        selected = [f.index for f in chain.filter(src)]
    assert selected == [0, 20, 35]


def test_periodic_follows_timestamps_not_frame_count() -> None:
    # 30 fps for 4 s, then 2 fps for 8 s: a frame-count rule would pick badly.
    ts = [i / 30 for i in range(120)] + [4.0 + i / 2 for i in range(16)]
    with SyntheticSource(count=len(ts), timestamps=ts, width=32, height=24) as src:
        picked = [f.timestamp for f in SelectorChain([PeriodicSelector(2.0)]).filter(src)]
    assert picked == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    # Same frames, same count, twice the clock: half as many selections.
    ts2 = [2 * t for t in ts]
    with SyntheticSource(count=len(ts2), timestamps=ts2, width=32, height=24) as src:
        picked2 = [f.timestamp for f in SelectorChain([PeriodicSelector(2.0)]).filter(src)]
    assert len(picked2) == 12


def test_periodic_uses_capture_time_with_irregular_gaps() -> None:
    sel = PeriodicSelector(5.0)
    times = [10.0, 12.0, 14.9, 15.0, 15.1, 27.0, 29.0, 30.0, 31.0]
    got = [t for t in times if sel.offer(_frame(np.zeros((8, 8, 3), np.uint8), t))]
    # Slots start at the first frame: 10, 15, 20 (empty), 25 -> 27, 30.
    assert got == [10.0, 15.0, 27.0, 30.0]
    # A clock that jumps back (stream restarted) restarts the schedule.
    assert sel.offer(_frame(np.zeros((8, 8, 3), np.uint8), 1.0))
    assert not sel.offer(_frame(np.zeros((8, 8, 3), np.uint8), 2.0))


def test_redundancy_compares_with_last_analysed_frame_not_previous() -> None:
    # A slow drift: each frame differs little from the one before, but the
    # difference to the last analysed frame grows until one is selected.
    base = np.full((64, 64, 3), 100, np.uint8)
    chain = SelectorChain([RedundancySelector(threshold=2.0)])
    picked = []
    for i in range(12):
        px = base + np.uint8(i)  # +1 grey level per frame
        if chain.select(_frame(px, float(i), i)):
            picked.append(i)
    assert picked == [0, 2, 4, 6, 8, 10]


def test_chain_semantics_and_validation() -> None:
    chain = default_chain(period_s=1.0, threshold=2.0)
    with SyntheticSource(count=40, fps=10.0, scene_changes=[25], noise_std=2.0) as src:
        out = list(chain.filter(src))
    assert [f.index for f in out] == [0, 30]  # t=1, 2 redundant; t=3 after the change
    s = chain.stats
    assert (s.seen, s.selected, s.dropped_by("periodic"), s.dropped_by("redundant")) == (
        40,
        2,
        36,
        2,
    )
    chain.reset()
    assert chain.stats.seen == 0
    with pytest.raises(ValueError):
        SelectorChain([PeriodicSelector(), PeriodicSelector()])
    with pytest.raises(ValueError):
        PeriodicSelector(-1.0)
    with pytest.raises(ValueError):
        RedundancySelector(math.nan)
    with pytest.raises(ValueError):
        SelectionStats(seen=3, selected=1, dropped={"x": 1})


def test_frame_size_change_is_selected() -> None:
    chain = SelectorChain([RedundancySelector()])
    assert chain.select(_frame(np.zeros((32, 32, 3), np.uint8), 0.0))
    assert chain.select(_frame(np.zeros((64, 32, 3), np.uint8), 1.0))


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=60),
    period=st.floats(0.1, 5.0),
)
def test_periodic_at_most_one_per_period(gaps: list[float], period: float) -> None:
    sel = PeriodicSelector(period)
    t, picked = 0.0, []
    for g in [0.0, *gaps]:
        t += g
        if sel.offer(_frame(np.zeros((8, 8, 3), np.uint8), t)):
            picked.append(t)
    assert picked[0] == 0.0
    slots = [math.floor(p / period + 1e-9) for p in picked]
    assert slots == sorted(set(slots))  # one frame per slot, in order


def test_default_threshold_separates_noise_from_change(sample_clip: Path) -> None:
    """Calibration check on the real clip: codec and sensor noise between still
    frames stay well under the threshold; the pan, the lamp and the scene cut
    are well over it."""
    with open_source(sample_clip) as src:
        dcs = {f.index: dc_image(f.pixels) for f in src if f.index % 10 == 0}
    still = [(0, 50), (0, 59 // 10 * 10), (100, 170), (300, 350)]
    noise = max(dc_difference(dcs[a], dcs[b]) for a, b in still)
    changes = [(0, 100), (170, 200), (200, 250), (250, 300)]
    change = min(dc_difference(dcs[a], dcs[b]) for a, b in changes)
    assert noise < DEFAULT_REDUNDANCY_THRESHOLD / 2
    assert change > 5 * DEFAULT_REDUNDANCY_THRESHOLD
