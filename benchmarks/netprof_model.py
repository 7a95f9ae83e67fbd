"""The cost model of a secure inference on a link, its fit, and the Fig. 3-style chart.

    time ≈ compute + bytes / bandwidth + rounds × RTT

``bytes`` is both directions added up (the protocol mostly alternates, so its
flights rarely overlap), ``bandwidth`` the link's measured steady rate, ``RTT``
its measured median, ``rounds`` the camera's changes of direction (each waits at
least one RTT for the edge). The a-priori prediction takes ``compute`` from the
loopback run (less its own rounds × RTT) and both coefficients as 1. The fit is
least squares of the measured times of one model over its profiles against
``c0 + c_bw·bytes/bw + c_rtt·rounds·RTT``, non-negative (each coefficient is a
cost, and a noisy run must not make one negative): ``c0`` is the compute the
network runs saw (they share 2 cores with the forwarder), ``c_bw`` how much of the
link's rate the protocol's bursts miss (above 1: slow start after idle compute
phases; below 1: transfers overlapping compute), ``c_rtt`` the RTTs one counted
round really costs (below 1: a party computes while the other's flight is in the air).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def terms(row: dict[str, Any]) -> tuple[float, float]:
    """(bytes / bandwidth, rounds × RTT) in seconds for one (model, profile) row."""
    link = row["link"]
    mbit = link["mbit_s_steady"]
    transfer = 0.0 if row["loopback"] or not mbit > 0 else row["bytes"] * 8 / (mbit * 1e6)
    latency = row["rounds"] * link["rtt_ms_median"] / 1e3
    return transfer, latency


def nnls(a: np.ndarray[Any, Any], t: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Least squares with every coefficient ≥ 0 (each is a cost: a noisy run must not
    buy a negative price per byte), by trying each set of free columns: a handful."""
    best, best_err = np.zeros(a.shape[1]), float(np.sum(t**2))
    for mask in range(1, 1 << a.shape[1]):
        cols = [i for i in range(a.shape[1]) if mask >> i & 1]
        sol, *_ = np.linalg.lstsq(a[:, cols], t, rcond=None)
        if np.all(sol >= 0):
            coef = np.zeros(a.shape[1])
            coef[cols] = sol
            err = float(np.sum((t - a @ coef) ** 2))
            if err < best_err - 1e-15:
                best, best_err = coef, err
    return best


def fit_model(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The a-priori prediction and (with ≥ 3 profiles) the least-squares fit for one
    model's rows; residuals are measured - modelled, in seconds."""
    t = np.array([r["seconds"] for r in rows])
    x = np.array([terms(r) for r in rows])
    # Compute: the loopback time less loopback's own (tiny) rounds × RTT.
    loop = [r["seconds"] - sum(terms(r)) for r in rows if r["loopback"]]
    out: dict[str, Any] = {"profiles": [r["profile"] for r in rows]}
    if loop:
        pred = loop[0] + x[:, 0] + x[:, 1]
        out["apriori"] = {
            "compute_s": loop[0],
            "predicted_s": pred.tolist(),
            "residual_s": (t - pred).tolist(),
        }
    if len(rows) >= 3 and np.linalg.matrix_rank(np.column_stack([np.ones(len(t)), x])) == 3:
        a = np.column_stack([np.ones(len(t)), x])
        coef = nnls(a, t)
        pred = a @ coef
        out["fit"] = {
            "compute_s": float(coef[0]),
            "c_bw": float(coef[1]),
            "c_rtt": float(coef[2]),
            "predicted_s": pred.tolist(),
            "residual_s": (t - pred).tolist(),
            "rms_residual_s": float(np.sqrt(np.mean((t - pred) ** 2))),
            "dof": len(t) - 3,  # 0: three profiles fit exactly, the residuals say nothing
        }
    else:
        out["fit"] = None  # 3 unknowns: needs 3 profiles of independent bytes/bw, RTT
    return out


def fit_joint(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One fit over every model: a compute term per model, ``c_bw`` and ``c_rtt``
    shared (the link costs the same per byte and per round whatever the model), so
    four profiles of three models leave 7 degrees of freedom. None when too few rows,
    or one model only (then it is that model's fit)."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    if len(models) < 2:
        return None
    a = np.array(
        [[1.0 if r["model"] == m else 0.0 for m in models] + list(terms(r)) for r in rows]
    ).reshape(len(rows), len(models) + 2)
    t = np.array([r["seconds"] for r in rows])
    if len(rows) <= a.shape[1] or np.linalg.matrix_rank(a) < a.shape[1]:
        return None
    coef = nnls(a, t)
    pred = a @ coef
    return {
        "compute_s": dict(zip(models, coef[: len(models)].tolist(), strict=True)),
        "c_bw": float(coef[-2]),
        "c_rtt": float(coef[-1]),
        "rows": [f"{r['model']}/{r['profile']}" for r in rows],
        "residual_s": (t - pred).tolist(),
        "rms_residual_s": float(np.sqrt(np.mean((t - pred) ** 2))),
        "dof": len(rows) - a.shape[1],
    }


def chart(results: dict[str, Any], path: Path) -> None:
    """One panel per model, one bar per profile: the modelled time split into compute,
    bytes/bandwidth and rounds × RTT (stacked), the measured time as a black mark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in results["rows"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    colours = {
        "model: compute (loopback)": "#4c72b0",
        "model: bytes / bandwidth": "#dd8452",
        "model: rounds × RTT": "#55a868",
    }
    labels = list(colours)
    for ax, model in zip(axes[0], models, strict=True):
        rows = [r for r in results["rows"] if r["model"] == model]
        compute = results["models"][model]["apriori"]["compute_s"] if any(
            r["loopback"] for r in rows
        ) else min(r["seconds"] for r in rows)  # fmt: skip
        names = [r["profile"] for r in rows]
        parts: dict[str, list[float]] = {labels[0]: [compute] * len(rows)}
        parts[labels[1]] = [terms(r)[0] for r in rows]
        parts[labels[2]] = [terms(r)[1] for r in rows]
        bottom = np.zeros(len(rows))
        for label, values in parts.items():
            ax.bar(names, values, bottom=bottom, color=colours[label], label=label, width=0.6)
            bottom += np.array(values)
        ax.scatter(names, [r["seconds"] for r in rows], color="black", marker="_", s=600,
                   linewidths=2.5, zorder=3, label="measured (steady)")  # fmt: skip
        ax.set_title(model)
        ax.set_ylabel("secure inference time (s)")
        top = max(max(bottom), max(r["seconds"] for r in rows))
        ax.set_ylim(0, top * 1.15 if math.isfinite(top) and top > 0 else 1)
    axes[0][0].legend(fontsize=8, loc="upper left")
    meta = results["meta"]
    load = meta.get("loadavg_start", [float("nan")])[0]
    fig.suptitle(f"{meta.get('title', 'secure inference per network profile')} "
                 f"({meta.get('cpus')} cores, load {load:.1f})", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
