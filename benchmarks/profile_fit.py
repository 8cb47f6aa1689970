"""Where the time of one ``fit(method="nuts")`` goes, end to end, in a fresh process.

For each workload of ``nuts_cpu.py`` (4 chains x (1000 warmup + 1000 draws)), one
fresh process per repeat measures:

- ``import``: ``import numpyro_pgm`` (JAX, NumPyro and the package);
- ``setup``: argument checks and the abstract trace of the model (``fit``'s
  ``timings["setup"]``);
- ``trace + lower``: JAX tracing the sampler to a jaxpr and lowering it to XLA
  (``jax.monitoring`` events ``jaxpr_trace_duration`` and
  ``jaxpr_to_mlir_module_duration``, summed over every program of the fit);
- ``compile``: XLA compilation (``backend_compile_duration``);
- ``run``: the rest of the sampling phase, the compiled chains themselves;
- ``postprocess``: draws, pointwise log-likelihood and groups;
- ``checks``: the convergence checks at the end of ``fit`` (R-hat, ESS, ...).

Each repeat runs every workload twice: first with an empty persistent compilation
cache (a first run ever), then again with the cache that run filled (every later
run; ``compile`` is then the time to load the programs). Medians over repeats.
Run: ``python benchmarks/profile_fit.py [--repeats 3]``
(writes its table into ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import write_section  # noqa: E402

WORKLOADS = ("logreg", "schools", "mixture")
PHASES = (
    "import",
    "setup",
    "trace + lower",
    "compile",
    "run",
    "postprocess",
    "checks",
    "total",
)


def measure(workload: str) -> dict[str, float]:
    start = time.perf_counter()
    import numpyro_pgm as pgm

    imported = time.perf_counter()
    import jax

    events: list[tuple[float, str, float]] = []

    def listener(name: str, seconds: float, **kwargs) -> None:
        events.append((time.perf_counter(), name, seconds))

    jax.monitoring.register_event_duration_secs_listener(listener)
    from nuts_cpu import numpyro_model, workload_data

    data, model = workload_data(workload), numpyro_model(workload)
    before_fit = time.perf_counter()
    result = pgm.fit(
        jax.random.key(0), model, data=data, method="nuts", progress_bar=False
    )
    fit_seconds = time.perf_counter() - before_fit
    timings = result.timings
    # Only the events that started inside the sampling phase (the small programs
    # of the other phases are part of their phase's time). By start, not end: the
    # end of pmap's compile event is recorded after its first execution.
    sampling_start = before_fit + timings["setup"]
    sampling_end = sampling_start + timings["sampling"]

    def total(*names: str) -> float:
        return sum(
            seconds
            for end, name, seconds in events
            if sampling_start <= end - seconds <= sampling_end
            and any(name.endswith(n) for n in names)
        )

    trace = total("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration")
    compile_seconds = total("backend_compile_duration")
    return {
        "import": imported - start,
        "setup": timings["setup"],
        "trace + lower": trace,
        "compile": compile_seconds,
        "run": timings["sampling"] - trace - compile_seconds,
        "postprocess": timings["postprocessing"],
        "checks": fit_seconds - timings["total"],
        "total": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", metavar="WORKLOAD")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--results", type=Path, default=Path(__file__).with_name("RESULTS.md")
    )
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.single)))
        return
    cache = Path(tempfile.mkdtemp(prefix="profile-fit-cache-"))
    environment = {**os.environ, "NUMPYRO_PGM_CACHE_DIR": str(cache)}
    rows = [(w, start) for w in WORKLOADS for start in ("first run", "warm cache")]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {row: [] for row in rows}
    for _ in range(args.repeats):
        for workload, start in rows:
            if start == "first run":
                shutil.rmtree(cache, ignore_errors=True)
            output = subprocess.run(
                [sys.executable, __file__, "--single", workload],
                check=True,
                capture_output=True,
                text=True,
                env=environment,
            ).stdout
            runs[(workload, start)].append(json.loads(output.strip().splitlines()[-1]))
    shutil.rmtree(cache, ignore_errors=True)
    lines = [
        "| workload | cache | " + " | ".join(PHASES) + " |",
        "|---|---|" + "---|" * len(PHASES),
    ]
    for (workload, start), repeats in runs.items():
        cells = [
            f"{statistics.median(r[phase] for r in repeats):.2f}" for phase in PHASES
        ]
        lines.append(f"| {workload} | {start} | " + " | ".join(cells) + " |")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[0]
    body = (
        '`fit(method="nuts")`, 4 chains x (1000 warmup + 1000 draws), seconds, '
        f"medians of {args.repeats} fresh processes (load average {load} at the "
        "end), each workload with an empty compilation cache (first run) and then "
        "with the cache that run filled (warm cache: `compile` is loading the "
        "programs). `run` is the compiled sampler itself; the phases are described "
        "in `benchmarks/profile_fit.py`.\n\n" + "\n".join(lines)
    )
    write_section(args.results, "Where the time of a fit goes", body)
    print(body)


if __name__ == "__main__":
    main()
