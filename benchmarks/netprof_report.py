"""The network-profile benchmark's printed tables: links, runs, the model fit, and
where the rounds come from per op kind (what each costs on the slowest link)."""

from __future__ import annotations

from typing import Any

import netprof_model

MB = 1e6
TOP_OPS = 10


def link_line(name: str, info: dict[str, Any]) -> str:
    m, s = info["measure"], info["set"]
    if s["rtt_ms"] is None:
        wanted = "loopback"
    else:
        rate = "unshaped" if s["rate_mbit"] is None else f"{s['rate_mbit']:g} Mbit/s"
        wanted = f"set {rate}, {s['rtt_ms']:g} ms"
    return (
        f"link {name} ({wanted}): RTT {m['rtt_ms_median']:.2f} ms median "
        f"(min {m['rtt_ms_min']:.2f}, p90 {m['rtt_ms_p90']:.2f}; forwarder's own "
        f"{info['base_rtt_ms']:.2f} ms subtracted), throughput {m['mbit_s_steady']:.0f} Mbit/s "
        f"steady ({m['mbit_s']:.0f} over the whole {m['bulk_seconds']:.1f} s transfer), "
        f"forwarder {m['forwarder_cores']:.2f} cores while transferring"
    )


def _table(head: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


def print_all(results: dict[str, Any]) -> None:
    meta = results["meta"]
    print(
        f"\ncommit {meta.get('commit') or 'unknown'}; {meta['cpus']} cores, load average "
        f"{meta['loadavg_start'][0]:.2f} at the start and "
        f"{meta['loadavg_end'][0]:.2f} at the end; {meta['count']} inference(s) per session "
        "(the first includes the session's setup). Link emulation: " + meta["forwarder"] + "."
    )
    print("\nLinks (measured before the runs):\n")
    rows = []
    for name, info in results["links"].items():
        m, s = info["measure"], info["set"]
        rate = "—" if s["rate_mbit"] is None else f"{s['rate_mbit']:g}"
        rtt = "—" if s["rtt_ms"] is None else f"{s['rtt_ms']:g}"
        rows.append([name, rate, rtt, f"{m['rtt_ms_median']:.2f} ({m['rtt_ms_p90']:.2f})",
                     f"{m['mbit_s_steady']:.0f} ({m['mbit_s']:.0f})",
                     f"{m['forwarder_cores']:.2f}"])  # fmt: skip
    _table(["profile", "set Mbit/s", "set RTT ms", "RTT ms median (p90)",
            "Mbit/s steady (whole transfer)", "forwarder cores"], rows)  # fmt: skip
    print("\nSecure inference (steady: inferences after the first; MB and rounds per inference):\n")
    rows = []
    for r in results["rows"]:
        fit = results["models"][r["model"]]
        i = fit["profiles"].index(r["profile"])
        apriori = fit.get("apriori")
        fitted = fit.get("fit")
        rows.append([
            r["model"], r["profile"], f"{r['first_seconds']:.2f}",
            f"{r['seconds']:.2f}" + (" (first)" if r["steady_is_first"] else ""),
            f"{r['bytes_up'] / MB:.1f} / {r['bytes_down'] / MB:.1f}", str(r["rounds"]),
            f"{r['camera_cpu_s']:.2f}", f"{r['edge_cpu_s']:.2f}",
            f"{r['forwarder_cpu_s_session']:.2f}",
            f"{apriori['predicted_s'][i]:.2f}" if apriori else "—",
            f"{fitted['predicted_s'][i]:.2f}" if fitted else "—",
        ])  # fmt: skip
    _table(["model", "profile", "first s", "steady s", "MB up / down", "rounds",
            "camera CPU-s", "edge CPU-s", "forwarder CPU-s (session)",
            "model a priori s", "model fitted s"], rows)  # fmt: skip
    print_fit(results)
    print_rounds(results)


def print_fit(results: dict[str, Any]) -> None:
    print("\nModel: time ≈ compute + bytes/bandwidth + rounds × RTT (bytes both ways, measured "
          "steady bandwidth and median RTT).")  # fmt: skip
    print("A priori: compute = the loopback time less its own rounds × RTT, coefficients 1. "
          "Fitted (non-negative least squares over the profiles): "
          "c0 + c_bw·bytes/bw + c_rtt·rounds·RTT.\n")  # fmt: skip
    rows = []
    for model, fit in results["models"].items():
        a, f = fit.get("apriori"), fit.get("fit")
        res_a = ", ".join(f"{v:+.2f}" for v in a["residual_s"]) if a else "—"
        if f:
            coef = f"{f['compute_s']:.2f} s, {f['c_bw']:.2f}, {f['c_rtt']:.2f}"
            res_f = ", ".join(f"{v:+.2f}" for v in f["residual_s"]) + f" (dof {f['dof']})"
        else:
            coef, res_f = "not fitted (needs ≥ 3 profiles)", "—"
        rows.append([model, ", ".join(fit["profiles"]), res_a, coef, res_f])
    _table(["model", "profiles", "a-priori residuals s", "fitted c0, c_bw, c_rtt",
            "fitted residuals s"], rows)  # fmt: skip
    j = results.get("joint_fit")
    if j is None:
        print("\nJoint fit (c_bw, c_rtt shared by the models): needs two models or more.")
        return
    compute = ", ".join(f"{m} {v:.2f} s" for m, v in j["compute_s"].items())
    residuals = ", ".join(f"{n} {v:+.2f}" for n, v in zip(j["rows"], j["residual_s"], strict=True))
    print(f"\nJoint fit (c_bw, c_rtt shared by the models; dof {j['dof']}): compute {compute}; "
          f"c_bw {j['c_bw']:.2f}, c_rtt {j['c_rtt']:.2f}; rms residual "
          f"{j['rms_residual_s']:.2f} s; residuals {residuals}")  # fmt: skip


def print_rounds(results: dict[str, Any]) -> None:
    """Per model and op kind: rounds, and what they cost at the slowest link's RTT."""
    links = results["links"]
    worst = max(links, key=lambda n: links[n]["measure"]["rtt_ms_median"])
    rtt = links[worst]["measure"]["rtt_ms_median"] / 1e3
    print(f"\nWhere the rounds come from (one steady inference; × RTT of {worst}, "
          f"{rtt * 1e3:.1f} ms):\n")  # fmt: skip
    rows = []
    for model in results["models"]:
        mine = [r for r in results["rows"] if r["model"] == model]
        if not mine:
            continue
        row = next((r for r in mine if r["profile"] == worst), mine[0])
        total = sum(k["rounds"] for k in row["by_kind"].values()) or 1
        transfer, _ = netprof_model.terms(row)
        kinds = sorted(row["by_kind"].items(), key=lambda kv: -kv[1]["rounds"])
        for kind, k in kinds:
            rows.append([model, kind, str(k["rounds"]), f"{100 * k['rounds'] / total:.0f}%",
                         f"{k['rounds'] * rtt:.2f}",
                         f"{k['bytes_up'] / MB:.1f} / {k['bytes_down'] / MB:.1f}"])  # fmt: skip
        rows.append([model, "(all)", str(total), "100%", f"{total * rtt:.2f}",
                     f"bytes/bw on {row['profile']}: {transfer:.2f} s"])  # fmt: skip
    _table(["model", "op kind", "rounds", "share", f"rounds × RTT s ({worst})", "MB up / down"],
           rows)  # fmt: skip
    print("\nThe ops with the most rounds (channel labels; all of them in the JSON's by_label):\n")
    rows = []
    for model in results["models"]:
        mine = [r for r in results["rows"] if r["model"] == model]
        if not mine:
            continue
        labels = sorted(mine[0]["by_label"].items(), key=lambda kv: -kv[1]["rounds"])[:TOP_OPS]
        for label, v in labels:
            traffic = f"{v['bytes_sent'] / MB:.2f} / {v['bytes_received'] / MB:.2f}"
            rows.append([model, label, str(v["rounds"]), traffic])
    _table(["model", "op", "rounds", "MB up / down"], rows)
