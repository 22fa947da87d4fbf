"""Run one approach in its own process and measure it: wall time (Python start-up included), CPU time of the whole
process tree, and peak RSS and PSS of the whole tree (sampled every 30 ms, summed over the process and its children
— the worker processes of a parallel import count). ``/proc/pressure/cpu`` and the load average before and after say how
busy the machine was."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI), in %."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(line.split("avg10=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def machine_load() -> dict:
    return {"loadavg_1m": round(os.getloadavg()[0], 2), "cpu_pressure_avg10_pct": cpu_pressure()}


def _tree_rss_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` and its descendants, summed, in kB. RSS counts pages shared by forked workers in every
    process; PSS splits them between the sharers, so its sum is the memory the tree really holds."""
    total = pss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        total += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                try:
                    children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                except OSError:
                    continue
                stack.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total, pss


def run(cmd: list[str], *, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run ``cmd`` (a list) once; returns wall/cpu seconds, peak RSS (MB) of its process tree, its stdout."""
    full_env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1", **(env or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = machine_load()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=full_env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = _tree_rss_kb(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            done.wait(0.03)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak_rss_mb": round(peak[0] / 1024, 1),
            "peak_pss_mb": round(peak[1] / 1024, 1),
            "returncode": proc.returncode, "stdout": out, "stderr": err[-4000:] if err else "",
            "load_before": load_before, "load_after": machine_load()}


def summarize(runs: list[dict], leads: int) -> dict:
    """Medians (and spread) over repeated runs; leads/s from the median wall time."""
    ok = [r for r in runs if r["returncode"] == 0]
    if not ok:
        return {"error": (runs[-1]["stderr"] or runs[-1]["stdout"])[-2000:] if runs else "not run", "runs": len(runs)}
    walls = [r["wall_s"] for r in ok]
    wall = statistics.median(walls)
    return {
        "runs": len(ok),
        "wall_s": round(wall, 3),
        "wall_s_min": min(walls),
        "wall_s_max": max(walls),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in ok), 3),
        "leads_per_s": round(leads / wall, 1) if wall else None,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
        "peak_pss_mb": max(r["peak_pss_mb"] for r in ok),
        "cpu_pressure_pct": [r["load_before"]["cpu_pressure_avg10_pct"] for r in ok],
    }


def python() -> str:
    return sys.executable
