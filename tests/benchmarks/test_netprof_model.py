"""The network-profile cost model: the fit recovers known coefficients, never prices
a byte or a round below zero, and the chart is a PNG."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import netprof_model

PROFILES = [
    ("loopback", None, 0.02),
    ("LAN", 1000.0, 1.0),
    ("5G", 1000.0, 5.0),
    ("WAN", 400.0, 40.0),
]


def rows(model: str, compute: float, nbytes: int, rounds: int, c_bw: float, c_rtt: float,
         noise: list[float] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for i, (name, mbit, rtt) in enumerate(PROFILES):
        link = {"mbit_s_steady": mbit or 30_000.0, "rtt_ms_median": rtt}
        t = (
            compute
            + (c_bw * nbytes * 8 / (mbit * 1e6) if mbit else 0.0)
            + c_rtt * rounds * rtt / 1e3
        )
        out.append({"model": model, "profile": name, "loopback": mbit is None, "link": link,
                    "bytes": nbytes, "rounds": rounds,
                    "seconds": t + (noise[i] if noise else 0.0)})  # fmt: skip
    return out


def test_fit_recovers_the_coefficients_and_the_apriori_model_is_exact_at_one() -> None:
    r = rows("squeezenet", 19.0, 650_000_000, 227, c_bw=1.3, c_rtt=0.8)
    fit = netprof_model.fit_model(r)
    f = fit["fit"]
    assert abs(f["compute_s"] - 19.0) < 1e-6 and abs(f["c_bw"] - 1.3) < 1e-6
    assert abs(f["c_rtt"] - 0.8) < 1e-6 and f["dof"] == 1 and f["rms_residual_s"] < 1e-6
    exact = netprof_model.fit_model(rows("m", 5.0, 10**8, 100, c_bw=1.0, c_rtt=1.0))
    assert max(map(abs, exact["apriori"]["residual_s"])) < 1e-9
    assert netprof_model.fit_model(r[:2])["fit"] is None  # 3 unknowns, 2 profiles


def test_joint_fit_shares_the_link_coefficients() -> None:
    r = rows("a", 19.0, 650_000_000, 227, 1.2, 0.9) + rows("b", 200.0, 2_700_000_000, 414, 1.2, 0.9)
    j = netprof_model.fit_joint(r)
    assert j is not None and j["dof"] == 4
    assert abs(j["compute_s"]["a"] - 19.0) < 1e-6 and abs(j["compute_s"]["b"] - 200.0) < 1e-6
    assert abs(j["c_bw"] - 1.2) < 1e-6 and abs(j["c_rtt"] - 0.9) < 1e-6
    assert netprof_model.fit_joint(r[:4]) is None  # one model: that model's own fit


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4), st.floats(0.0, 3.0))
def test_noisy_runs_never_give_a_negative_price(noise: list[float], c_bw: float) -> None:
    r = rows("demo", 2.5, 12_000_000, 48, c_bw=c_bw, c_rtt=1.0, noise=noise)
    f = netprof_model.fit_model(r)["fit"]
    assert f["compute_s"] >= 0 and f["c_bw"] >= 0 and f["c_rtt"] >= 0
    # No worse than the a-priori model with its compute refitted (a feasible point).
    t = np.array([x["seconds"] for x in r])
    net = np.array([sum(netprof_model.terms(x)) for x in r])
    baseline = float(np.sum((t - net - max(0.0, float(np.mean(t - net)))) ** 2))
    assert sum(v * v for v in f["residual_s"]) <= baseline + 1e-9


def test_chart_is_a_png(tmp_path: Path) -> None:
    r = rows("a", 19.0, 650_000_000, 227, 1.0, 1.0) + rows("b", 2.0, 10**7, 48, 1.0, 1.0)
    results = {"meta": {"cpus": 2, "loadavg_start": [1.0, 1.0, 1.0], "title": "t"}, "rows": r,
               "models": {m: netprof_model.fit_model([x for x in r if x["model"] == m])
                          for m in ("a", "b")}}  # fmt: skip
    netprof_model.chart(results, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
