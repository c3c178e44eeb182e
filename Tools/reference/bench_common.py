"""What the peers' benchmark scripts (bench_torch.py, bench_openvino.py) share; no third-party imports,
so each script's own venv can load it."""

from __future__ import annotations

import resource
import sys
import time

PROMPT = "a burning cyborg skiing down a blue wireframe mountain at top speed, octane render, 8k"


def best_of(fn, repeats: int):
    """One untimed warm-up call, then the fastest of `repeats` timed calls.
    Returns (seconds, the warm-up call's result)."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def peak_rss_bytes() -> int:
    """This process's own high-water mark, VmHWM; getrusage's ru_maxrss (KiB on Linux, bytes on
    macOS) only where /proc is missing: it would report a parent's larger peak when started by
    pareidolia-bench (Linux carries it across fork and exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024
