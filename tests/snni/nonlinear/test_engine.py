"""Each non-linear protocol against its plaintext function, on both transports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from secfepas_sdk.errors import SnniError
from secfepas_sdk.snni.channel import Channel
from secfepas_sdk.snni.nonlinear import NonlinearEngine
from secfepas_sdk.snni.ot.ferret import ITERATION_LABEL
from secfepas_sdk.snni.party import Party
from secfepas_sdk.snni.prg import Prg
from secfepas_sdk.snni.ring import Ring

RINGS = [Ring(bits=37, frac_bits=12), Ring(bits=41, frac_bits=15)]


def edge_values(ring: Ring, n: int, seed: int) -> NDArray[np.int64]:
    """Random signed values with the edge cases up front: 0, +-1 ulp, extremes, wrap-around."""
    rng = np.random.default_rng(seed)
    vals = rng.integers(ring.min_signed, ring.max_signed + 1, n)
    lo, hi = ring.min_signed, ring.max_signed
    edges = [0, 1, -1, 2, -2, hi, lo, hi - 1, lo + 1, 1 << ring.frac_bits, -(1 << ring.frac_bits)]
    vals[: len(edges)] = edges
    return vals


def secure(
    run_parties: Callable[..., tuple[Any, Any]],
    ring: Ring,
    op: Callable[[NonlinearEngine, NDArray[np.uint64]], Any],
    values: NDArray[np.int64],
) -> tuple[Any, Any]:
    x0, x1 = ring.share(ring.from_signed(values), Prg())

    def party(who: Party, share: NDArray[np.uint64]) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            engine = NonlinearEngine(channel, party=who, ring=ring, batch_size=1 << 10)
            engine.setup()
            return op(engine, share)

        return run

    return run_parties(party(Party.CLIENT, x0), party(Party.SERVER, x1))


@pytest.mark.parametrize("ring", RINGS, ids=lambda r: f"l{r.bits}")
def test_drelu_relu(run_parties: Callable[..., tuple[Any, Any]], ring: Ring) -> None:
    vals = edge_values(ring, 3000, seed=ring.bits)
    a, b = secure(run_parties, ring, lambda e, x: (e.drelu(x), e.relu(x)), vals)
    assert a[0].dtype == np.uint8
    np.testing.assert_array_equal(a[0] ^ b[0], (vals >= 0).astype(np.uint8))
    np.testing.assert_array_equal(ring.to_signed(ring.add(a[1], b[1])), np.maximum(vals, 0))


@pytest.mark.parametrize("ring", RINGS, ids=lambda r: f"l{r.bits}")
def test_truncate_within_one_ulp(run_parties: Callable[..., tuple[Any, Any]], ring: Ring) -> None:
    vals = edge_values(ring, 3000, seed=7)
    f = ring.frac_bits
    # Both ops support x >= -2^(l-1) + 2^f: move the bottom 2^f ring values up.
    lowest = ring.min_signed + (1 << f)
    vals_rt = np.maximum(vals, lowest)
    vals_rt[-6:] = [lowest, lowest + 1, (1 << f) - 1, 1 << f, -(1 << f) - 1, (1 << f) + 1]
    a, b = secure(run_parties, ring, lambda e, x: e.truncate(x, f), vals_rt)
    err = ring.to_signed(ring.add(a, b)) - (vals_rt >> f)
    assert set(np.unique(err).tolist()) <= {-1, 0}
    a, b = secure(run_parties, ring, lambda e, x: e.relu_truncate(x, f), vals_rt)
    err_r = ring.to_signed(ring.add(a, b)) - np.maximum(vals_rt >> f, 0)
    assert set(np.unique(err_r).tolist()) <= {-1, 0}


@pytest.mark.parametrize("ring", RINGS, ids=lambda r: f"l{r.bits}")
def test_truncate_with_a_bound_within_one_ulp(
    run_parties: Callable[..., tuple[Any, Any]], ring: Ring
) -> None:
    """With bound_bits <= l - 2 (Ferret: the wrap from the shares' top bits) the result
    is the same as without, at every value of the promised range, its ends included."""
    f, k = ring.frac_bits, ring.bits - 2
    rng = np.random.default_rng(11)
    vals = rng.integers(-(1 << k), 1 << k, 3000)
    ends = [-(1 << k), -(1 << k) + 1, (1 << k) - 1, (1 << k) - 2, 0, -1, 1, 1 << f, -(1 << f)]
    vals[: len(ends)] = ends
    a, b = secure(run_parties, ring, lambda e, x: e.truncate(x, f, bound_bits=k), vals)
    err = ring.to_signed(ring.add(a, b)) - (vals >> f)
    assert set(np.unique(err).tolist()) <= {-1, 0}
    small = vals >> (k - 20)  # a tighter promise takes the same path
    a, b = secure(run_parties, ring, lambda e, x: e.truncate(x, 5, bound_bits=20), small)
    err = ring.to_signed(ring.add(a, b)) - (small >> 5)
    assert set(np.unique(err).tolist()) <= {-1, 0}


def test_truncate_bound_is_checked(run_parties: Callable[..., tuple[Any, Any]]) -> None:
    ring = RINGS[0]
    with pytest.raises(SnniError, match="bound_bits"):
        secure(run_parties, ring, lambda e, x: e.truncate(x, 12, bound_bits=ring.bits), np.ones(4))


@pytest.mark.parametrize("ring", RINGS, ids=lambda r: f"l{r.bits}")
def test_relu_truncate_capped_is_relu6(
    run_parties: Callable[..., tuple[Any, Any]], ring: Ring
) -> None:
    """min(ReLU(x >> f), cap), exact or 1 ulp low, around 0 and the cap, over several
    batches (two comparisons per element: on Ferret they share the client's leaf OTs,
    elsewhere they run side by side): the promise is x - cap 2^f >= -2^(l-1) + 2^f."""
    f = ring.frac_bits
    cap = 6 << f  # ReLU6 at the output's scale
    vals = edge_values(ring, 3001, seed=11)
    lowest = ring.min_signed + (1 << f) + (cap << f)
    vals = np.maximum(vals, lowest)
    near = [0, 1, -1, (1 << f) - 1, 1 << f, (cap << f) - 1, cap << f, (cap << f) + 1]
    near += [(cap - 1) << f, ((cap + 1) << f) - 1, lowest, lowest + 1, ring.max_signed]
    vals[-len(near) :] = near
    a, b = secure(run_parties, ring, lambda e, x: e.relu_truncate_capped(x, f, cap), vals)
    err = ring.to_signed(ring.add(a, b)) - np.minimum(np.maximum(vals >> f, 0), cap)
    assert set(np.unique(err).tolist()) <= {-1, 0}


def _relu6_wire(
    run_parties: Callable[..., tuple[Any, Any]], ring: Ring, shared_form: bool, vals: Any
) -> tuple[tuple[int, int, int], Any]:
    """(bytes, messages, rounds) of one ReLU6 call after setup, as the camera counts
    them (Ferret's iterations apart), and the opened result: ``shared_form`` runs
    relu_truncate_capped, else the side-by-side form (the camera lowers its share)."""
    f, cap = ring.frac_bits, 6 << ring.frac_bits
    x0, x1 = ring.share(ring.from_signed(vals), Prg())

    def party(who: Party, share: NDArray[np.uint64]) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            engine = NonlinearEngine(channel, party=who, ring=ring, batch_size=1 << 10)
            engine.setup()
            st = channel.stats
            before = (st.bytes_sent + st.bytes_received, st.messages_sent, st.rounds)
            if shared_form:
                out = engine.relu_truncate_capped(share, f, cap)
            else:
                low = ring.sub(share, np.full(share.shape, cap << f, np.uint64))
                both = engine.relu_truncate(
                    np.stack([share, low if who is Party.CLIENT else share]), f
                )
                out = ring.sub(both[0], both[1])
            iteration = sum(
                v.bytes_sent + v.bytes_received
                for k, v in st.by_label.items()
                if ITERATION_LABEL in k
            )
            after = (st.bytes_sent + st.bytes_received - iteration, st.messages_sent, st.rounds)
            return tuple(a - b for a, b in zip(after, before, strict=True)), out

        return run

    (wire, a), (_, b) = run_parties(party(Party.CLIENT, x0), party(Party.SERVER, x1))
    return wire, ring.to_signed(ring.add(a, b))


def test_relu6_on_softspoken_keeps_its_wire_whatever_the_layout(
    run_parties: Callable[..., tuple[Any, Any]], ot_backend: str
) -> None:
    """At l = 29 (16 compared bits) SoftSpokenOT's and IKNP's layouts could share their
    leaves too, but their suite (snni-cheetah-v3) never did: relu_truncate_capped must
    send exactly what the side-by-side form sends there. Ferret sends fewer bytes."""
    ring = Ring(bits=29, frac_bits=12)
    vals = np.random.default_rng(5).integers(-(1 << 24), 1 << 24, 1500)
    wire_side, side = _relu6_wire(run_parties, ring, False, vals)
    wire_shared, shared = _relu6_wire(run_parties, ring, True, vals)
    want = np.clip(vals >> ring.frac_bits, 0, 6 << ring.frac_bits)
    for got in (side, shared):
        assert set(np.unique(got - want).tolist()) <= {-1, 0}
    if ot_backend == "ferret":
        assert wire_shared[0] < wire_side[0] and wire_shared[2] == wire_side[2]
    else:
        assert wire_shared[:2] == wire_side[:2]


def maxpool_ref(
    x: NDArray[np.int64], k: tuple[int, int], s: tuple[int, int], pads: tuple[int, int, int, int]
) -> NDArray[np.int64]:
    n, c, h, w = x.shape
    top, left, bottom, right = pads
    padded = np.full((n, c, h + top + bottom, w + left + right), np.iinfo(np.int64).min)
    padded[:, :, top : top + h, left : left + w] = x
    oh = (h + top + bottom - k[0]) // s[0] + 1
    ow = (w + left + right - k[1]) // s[1] + 1
    out = np.empty((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            win = padded[:, :, i * s[0] : i * s[0] + k[0], j * s[1] : j * s[1] + k[1]]
            out[:, :, i, j] = win.max(axis=(2, 3))
    return out


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "pads"),
    [
        ((1, 4, 11, 11), (3, 3), (2, 2), (0, 0, 0, 0)),  # SqueezeNet
        ((2, 3, 8, 8), (3, 3), (2, 2), (1, 1, 1, 1)),  # ResNet50 stem
        ((1, 2, 6, 7), (2, 2), (2, 2), (0, 0, 0, 1)),
        ((1, 2, 7, 5), (2, 3), (1, 2), (1, 0, 0, 2)),  # asymmetric everything
        ((1, 1, 4, 4), (4, 4), (1, 1), (0, 0, 0, 0)),  # global max
    ],
)
def test_maxpool(
    run_parties: Callable[..., tuple[Any, Any]],
    shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> None:
    ring = RINGS[0]
    rng = np.random.default_rng(3)
    vals = rng.integers(-(1 << 30), 1 << 30, shape)
    # max(a, b) goes through a - b, so inputs must lie in [-2^(l-2), 2^(l-2)).
    quarter = 1 << (ring.bits - 2)
    vals.reshape(-1)[:5] = [quarter - 1, -quarter, -1, 0, quarter - 2]
    a, b = secure(
        run_parties,
        ring,
        lambda e, x: e.maxpool2d(x, kernel=kernel, stride=stride, pads=pads),
        vals,
    )
    got = ring.to_signed(ring.add(a, b))
    np.testing.assert_array_equal(got, maxpool_ref(vals, kernel, stride, pads))


def test_maxpool_with_bound(run_parties: Callable[..., tuple[Any, Any]]) -> None:
    """After relu_truncate(., 12) at l = 37 values lie in [-1, 2^24): bound 24."""
    ring = RINGS[0]
    rng = np.random.default_rng(9)
    vals = rng.integers(-1, 1 << 24, (1, 3, 9, 9))
    vals.reshape(-1)[:3] = [(1 << 24) - 1, -1, 0]
    a, b = secure(
        run_parties,
        ring,
        lambda e, x: e.maxpool2d(x, (3, 3), (2, 2), (1, 1, 1, 1), bound_bits=24),
        vals,
    )
    got = ring.to_signed(ring.add(a, b))
    np.testing.assert_array_equal(got, maxpool_ref(vals, (3, 3), (2, 2), (1, 1, 1, 1)))


def test_empty_and_bad_inputs() -> None:
    from secfepas_sdk.snni.channel import run_pair

    ring = RINGS[0]

    def party(who: Party) -> Callable[[Channel], Any]:
        def run(channel: Channel) -> Any:
            engine = NonlinearEngine(channel, party=who, ring=ring)
            with pytest.raises(SnniError):
                engine.relu(np.zeros(4, dtype=np.uint64))  # before setup
            engine.setup()
            with pytest.raises(SnniError):
                engine.relu(np.zeros(4, dtype=np.int64))  # type: ignore[arg-type]
            with pytest.raises(SnniError):
                engine.truncate(np.zeros(4, dtype=np.uint64), 0)
            with pytest.raises(SnniError):
                engine.relu(np.zeros(4, dtype=np.uint64), bound_bits=37)
            with pytest.raises(SnniError):
                engine.maxpool2d(np.zeros((1, 1, 2, 2), np.uint64), (2, 2), (2, 2), bound_bits=36)
            return engine.relu(np.zeros((0, 3), dtype=np.uint64))

        return run

    a, b = run_pair(party(Party.CLIENT), party(Party.SERVER))
    assert a.shape == (0, 3) and b.shape == (0, 3)


@pytest.mark.parametrize(("bound", "drop"), [(None, 10), (28, 10), (20, 3)])
def test_maxpool_dropped_bits(
    run_parties: Callable[..., tuple[Any, Any]], bound: int | None, drop: int
) -> None:
    """With drop_bits = s each output is one of its window's values and at most
    4 (2^s - 1) below the true maximum (3x3: two levels per axis); ties within 2^s
    and the range ends are forced in."""
    ring = RINGS[0]
    k = ring.bits - 3 if bound is None else bound
    rng = np.random.default_rng(11)
    vals = rng.integers(-(1 << k), 1 << k, (1, 2, 9, 9))
    flat = vals.reshape(-1)
    flat[:6] = [(1 << k) - 1, -(1 << k), (1 << k) - 2, -(1 << k) + 1, 0, 1]
    flat[10:40] = flat[10] + rng.integers(0, 1 << drop, 30)  # near-ties
    a, b = secure(
        run_parties,
        ring,
        lambda e, x: e.maxpool2d(x, (3, 3), (2, 2), (1, 1, 1, 1), bound_bits=bound, drop_bits=drop),
        vals,
    )
    got = ring.to_signed(ring.add(a, b))
    want = maxpool_ref(vals, (3, 3), (2, 2), (1, 1, 1, 1))
    assert np.all(got <= want) and np.all(want - got <= 4 * ((1 << drop) - 1))
    # Every output is a value of its own window (max-pooling of got's indicator).
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(vals, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=ring.min_signed),
        (3, 3),
        axis=(2, 3),
    )[:, :, ::2, ::2]
    assert np.all(np.any(windows == got[..., None, None], axis=(-2, -1)))
