"""docs/threat-model.md states plainly what an active peer gets (issue 10): the 2PC is
semi-honest, a malicious camera can extract the weights, a malicious edge can learn
more than the output, and what selective failure in the unchecked OT extensions gives.
It also says what the edge now checks of the camera's key, and no longer that it does not."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREATS = " ".join((ROOT / "docs" / "threat-model.md").read_text().split())
HE = " ".join((ROOT / "docs" / "snni-he.md").read_text().split())


def test_the_threat_model_says_what_an_active_peer_gets() -> None:
    for claim in (
        "The 2PC itself is semi-honest, as Cheetah's is.",
        "An actively malicious camera can extract the weights.",
        "An actively malicious edge can learn more than the output.",
        "Selective failure in the OT extensions.",
        "without a consistency check",
    ):
        assert claim in THREATS, claim
    failure = THREATS.split("Selective failure in the OT extensions.", 1)[1][:3000]
    for who in ("A malicious camera", "A malicious edge"):
        assert who in failure, who  # what the selective failure gets each side


def test_it_states_the_key_checks_that_exist_and_what_remains() -> None:
    assert "pk1 is the expansion of a fresh seed the edge sends" in THREATS
    assert "bad_message" in THREATS and "seeded form" in THREATS
    assert not re.search(r"not done yet|does not yet contribute|checks only the key", THREATS)
    assert (
        "### A hostile camera's key (`snni/he/keys.py`)"
        in (ROOT / "docs" / "snni-he.md").read_text()
    )
    assert "What a hostile camera still gets." in HE
    assert "The camera chooses the noise of its own ciphertexts." in HE
