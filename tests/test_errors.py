"""Value types raise InvalidValueError: library users catch one root (SecfepasError)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from secfepas_sdk.alerts.assessment import PainAssessment
from secfepas_sdk.camera.selection import PeriodicSelector
from secfepas_sdk.errors import InvalidValueError, LocalProtocolError, SecfepasError
from secfepas_sdk.protocol.events import Data
from secfepas_sdk.snni.ring import Ring


def _bad_ring() -> object:
    return Ring(bits=1, frac_bits=0)


def _bad_assessment() -> object:
    return PainAssessment(level=7, probabilities=(0.25,) * 4, frame_time=0.0)


def _bad_selector() -> object:
    return PeriodicSelector(period_s=-1.0)


def _bad_data() -> object:
    return Data(payload="text", more=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("build", [_bad_ring, _bad_assessment, _bad_selector])
def test_value_types_raise_one_root_that_is_also_a_value_error(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidValueError) as info:
        build()
    assert isinstance(info.value, SecfepasError)
    assert isinstance(info.value, ValueError)


def test_invalid_protocol_events_raise_local_protocol_error_under_the_root() -> None:
    """Protocol events are value types too, but their callers misused the protocol API
    (h11's LocalProtocolError), so they raise that, still under SecfepasError."""
    with pytest.raises(LocalProtocolError) as info:
        _bad_data()
    assert isinstance(info.value, SecfepasError)
