"""Table-driven tests: a sequence of levels, one frame a second, gives these alerts."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secfepas_sdk.alerts.alert import Alert, AlertKind
from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.alerts.policy import AlertPolicy, EpisodeState, PolicyConfig, decide

P, E, R = AlertKind.PAIN, AlertKind.ESCALATION, AlertKind.RESOLVED
T0 = 1_700_000_000.0

# (id, config, levels, expected [(frame index, kind)])
CASES: list[tuple[str, PolicyConfig, list[int], list[tuple[int, AlertKind]]]] = [
    ("quiet", PolicyConfig(), [0, 1, 1, 0, 1], []),
    ("below-threshold-never", PolicyConfig(threshold=3), [2, 2, 2, 2], []),
    ("default-k1-fires-once", PolicyConfig(), [0, 2, 2, 2, 2], [(1, P)]),
    ("level-3-fires", PolicyConfig(), [3], [(0, P)]),
    ("k3-needs-three", PolicyConfig(consecutive=3), [2, 2, 0, 2, 2, 2], [(5, P)]),
    ("k2-broken-run", PolicyConfig(consecutive=2), [2, 1, 2, 1, 2, 1], []),
    ("escalation", PolicyConfig(), [2, 2, 3, 3], [(0, P), (2, E)]),
    ("escalation-off", PolicyConfig(escalate=False), [2, 3, 3], [(0, P)]),
    ("no-escalation-on-same-peak", PolicyConfig(), [3, 2, 3, 2, 3], [(0, P)]),
    ("threshold-1-escalates-twice", PolicyConfig(threshold=1), [1, 2, 3], [(0, P), (1, E), (2, E)]),
    (
        "resolve-after-3",
        PolicyConfig(resolve_after=3, cooldown_s=0),
        [2, 0, 0, 0, 0],
        [(0, P), (3, R)],
    ),
    ("resolve-interrupted", PolicyConfig(resolve_after=3), [2, 0, 0, 2, 0, 0], [(0, P)]),
    ("resolve-after-1", PolicyConfig(resolve_after=1, cooldown_s=0), [2, 1], [(0, P), (1, R)]),
    (
        "new-episode-after-cooldown",
        PolicyConfig(resolve_after=1, cooldown_s=3),
        [2, 0, 2, 0, 0, 2],
        [(0, P), (1, R), (5, P)],
    ),
    (
        "cooldown-mutes-repeat-and-its-resolved",
        PolicyConfig(resolve_after=1, cooldown_s=10),
        [2, 0, 2, 0],
        [(0, P), (1, R)],
    ),
    (
        "cooldown-never-mutes-escalation",
        PolicyConfig(resolve_after=1, cooldown_s=10),
        [2, 0, 2, 3, 0],
        [(0, P), (1, R), (3, E), (4, R)],
    ),
    (
        "cooldown-zero-alerts-every-episode",
        PolicyConfig(resolve_after=1, cooldown_s=0),
        [2, 0, 2, 0],
        [(0, P), (1, R), (2, P), (3, R)],
    ),
]


def _run(config: PolicyConfig, levels: list[int]) -> list[tuple[int, AlertKind]]:
    state = EpisodeState()
    out: list[tuple[int, AlertKind]] = []
    for i, level in enumerate(levels):
        state, kind = decide(config, state, level, T0 + i)
        if kind is not None:
            out.append((i, kind))
    return out


@pytest.mark.parametrize(
    ("config", "levels", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_policy_table(
    config: PolicyConfig, levels: list[int], expected: list[tuple[int, AlertKind]]
) -> None:
    assert _run(config, levels) == expected


def _assessment(level: int, t: float, camera: str = "cam-1") -> PainAssessment:
    probs = [0.0, 0.0, 0.0, 0.0]
    probs[level] = 1.0
    return PainAssessment(
        level=level,
        probabilities=tuple(probs),
        frame_time=t,
        camera_id=camera,
        model_id="demo",
        model_version="1",
    )


def test_alert_policy_builds_alerts_per_camera() -> None:
    policy = AlertPolicy(config=PolicyConfig(resolve_after=1), patient_refs={"a": "Patient/7"})
    first = policy.evaluate(_assessment(2, T0, "a"))
    assert policy.evaluate(_assessment(0, T0, "b")) is None
    other = policy.evaluate(_assessment(3, T0 + 1, "b"))
    assert first is not None and other is not None
    assert (first.kind, first.camera_id, first.patient_ref, first.level) == (P, "a", "Patient/7", 2)
    assert (other.kind, other.camera_id, other.patient_ref) == (P, "b", None)
    resolved = policy.evaluate(_assessment(0, T0 + 2, "a"))
    assert resolved is not None and resolved.kind is R
    assert resolved.episode_start == first.episode_start == first.frame_time
    assert resolved.alert_id != first.alert_id
    assert first.model_id == "demo" and first.frame_time.tzinfo is not None
    assert Alert.from_json(first.to_json()) == first


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"threshold": 4},
        {"consecutive": 0},
        {"resolve_after": 0},
        {"cooldown_s": -1},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PolicyConfig(**kwargs)  # type: ignore[arg-type]


@given(st.lists(st.integers(0, 3), max_size=60), st.integers(1, 3), st.integers(1, 4))
def test_invariants(levels: list[int], k: int, m: int) -> None:
    """Resolved follows an alerted episode; pain and resolved alternate; no alert below."""
    config = PolicyConfig(consecutive=k, resolve_after=m, cooldown_s=0)
    kinds = [kind for _, kind in _run(config, levels)]
    open_ = False
    for kind in kinds:
        if kind is P:
            assert not open_
            open_ = True
        elif kind is E:
            assert open_
        else:
            assert open_
            open_ = False
    assert kinds.count(P) <= sum(1 for lv in levels if lv >= 2)


def test_alert_rejects_image_like_or_bad_fields() -> None:
    alert = AlertPolicy().evaluate(_assessment(2, T0))
    assert alert is not None
    data = alert.model_dump(mode="json")
    with pytest.raises(ValueError):
        Alert.model_validate({**data, "face_crop": "AAAA"})
    with pytest.raises(ValueError):
        Alert.model_validate({**data, "level": 7})
    with pytest.raises(ValueError):
        Alert.model_validate({**data, "frame_time": "2024-01-01T00:00:00"})  # no time zone
    assert uuid.UUID(str(data["alert_id"])) == alert.alert_id


def test_episode_starts_at_the_first_frame_of_the_run() -> None:
    config = PolicyConfig(consecutive=3, resolve_after=1)
    state = EpisodeState()
    for i, level in enumerate([2, 0, 2, 3, 2]):
        state, kind = decide(config, state, level, T0 + i)
    assert kind is P and state.episode_start == T0 + 2 and state.peak == 2
