"""Side-by-side timing and the machine description that every benchmark table carries.

Absolute times drift on a shared machine, so candidates are timed in interleaved rounds (A, B,
B, A, ...) and compared by their medians: background load then hits both alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each candidate over ``rounds`` rounds, the order flipped every round."""
    names = list(candidates)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            elapsed = time.perf_counter() - start
            if index >= warmup:
                times[name].append(elapsed)
    return times


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the numbers were measured on: CPU, cores, torch threads, versions."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def machine_line(info: dict) -> str:
    load = info.get("load_average")
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} with {info['torch_threads']} threads, "
        f"Python {info['python']}" + (f"; load average at start {load[0]}" if load else "")
    )


def bench_main(
    doc: str | None,
    run: Callable[..., dict],
    markdown: Callable[[dict], str],
    quick_help: str,
    json_name: str | None = None,
) -> None:
    """The command line every ``python -m benchmarks.bench_x [--quick]`` shares.

    With ``json_name`` the result is also written to ``benchmarks/results/<json_name>.json``
    (for parts that ``python -m benchmarks`` does not run, such as the GPU check).
    """
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    result = run(quick=parser.parse_args().quick)
    info = result.get("machine") or machine()
    print(machine_line(info))
    print()
    print(markdown(result))
    if json_name:
        path = Path(__file__).resolve().parent / "results" / f"{json_name}.json"
        path.write_text(json.dumps({"machine": info, **result}, indent=2, default=str))
        print(f"\nwrote {path}")
