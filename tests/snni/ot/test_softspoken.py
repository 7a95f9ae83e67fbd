"""SoftSpokenOT: IKNP's correlation for 128/k bits per OT, over both transports."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit.snni import CHI2_LIMIT, chi_square_uniform_bytes, recording_pair

from secfepas_sdk.errors import SnniError
from secfepas_sdk.protocol.transport import SocketChannel
from secfepas_sdk.snni.channel import Channel, ChannelError, memory_pair, run_pair
from secfepas_sdk.snni.ot import softspoken as ss
from secfepas_sdk.snni.ot.softspoken import SoftSpokenReceiver, SoftSpokenSender
from secfepas_sdk.snni.prg import Prg

Runner = Callable[..., tuple[Any, Any]]


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two ends of a real loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname()[:2])
        server, _ = listener.accept()
    return client, server


def run_sockets(
    make: Callable[[], tuple[socket.socket, socket.socket]],
) -> Runner:
    """Both parties in threads, each on a SocketChannel over sockets from ``make``."""

    def run(client: Callable[[Channel], Any], server: Callable[[Channel], Any]) -> Any:
        a, b = make()
        results: list[Any] = [None, None]
        errors: list[BaseException] = []

        def serve() -> None:
            with SocketChannel(b, timeout_s=60) as ch:
                try:
                    results[1] = server(ch)
                except BaseException as exc:
                    errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        with SocketChannel(a, timeout_s=60) as ch:
            try:
                results[0] = client(ch)
            except BaseException as exc:
                errors.append(exc)
        thread.join(60)
        if errors:
            raise errors[0]
        return results[0], results[1]

    return run


@pytest.fixture(params=["memory", "socketpair", "tcp"])
def run_parties(request: pytest.FixtureRequest) -> Runner:
    """The in-memory pair, a socketpair SocketChannel, and loopback TCP."""
    if request.param == "memory":
        return run_pair
    return run_sockets(socket.socketpair if request.param == "socketpair" else tcp_pair)


# 255 degrees of freedom: the 0.9999 quantile is about 340.


class BaseOts:
    """What 128 base OTs leave behind: the OT receiver holds both seeds, the OT
    sender holds s (its base-OT choices) and the seed it chose."""

    def __init__(self) -> None:
        self.s_bits = np.frombuffer(secrets.token_bytes(128), dtype=np.uint8) & np.uint8(1)
        self.seeds0 = np.frombuffer(secrets.token_bytes(2048), dtype=np.uint8).reshape(128, 16)
        self.seeds1 = np.frombuffer(secrets.token_bytes(2048), dtype=np.uint8).reshape(128, 16)
        self.chosen = np.where(self.s_bits[:, None] == 1, self.seeds1, self.seeds0)
        self.s = np.packbits(self.s_bits, bitorder="little")

    def receiver(self, k: int, domain: int = 0) -> SoftSpokenReceiver:
        return SoftSpokenReceiver(self.seeds0, self.seeds1, domain=domain, k=k)

    def sender(self, k: int, domain: int = 0) -> SoftSpokenSender:
        return SoftSpokenSender(self.s_bits, self.chosen, domain=domain, k=k)


def run_extension(
    run: Runner,
    k: int,
    receiver_fn: Callable[[SoftSpokenReceiver, Channel], Any],
    sender_fn: Callable[[SoftSpokenSender, Channel], Any],
) -> tuple[BaseOts, Any, Any]:
    base = BaseOts()

    def client(ch: Channel) -> Any:
        r = base.receiver(k)
        r.setup(ch)
        return receiver_fn(r, ch)

    def server(ch: Channel) -> Any:
        s = base.sender(k)
        s.setup(ch)
        return sender_fn(s, ch)

    a, b = run(client, server)
    return base, a, b


def expect_correlation(base: BaseOts, choices: np.ndarray, t: np.ndarray, q: np.ndarray) -> None:
    assert t.shape == q.shape == (choices.size, 16)
    expected = t ^ (choices.astype(np.uint8)[:, None] * base.s[None, :])
    np.testing.assert_array_equal(q, expected)


@pytest.mark.parametrize("k", [1, 2, 4, 6, 8])
def test_correlation_random_choices(run_parties: Runner, k: int) -> None:
    choices = np.frombuffer(secrets.token_bytes(5000), dtype=np.uint8) & np.uint8(1)
    base, t, q = run_extension(
        run_parties, k, lambda r, ch: r.extend(ch, choices), lambda s, ch: s.extend(ch, 5000)
    )
    expect_correlation(base, choices, t, q)
    assert len({bytes(row) for row in t[:64]}) == 64  # rows are not degenerate


@settings(max_examples=12, deadline=None)
@given(
    k=st.sampled_from([1, 2, 4, 6, 8]),
    sizes=st.lists(st.integers(0, 700), min_size=1, max_size=4),
    fill=st.sampled_from([None, 0, 1]),
)
def test_correlation_property(k: int, sizes: list[int], fill: int | None) -> None:
    """q = t xor r*s for any batch sizes (in a row) and any choices."""
    batches = [
        np.full(m, fill, dtype=np.uint8)
        if fill is not None
        else np.frombuffer(secrets.token_bytes(m), dtype=np.uint8) & np.uint8(1)
        for m in sizes
    ]
    base, ts, qs = run_extension(
        run_pair,
        k,
        lambda r, ch: [r.extend(ch, c) for c in batches],
        lambda s, ch: [s.extend(ch, c.size) for c in batches],
    )
    for c, t, q in zip(batches, ts, qs, strict=True):
        expect_correlation(base, c, t, q)


@pytest.mark.parametrize("k", [2, 4])
def test_edge_choices_and_batches_in_step(run_parties: Runner, k: int) -> None:
    """All-0 and all-1 choices, sizes around 8/64/chunk boundaries, many batches in a
    row: a single PRG stream out of step would break every later batch."""
    chunk = ss.chunk_size(k)
    sizes = [1, 7, 63, 64, 65, 127, 129, 0, chunk + 3, 2 * chunk, 1000]
    batches = []
    for i, m in enumerate(sizes):
        fill = {0: 0, 1: 1}.get(i % 3)
        if fill is None:
            batches.append(np.frombuffer(secrets.token_bytes(m), dtype=np.uint8) & np.uint8(1))
        else:
            batches.append(np.full(m, fill, dtype=np.uint8))

    def receiver(r: SoftSpokenReceiver, ch: Channel) -> list[np.ndarray]:
        return [r.extend(ch, c) for c in batches]

    def sender(s: SoftSpokenSender, ch: Channel) -> list[np.ndarray]:
        return [s.extend(ch, c.size) for c in batches]

    base, ts, qs = run_extension(run_parties, k, receiver, sender)
    for c, t, q in zip(batches, ts, qs, strict=True):
        expect_correlation(base, c, t, q)


@pytest.mark.parametrize("k", [1, 4, 6, 8])
def test_random_ot_through_crhash(run_parties: Runner, k: int) -> None:
    n = 3001
    choices = np.frombuffer(secrets.token_bytes(n), dtype=np.uint8) & np.uint8(1)

    def receiver(r: SoftSpokenReceiver, ch: Channel) -> tuple[np.ndarray, np.ndarray]:
        return r.random_ot(ch, choices, 64), r.random_ot(ch, choices[:100], 5)

    def sender(s: SoftSpokenSender, ch: Channel) -> Any:
        return s.random_ot(ch, n, 64), s.random_ot(ch, 100, 5)

    _, (k64, k5), ((a0, a1), (b0, b1)) = run_extension(run_parties, k, receiver, sender)
    np.testing.assert_array_equal(k64, np.where(choices == 1, a1, a0))
    np.testing.assert_array_equal(k5, np.where(choices[:100] == 1, b1, b0))
    assert (a0 != a1).all()
    assert int(max(b0.max(), b1.max())) < 32
    assert len(np.unique(a0)) == n  # the hash tweaks differ per OT


@pytest.mark.parametrize("k", [1, 2, 4, 6, 8])
def test_bytes_on_wire(k: int) -> None:
    """count * 128 / k bits of corrections (rounded up to bytes per message), nothing back;
    setup is one 4 KiB message."""
    count = 3 * ss.chunk_size(k) + 5

    def receiver(r: SoftSpokenReceiver, ch: Channel) -> tuple[int, int, int]:
        before = ch.stats.bytes_sent
        r.random_ot(ch, np.ones(count, dtype=np.uint8), 32)
        return before, ch.stats.bytes_sent - before, ch.stats.bytes_received

    def sender(s: SoftSpokenSender, ch: Channel) -> int:
        s.random_ot(ch, count, 32)
        return ch.stats.bytes_sent

    _, (setup, extension, back), sent_by_sender = run_extension(run_pair, k, receiver, sender)
    assert setup == ss.setup_message_size(k) == 4096 + 16
    n = len(ss.instance_sizes(k))  # 128 / k, or 22 for k = 6 (21 x 6 bits + 1 x 2)
    assert n == -(-128 // k)
    messages = 4
    assert count * n / 8 <= extension <= count * n / 8 + n * messages
    assert back == sent_by_sender == 0


@pytest.mark.parametrize(("k", "fill"), [(1, 0), (4, 0), (4, 1), (6, 0), (8, 1)])
def test_sender_view_is_uniform(k: int, fill: int) -> None:
    """What the OT sender receives (setup sums, corrections) looks uniform even for
    constant choices: each correction is masked by the PRG output of its unknown seed."""
    cl, sv = recording_pair()
    base = BaseOts()
    choices = np.full(1 << 15, fill, dtype=np.uint8)

    def client() -> None:
        r = base.receiver(k)
        r.setup(cl)
        r.random_ot(cl, choices, 16)

    thread = threading.Thread(target=client)
    thread.start()
    s = base.sender(k)
    s.setup(sv)
    s.random_ot(sv, choices.size, 16)
    thread.join(60)
    setup_msg, *corrections = sv.view
    assert chi_square_uniform_bytes(setup_msg) < CHI2_LIMIT
    assert chi_square_uniform_bytes(b"".join(corrections)) < CHI2_LIMIT


def test_rejects_bad_parameters_and_messages() -> None:
    base = BaseOts()
    for k in (0, 3, 5, 7, 16):
        with pytest.raises(SnniError):
            base.receiver(k)
        with pytest.raises(SnniError):
            base.sender(k)
    with pytest.raises(SnniError):
        SoftSpokenReceiver(base.seeds0[:64], base.seeds1, domain=0)
    cl, sv = memory_pair(timeout_s=5)
    with pytest.raises(SnniError):  # before setup
        base.sender(4).random_ot(sv, 10, 8)
    with pytest.raises(SnniError):
        base.receiver(4).random_ot(cl, np.zeros(10, np.uint8), 8)
    r = base.receiver(4)
    r.setup(cl)
    with pytest.raises(SnniError):
        r.random_ot(cl, np.full(10, 2, np.uint8), 8)
    with pytest.raises(SnniError):
        r.random_ot(cl, np.zeros(10, np.uint8), 65)
    cl.send(b"short")  # a truncated setup message from a faulty peer
    s = base.sender(4)
    s.setup(sv)  # consumes the genuine setup message
    with pytest.raises(SnniError, match="already"):
        s.setup(sv)  # base seeds are dropped after the first setup
    with pytest.raises(ChannelError):
        base.sender(4).setup(sv)
    base.receiver(2).setup(cl)  # the peer configured with another k
    with pytest.raises(SnniError, match="k = 4"):
        base.sender(4).setup(sv)


def test_stream_prg_is_the_prg() -> None:
    seeds = [secrets.token_bytes(16) for _ in range(3)]
    fast = [ss._StreamPrg(seed) for seed in seeds]
    refs = [Prg(seed) for seed in seeds]
    buf = np.zeros(3 * 1000 + 15, dtype=np.uint8)
    for n in (8, 100, 1000):
        ss._StreamPrg.fill_rows(fast, np.zeros(n, np.uint8).data, buf, 0)
        for j, ref in enumerate(refs):
            np.testing.assert_array_equal(buf[j * n : (j + 1) * n], ref.stream(n))
    with pytest.raises(SnniError):
        ss._StreamPrg.fill_rows(fast, np.zeros(1000, np.uint8).data, buf, 10)


@settings(max_examples=20, deadline=None)
@given(k=st.sampled_from([1, 2, 4, 8]), w=st.integers(1, 5), n=st.integers(1, 3))
def test_fold_matches_definition(k: int, w: int, n: int) -> None:
    g = np.frombuffer(secrets.token_bytes(n * (8 << k) * w), dtype=np.uint64).reshape(n, 1 << k, w)
    planes, total = ss._fold(g)
    p2 = np.empty_like(planes)
    t2 = np.empty_like(total)
    ss._fold_numpy(g, p2, t2)
    x = np.arange(1 << k)
    for b in range(k):
        ref = np.bitwise_xor.reduce(g[:, ((x >> b) & 1) == 1], axis=1)
        np.testing.assert_array_equal(planes[:, b], ref)
        np.testing.assert_array_equal(p2[:, b], ref)
    np.testing.assert_array_equal(total, np.bitwise_xor.reduce(g, axis=1))
    np.testing.assert_array_equal(t2, total)


def test_chunk_sizes() -> None:
    for k in ss.SUPPORTED_K:
        c = ss.chunk_size(k)
        assert c % 64 == 0
        assert sum(1 << size for size in ss.instance_sizes(k)) * c // 8 <= 8 << 20  # one chunk


def test_session_flavours_over_softspoken(run_parties: Runner) -> None:
    """OtSession(extension="softspoken"): every OT flavour, both directions."""
    from secfepas_sdk.snni.ot import OtSession
    from secfepas_sdk.snni.party import Party

    n = 2000
    rng = np.random.default_rng(7)
    c = rng.integers(0, 2, n).astype(np.uint8)
    m0 = rng.integers(0, 1 << 37, n, dtype=np.uint64)
    m1 = rng.integers(0, 1 << 37, n, dtype=np.uint64)
    delta = rng.integers(0, 1 << 20, n, dtype=np.uint64)
    c16 = rng.integers(0, 16, n).astype(np.uint64)
    msgs = rng.integers(0, 4, (n, 16), dtype=np.uint64)

    def client(ch: Channel) -> Any:
        ot = OtSession(Party.CLIENT, extension="softspoken", k=4)
        ot.setup(ch)
        out = ot.chosen_recv(ch, c, 37), ot.cot_recv(ch, c, 20), ot.one_of_n_recv(ch, c16, 4, 2)
        ot.chosen_send(ch, m0, m1, 37)
        return out

    def server(ch: Channel) -> Any:
        ot = OtSession(Party.SERVER, extension="softspoken", k=4)
        ot.setup(ch)
        ot.chosen_send(ch, m0, m1, 37)
        x = ot.cot_send(ch, delta, 20)
        ot.one_of_n_send(ch, msgs, 4, 2)
        return x, ot.chosen_recv(ch, c, 37)

    (chosen, corr, one16), (x, back) = run_parties(client, server)
    np.testing.assert_array_equal(chosen, np.where(c == 1, m1, m0))
    np.testing.assert_array_equal(back, np.where(c == 1, m1, m0))
    np.testing.assert_array_equal(corr, (x + c * delta) & np.uint64((1 << 20) - 1))
    np.testing.assert_array_equal(one16, msgs[np.arange(n), c16.astype(int)])


def test_session_rejects_unknown_extension() -> None:
    from secfepas_sdk.snni.ot import OtSession
    from secfepas_sdk.snni.party import Party

    with pytest.raises(SnniError):
        OtSession(Party.CLIENT, extension="silver")
    with pytest.raises(SnniError):
        OtSession(Party.CLIENT, extension="softspoken", k=3)


def test_relu_over_softspoken() -> None:
    from secfepas_sdk.snni.nonlinear import NonlinearEngine
    from secfepas_sdk.snni.party import Party
    from secfepas_sdk.snni.ring import Ring

    ring = Ring(bits=37, frac_bits=12)
    rng = np.random.default_rng(3)
    x = ring.from_signed(rng.integers(-(1 << 30), 1 << 30, 3000))
    x0 = ring.random(Prg(), x.shape)

    def party(who: Party, share: np.ndarray) -> Callable[[Channel], np.ndarray]:
        def run(ch: Channel) -> np.ndarray:
            eng = NonlinearEngine(ch, party=who, ring=ring, ot_extension="softspoken", ot_k=4)
            eng.setup()
            return eng.relu(share)

        return run

    y0, y1 = run_pair(party(Party.CLIENT, x0), party(Party.SERVER, ring.sub(x, x0)))
    np.testing.assert_array_equal(
        ring.to_signed(ring.add(y0, y1)), np.maximum(ring.to_signed(x), 0)
    )
