"""Which OT extension an :class:`~secfepas_sdk.snni.ot.session.OtSession` runs on top
of its 128 base OTs per direction: IKNP (16 bytes per OT), SoftSpokenOT (16/k bytes
per OT, about 2^k/k times IKNP's PRG work) or Ferret silent OT bootstrapped from
SoftSpokenOT (1 bit per chosen-choice OT, 0 for a random-choice one, plus about
0.45 bits of LPN iteration traffic). All give the same correlation
q_j = t_j xor r_j * s and the same hashed random OTs, so nothing above changes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot import crhash, ggm, lpn
from secfepas_sdk.snni.ot.ferret import FerretReceiver, FerretSender
from secfepas_sdk.snni.ot.ferret_iter import scratch_for
from secfepas_sdk.snni.ot.iknp import IknpReceiver, IknpSender
from secfepas_sdk.snni.ot.softspoken import (
    DEFAULT_K,
    SoftSpokenReceiver,
    SoftSpokenSender,
    check_k,
    warm_up,
)

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

EXTENSIONS = ("iknp", "softspoken", "ferret")
# Ferret's main-iteration LPN set (read when a session is set up; tests of the
# protocols above substitute the small set to run fast, both are 128-bit).
FERRET_MAIN = lpn.MAIN
DEFAULT_EXTENSION = "ferret"  # measured: see docs/snni-core.md, "Ferret silent OT"

__all__ = ["DEFAULT_EXTENSION", "DEFAULT_K", "EXTENSIONS", "build", "check_extension"]


class ExtensionSender(Protocol):
    """The OT sender's half: both random-OT outputs."""

    def random_ot(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]: ...


class ExtensionReceiver(Protocol):
    """The OT receiver's half: the output of its choice."""

    def random_ot(self, channel: Channel, choices: U8, width: int) -> U64: ...


def check_extension(extension: str, k: int) -> None:
    if extension not in EXTENSIONS:
        raise SnniError(f"unknown OT extension {extension!r}; expected one of {EXTENSIONS}")
    if extension in ("softspoken", "ferret"):
        check_k(k)


def build(
    channel: Channel,
    *,
    extension: str,
    k: int,
    base: tuple[U8, U8, U8, U8],
    domains: tuple[int, int],
    client: bool = True,
) -> tuple[ExtensionSender, ExtensionReceiver]:
    """Both roles of one party from its base-OT results. ``base`` is (s_bits, chosen
    seeds) from the OTs it received and (seeds0, seeds1) from those it sent;
    ``domains`` is (mine, peer's) for the hash tweaks. SoftSpokenOT exchanges one
    setup message each way here (both parties call this at the same point); Ferret
    then bootstraps both directions, the ``client`` sending first in each step."""
    check_extension(extension, k)
    s_bits, chosen, seeds0, seeds1 = base
    mine, peer = domains
    if extension == "iknp":
        return IknpSender(s_bits, chosen, domain=peer), IknpReceiver(seeds0, seeds1, domain=mine)
    warm_up()
    crhash.warm_up()
    receiver = SoftSpokenReceiver(seeds0, seeds1, domain=mine, k=k)
    sender = SoftSpokenSender(s_bits, chosen, domain=peer, k=k)
    with channel.label("ot-setup"):
        receiver.setup(channel, extension=extension)  # our PPRF level sums to the peer
        sender.setup(channel, extension=extension)  # the peer's, to rebuild our leaves
    if extension != "ferret":
        return sender, receiver
    lpn.warm_up()
    ggm.warm_up()
    scratch = scratch_for(lpn.SETUP, FERRET_MAIN)  # one tree group at a time, either role
    f_sender = FerretSender(sender, s_bits, domain=peer, main=FERRET_MAIN, scratch=scratch)
    f_receiver = FerretReceiver(receiver, domain=mine, main=FERRET_MAIN, scratch=scratch)
    with channel.label("ot-setup"):
        # SoftSpokenOT rows (the client's receiver first), then both senders compute
        # their two iterations at the same time, swap the SPCOT messages (the client
        # first: never two large sends at once), and both receivers finish together.
        if client:
            rows = f_receiver.bootstrap_rows(channel)
            base_q = f_sender.bootstrap_rows(channel)
            f_sender.bootstrap_send(channel, f_sender.bootstrap_compute(base_q))
            messages = f_receiver.bootstrap_recv(channel)
        else:
            base_q = f_sender.bootstrap_rows(channel)
            rows = f_receiver.bootstrap_rows(channel)
            outgoing = f_sender.bootstrap_compute(base_q)
            messages = f_receiver.bootstrap_recv(channel)
            f_sender.bootstrap_send(channel, outgoing)
        f_receiver.bootstrap_finish(rows, messages)
    return f_sender, f_receiver
