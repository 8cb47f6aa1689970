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

Medians over repeats. Run: ``python benchmarks/profile_fit.py [--repeats 3]``
(writes its table into ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
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
    # Only the events that ended inside the sampling phase (the small programs
    # of the other phases are part of their phase's time).
    sampling_start = before_fit + timings["setup"]
    sampling_end = sampling_start + timings["sampling"]

    def total(*names: str) -> float:
        return sum(
            seconds
            for end, name, seconds in events
            if sampling_start <= end <= sampling_end
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
    args = parser.parse_args()
    if args.single:
        print(json.dumps(measure(args.single)))
        return
    runs: dict[str, list[dict[str, float]]] = {w: [] for w in WORKLOADS}
    for _ in range(args.repeats):
        for workload in WORKLOADS:
            output = subprocess.run(
                [sys.executable, __file__, "--single", workload],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[workload].append(json.loads(output.strip().splitlines()[-1]))
    lines = [
        "| workload | " + " | ".join(PHASES) + " |",
        "|---|" + "---|" * len(PHASES),
    ]
    for workload, repeats in runs.items():
        cells = [
            f"{statistics.median(r[phase] for r in repeats):.2f}" for phase in PHASES
        ]
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[0]
    body = (
        '`fit(method="nuts")`, 4 chains x (1000 warmup + 1000 draws), seconds, '
        f"medians of {args.repeats} fresh processes (load average {load} at the "
        "end). `run` is the compiled sampler itself; the phases are described in "
        "`benchmarks/profile_fit.py`.\n\n" + "\n".join(lines)
    )
    write_section(
        Path(__file__).with_name("RESULTS.md"), "Where the time of a fit goes", body
    )
    print(body)


if __name__ == "__main__":
    main()
