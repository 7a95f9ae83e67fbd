"""Per-session OT state for one party, and the batched OT flavours built on OT
extension (SoftSpokenOT by default, or IKNP: both give IKNP's correlation).

Each party is the extension receiver in one extension instance and the sender in
the other, so either side can be the OT receiver in a protocol step. Setup
runs 2 x 128 Naor-Pinkas base OTs once; every later call extends the same
PRG streams.

Flavours (all batched over numpy arrays; "send side" = the OT sender):
- random OT: sender gets (K0, K1), receiver gets K_c for its choice bits;
- chosen-message OT: the sender also sends m_b xor K_b, packed to the bit width;
- correlated OT (additive mod 2^w): sender gets x, receiver gets x + c * delta;
- 1-out-of-N OT with N = 2^k from k random OTs (Naor-Pinkas 1999 style): each
  random OT key is cut into 2^(k-1) slots of w bits; message v is masked with
  the xor over t of slot pos(v, t) (v without bit t) of key K_t^{v_t}. Every
  message other than the chosen one contains a slot of an unknown key that no
  other message uses, so those masks are jointly uniform to the receiver.
Split functions (``*_payload`` / ``*_decode``) let the non-linear protocols put
several steps in one flight.
"""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.ot import base
from secfepas_sdk.snni.ot import extension as extension_mod
from secfepas_sdk.snni.ot.bits import pack_bits, packed_size, unpack_bits, warm_up
from secfepas_sdk.snni.ot.ferret import FerretReceiver, FerretSender
from secfepas_sdk.snni.ot.iknp import KAPPA
from secfepas_sdk.snni.party import Party

U64 = NDArray[np.uint64]
U8 = NDArray[np.uint8]

MAX_N_LOG = 8


def _mask(width: int) -> np.uint64:
    return np.uint64((1 << width) - 1) if width < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)


def session_tag(mine: bytes, peer: bytes) -> int:
    """A 63-bit value both parties of one OT session compute alike (from the two
    sides' fresh base-OT points, in a fixed order), different in every session.

    XORed into the tweak's domain word. Within a session XOR with one value keeps
    distinct domains distinct; the domains are below 2^31, so Ferret's internal
    domains (+2^32) still differ from every main one; and below 2^63 the word
    cannot overflow."""
    first, second = sorted((mine, peer))
    digest = hashlib.sha256(b"secfepas ot session tweak" + first + second).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class OtSession:
    """Both OT-extension roles of one party. Call :meth:`setup` once (both parties).
    ``extension`` is "iknp", "softspoken" (with ``k`` bits per VOLE instance, see
    :mod:`.extension`) or "ferret" (silent OT bootstrapped from SoftSpokenOT with
    that ``k``); both parties must pick the same."""

    __slots__ = ("_domain_base", "_extension", "_k", "_receiver", "_sender", "party")

    def __init__(
        self,
        party: Party,
        *,
        extension: str | None = None,
        k: int = extension_mod.DEFAULT_K,
        domain_base: int = 0,
    ) -> None:
        """``domain_base`` separates the hash tweaks of several sessions of one
        pair of parties (each session has its own base OTs as well). ``extension``
        None is :data:`.extension.DEFAULT_EXTENSION`, read when the session is made."""
        extension = extension_mod.DEFAULT_EXTENSION if extension is None else extension
        extension_mod.check_extension(extension, k)
        if not 0 <= domain_base < 1 << 30:
            raise SnniError("domain_base out of range")
        self.party = party
        self._extension, self._k = extension, k
        self._domain_base = domain_base
        self._sender: extension_mod.ExtensionSender | None = None
        self._receiver: extension_mod.ExtensionReceiver | None = None

    @property
    def extension(self) -> str:
        return self._extension

    @property
    def ready(self) -> bool:
        return self._sender is not None and self._receiver is not None

    def setup(self, channel: Channel) -> None:
        """Run the 2 x 128 base OTs (roles reversed for the extension). Both parties call it."""
        s_bits = np.frombuffer(secrets.token_bytes(KAPPA), dtype=np.uint8) & np.uint8(1)
        peer_points = bytearray()
        with channel.label("ot-setup"):
            # Each side sends its (C, R) first, then answers the peer's, then reads
            # the peer's answer: 3 flights, never two large sends at once.
            state = base.send_first(channel)
            chosen = base.receive(channel, s_bits, peer_points=peer_points)
            seeds0, seeds1 = base.send_finish(channel, state, KAPPA)
        # Tweak domains: 0 for the instance where the client receives, 1 for the other,
        # XORed with a value unique to this session (both parties derive it from the
        # fresh base-OT points), so no two sessions ever hash under the same tweaks.
        tag = session_tag(state[1] + state[2], bytes(peer_points))
        my_domain = (2 * self._domain_base + int(self.party)) ^ tag
        peer_domain = (2 * self._domain_base + 1 - int(self.party)) ^ tag
        warm_up()  # compile the optional numba kernel now, not inside the first layer
        self._sender, self._receiver = extension_mod.build(
            channel,
            extension=self._extension,
            k=self._k,
            base=(s_bits, chosen, seeds0, seeds1),
            domains=(my_domain, peer_domain),
            client=self.party is Party.CLIENT,
        )

    def _need(self) -> tuple[extension_mod.ExtensionSender, extension_mod.ExtensionReceiver]:
        if self._sender is None or self._receiver is None:
            raise SnniError("OT session used before setup()")
        return self._sender, self._receiver

    # -- random OT ----------------------------------------------------------
    def rot_send(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """Sender: (K0, K1) of ``count`` random OTs (reads the receiver's u matrix)."""
        return self._need()[0].random_ot(channel, count, width)

    def rot_recv(self, channel: Channel, choices: U8, width: int) -> U64:
        """Receiver: K_c for each choice bit (sends the u matrix)."""
        return self._need()[1].random_ot(channel, choices, width)

    # -- random OT with random choices (bit triples, masks) --------------------
    def rot_send_random(self, channel: Channel, count: int, width: int) -> tuple[U64, U64]:
        """Sender: (K0, K1) of random OTs whose choices the receiver does not pick.
        Ferret sends nothing for these; the other extensions run :meth:`rot_send`."""
        sender = self._need()[0]
        if isinstance(sender, FerretSender):
            return sender.random_choice_ot(channel, count, width)
        return sender.random_ot(channel, count, width)

    def rot_recv_random(self, channel: Channel, count: int, width: int) -> tuple[U8, U64]:
        """Receiver: (c, K_c) for uniformly random choice bits c (Ferret's own COT bits)."""
        receiver = self._need()[1]
        if isinstance(receiver, FerretReceiver):
            return receiver.random_choice_ot(channel, count, width)
        raw = np.frombuffer(secrets.token_bytes((count + 7) // 8), dtype=np.uint8)
        choices = np.unpackbits(raw, count=count, bitorder="little")
        return choices, receiver.random_ot(channel, choices, width)

    # -- chosen-message OT ---------------------------------------------------
    def chosen_send(self, channel: Channel, m0: U64, m1: U64, width: int) -> None:
        """Sender holds m0, m1 (``width``-bit); the receiver learns m_c only."""
        k0, k1 = self.rot_send(channel, int(m0.size), width)
        payload = np.stack([(m0.reshape(-1) ^ k0), (m1.reshape(-1) ^ k1)], axis=1)
        channel.send(pack_bits(payload & _mask(width), width))

    def chosen_recv(self, channel: Channel, choices: U8, width: int) -> U64:
        n = int(choices.size)
        c = choices.reshape(-1).astype(np.int64)
        k = self.rot_recv(channel, choices, width)
        raw = channel.recv_exact(packed_size(2 * n, width))
        y = np.asarray(unpack_bits(raw, 2 * n, width), dtype=np.uint64).reshape(n, 2)
        return np.asarray(y[np.arange(n), c] ^ k, dtype=np.uint64)

    # -- correlated OT (additive mod 2^width) --------------------------------
    def cot_send(self, channel: Channel, delta: U64, width: int) -> U64:
        """Sender inputs delta, gets x; the receiver gets x + c*delta mod 2^width."""
        k0, k1 = self.rot_send(channel, int(delta.size), width)
        channel.send(pack_bits((k0 + delta.reshape(-1) - k1) & _mask(width), width))
        return k0

    def cot_recv(self, channel: Channel, choices: U8, width: int) -> U64:
        n = int(choices.size)
        k = self.rot_recv(channel, choices, width)
        y = unpack_bits(channel.recv_exact(packed_size(n, width)), n, width)
        out = (k + choices.reshape(-1).astype(np.uint64) * np.asarray(y, dtype=np.uint64)) & _mask(
            width
        )
        return np.asarray(out, dtype=np.uint64)

    # -- 1-out-of-N OT --------------------------------------------------------
    def one_of_n_send(self, channel: Channel, messages: U64, log_n: int, width: int) -> None:
        """Sender holds ``messages`` of shape (n, 2^log_n), ``width`` bits each."""
        keys = self.rot_send(channel, int(messages.shape[0]) * log_n, slot_width(log_n, width))
        channel.send(one_of_n_payload(keys, messages, log_n, width))

    def one_of_n_recv(self, channel: Channel, choices: U64, log_n: int, width: int) -> U64:
        """Receiver: message number ``choices[j]`` of instance j."""
        keys = self.rot_recv(channel, choice_bits(choices, log_n), slot_width(log_n, width))
        raw = channel.recv_exact(packed_size(int(choices.size) * (1 << log_n), width))
        return one_of_n_decode(keys, raw, choices, log_n, width)


def slot_width(log_n: int, width: int) -> int:
    """Random-OT key width needed by a 1-of-2^log_n OT of ``width``-bit messages."""
    if not 1 <= log_n <= MAX_N_LOG:
        raise SnniError(f"1-of-N OT needs 1 <= log N <= {MAX_N_LOG}, got {log_n}")
    total = (1 << (log_n - 1)) * width
    if total > 64:
        raise SnniError(f"1-of-{1 << log_n} OT of {width}-bit messages needs {total} > 64 key bits")
    return total


def choice_bits(choices: U64, log_n: int) -> U8:
    """The log_n choice bits of each instance, instance-major (n, log_n) flattened."""
    c = choices.reshape(-1)
    if c.size and int(c.max()) >= (1 << log_n):
        raise SnniError("1-of-N choice out of range")
    c8 = c.astype(np.uint8)  # log_n <= MAX_N_LOG = 8
    out = np.empty((c8.size, log_n), dtype=np.uint8)
    for t in range(log_n):
        np.bitwise_and(c8 >> np.uint8(t), np.uint8(1), out=out[:, t])
    return out.reshape(-1)


def _slot_tables(log_n: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For each message v and position t: the key bit v_t and slot pos(v, t)."""
    v = np.arange(1 << log_n)
    t = np.arange(log_n)
    bit = (v[:, None] >> t[None, :]) & 1
    low = v[:, None] & ((1 << t[None, :]) - 1)
    high = v[:, None] >> (t[None, :] + 1)
    pos = low | (high << t[None, :])
    return bit.astype(np.intp), pos.astype(np.intp)


def one_of_n_payload(keys0_1: tuple[U64, U64], messages: U64, log_n: int, width: int) -> bytes:
    """Sender: the N masked messages of each instance, packed to ``width`` bits."""
    k0, k1 = keys0_1
    n = int(messages.shape[0])
    big_n = 1 << log_n
    if messages.shape != (n, big_n):
        raise SnniError(f"1-of-N messages must have shape (n, {big_n})")
    bit, pos = _slot_tables(log_n)
    wmask = _mask(width)
    masked = messages.astype(np.uint64) & wmask
    k0 = k0.reshape(n, log_n)
    k1 = k1.reshape(n, log_n)
    shifts = (pos * width).astype(np.uint64)  # (N, log_n)
    for t in range(log_n):
        key_t = np.where(bit[None, :, t] == 1, k1[:, t : t + 1], k0[:, t : t + 1])  # (n, N)
        masked ^= (key_t >> shifts[None, :, t]) & wmask
    return pack_bits(masked, width)


def one_of_n_decode(key: U64, raw: bytes, choices: U64, log_n: int, width: int) -> U64:
    """Receiver: unmask the chosen message of each instance."""
    n = int(choices.size)
    big_n = 1 << log_n
    c = choices.reshape(-1).astype(np.int64)
    table = unpack_bits(raw, n * big_n, width).reshape(n, big_n)
    out = np.asarray(table[np.arange(n), c], dtype=np.uint64)
    key = key.reshape(n, log_n)
    wmask = _mask(width)
    for t in range(log_n):
        low = c & ((1 << t) - 1)
        high = c >> (t + 1)
        pos = (low | (high << t)).astype(np.uint64)
        out ^= (key[:, t] >> (pos * np.uint64(width))) & wmask
    return out
