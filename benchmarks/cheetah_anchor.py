"""The anchor to beat: OpenCheetah (the paper's Cheetah C++ engine), run on this machine.

OpenCheetah is built once under /tmp by hand, as ../shared/anchors/opencheetah/README.md
says (nothing of it is kept in this repository). This module only runs that runner
(``run.sh NET cheetah THREADS PORT``, both parties over loopback under ``nice -n 19``)
and reads the figures the Cheetah binaries print, so that ``benchmarks/table3.py`` can
put them beside ours from the same run and report ratios.

    python benchmarks/cheetah_anchor.py sqnet --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANCHOR_DIR = ROOT.parent / "shared" / "anchors" / "opencheetah"
# our model names -> the anchor's network names
NETS = {"squeezenet": "sqnet", "resnet50": "resnet50"}
MIB = 2**20


@dataclass(frozen=True, slots=True, kw_only=True)
class CheetahRun:
    net: str
    threads: int
    seconds: float  # the program's own timer ("Total time taken"), after one-time setup
    bytes_total: int  # both directions
    bytes_server_sent: int
    bytes_client_sent: int
    rounds: int
    cpu_seconds_server: float
    cpu_seconds_client: float
    peak_rss_mb_server: float
    peak_rss_mb_client: float
    results_dir: str


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"OpenCheetah output lacks {pattern!r}")
    return match.group(1)


def _cpu(time_v: str) -> float:
    return float(_find(r"User time \(seconds\): ([\d.]+)", time_v)) + float(
        _find(r"System time \(seconds\): ([\d.]+)", time_v)
    )


def _rss_mb(time_v: str) -> float:
    return int(_find(r"Maximum resident set size \(kbytes\): (\d+)", time_v)) / 1024


def parse_results(results_dir: Path, net: str, threads: int) -> CheetahRun:
    """Read one run's server/client logs and /usr/bin/time -v reports."""
    server = (results_dir / "server.log").read_text(errors="replace")
    client = (results_dir / "client.log").read_text(errors="replace")
    server_time = (results_dir / "server.time").read_text(errors="replace")
    client_time = (results_dir / "client.time").read_text(errors="replace")
    return CheetahRun(
        net=net,
        threads=threads,
        seconds=int(_find(r"Total time taken = (\d+) milliseconds", server)) / 1000,
        bytes_total=round(
            float(_find(r"Total comm \(sent\+received\) = ([\d.]+) MiB", server)) * MIB
        ),
        bytes_server_sent=round(float(_find(r"Total data sent = ([\d.]+) MiB", server)) * MIB),
        bytes_client_sent=round(float(_find(r"Total data sent = ([\d.]+) MiB", client)) * MIB),
        rounds=int(_find(r"Number of rounds = (\d+)", server)),
        cpu_seconds_server=_cpu(server_time),
        cpu_seconds_client=_cpu(client_time),
        peak_rss_mb_server=_rss_mb(server_time),
        peak_rss_mb_client=_rss_mb(client_time),
        results_dir=str(results_dir),
    )


def available(anchor_dir: Path = DEFAULT_ANCHOR_DIR) -> str | None:
    """None when the anchor can run here, else why not (one line)."""
    oc_root = Path(os.environ.get("OC_ROOT", "/tmp/oc"))
    if not (anchor_dir / "run.sh").is_file():
        return f"no anchor runner at {anchor_dir}"
    if not (oc_root / "OpenCheetah" / "build" / "bin" / "sqnet-cheetah").is_file():
        return f"OpenCheetah is not built under {oc_root} (see {anchor_dir}/README.md)"
    return None


def run(
    net: str,
    *,
    threads: int = 1,
    port: int = 31000,
    anchor_dir: Path = DEFAULT_ANCHOR_DIR,
    timeout_s: float = 3600.0,
) -> CheetahRun:
    """Run one OpenCheetah benchmark through the anchor's runner and parse it.

    The runner starts both parties in the background; a party that dies at exit can
    leave the other waiting for ever (OpenCheetah's client crashed there with fewer than
    4 threads until its RCOT-count loop was bounded, and the server then spun in its
    last layer), so after ``timeout_s`` the runner's whole process group is killed."""
    oc_root = Path(os.environ.get("OC_ROOT", "/tmp/oc"))
    before = set((oc_root / "results").glob(f"{net}-cheetah-nt{threads}-*"))
    runner = subprocess.Popen(
        ["bash", str(anchor_dir / "run.sh"), net, "cheetah", str(threads), str(port)],
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the parties and the monitor
    )
    try:
        code = runner.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
        raise RuntimeError(
            f"OpenCheetah {net} did not finish in {timeout_s:.0f} s (killed; a party that "
            "crashes at exit leaves the other waiting: see the anchor's README)"
        ) from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)  # nothing of it outlives the run
    if code != 0:
        raise RuntimeError(f"the anchor runner failed for {net} (exit {code})")
    new = sorted(set((oc_root / "results").glob(f"{net}-cheetah-nt{threads}-*")) - before)
    if not new:
        raise RuntimeError(f"the anchor runner wrote no results for {net}")
    return parse_results(new[-1], net, threads)


def main() -> None:
    parser = argparse.ArgumentParser(description="run the OpenCheetah anchor once")
    parser.add_argument("net", choices=sorted(NETS.values()))
    parser.add_argument("--threads", type=int, default=1, help="threads per party (default 1)")
    parser.add_argument("--anchor-dir", type=Path, default=DEFAULT_ANCHOR_DIR)
    args = parser.parse_args()
    why = available(args.anchor_dir)
    if why is not None:
        raise SystemExit(f"cheetah_anchor: {why}")
    print(json.dumps(asdict(run(args.net, threads=args.threads, anchor_dir=args.anchor_dir))))


if __name__ == "__main__":
    main()
