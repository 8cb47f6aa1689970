"""State-space models: marginalised vs latent-state NUTS, MLE time, filter scaling.

Three parts, written as sections of ``benchmarks/results/state_space.md``:

- ``nuts``: NUTS on the Nile local level model (case study ``state_space_nile``'s
  priors), with the level integrated out by the Kalman filter
  (``local_level_model``) and with the 100 levels as explicit non-centred latent
  variables (``latent_state_model``, as in the case study at target acceptance
  0.95, where 0.8 diverges tens of times, and started at the prior median, where
  NumPyro's default start can stall a chain in warm-up): 4 chains x 1,000 warm-up
  + 1,000 draws. The effective sample size of the two variances (the smaller of
  the two, bulk ESS of NumPyro), the run time of a first fit (with compilation)
  and of a second fit with another key (compiled programs reused), and ESS per
  second of the second.
- ``mle``: the Nile maximum-likelihood fit: our Kalman filter with scipy's L-BFGS on
  the log-variances (float64, jitted value and gradient; the case study's
  ``maximum_likelihood`` without its smoother and forecast) against statsmodels'
  ``UnobservedComponents(level="llevel").fit()``; first call and a repeat.
- ``filter``: seconds per call of the sequential (``lax.scan``) and the parallel
  (``lax.associative_scan``) Kalman filter on a local linear trend (2 states) as the
  series grows from 10^2 to 10^5 steps, float32, after compilation (median of
  repeated calls), on whatever device JAX uses.

Every variant runs in a fresh process, variants interleaved within each repeat,
medians over repeats (``harness.py``).

Run: ``python benchmarks/state_space.py --part nuts --repeats 1`` (and ``mle``,
``filter``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import markdown_table, medians, run_variants, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "state_space.md"
FILTER_SIZES = {"1e2": 100, "1e3": 1_000, "1e4": 10_000, "1e5": 100_000}
PARTS = {
    "nuts": ["marginal", "latent"],
    "mle": ["kalman", "statsmodels"],
    "filter": [
        f"{kind}-{size}" for kind in ("sequential", "parallel") for size in FILTER_SIZES
    ],
}


def _nile():
    import importlib.util

    path = ROOT / "case_studies" / "state_space_nile.py"
    spec = importlib.util.spec_from_file_location("state_space_nile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_nuts(variant: str) -> dict:
    import jax
    import numpy as np
    from numpyro.diagnostics import effective_sample_size

    nile = _nile()
    data = nile.load_data()
    settings = {"num_warmup": 1000, "num_samples": 1000, "num_chains": 4}
    method = "nuts" if variant == "marginal" else "latent-nuts"
    record = {}
    for run, seed in (("first", 0), ("second", 1)):
        start = time.perf_counter()
        result = nile._fit_posterior(method, jax.random.key(seed), data, settings)
        record[f"{run}_seconds"] = time.perf_counter() - start
    ess = min(
        float(effective_sample_size(np.asarray(result.samples[k], np.float64)))
        for k in ("level_scale", "observation_scale")
    )
    record["ess"] = ess
    record["ess_per_second"] = ess / record["second_seconds"]
    record["divergences"] = int(np.sum(result.sample_stats["diverging"]))
    return record


def measure_mle(variant: str) -> dict:
    from numpyro_pgm import datasets

    y = datasets.load("nile").y
    # Both libraries imported before the clock starts: "first" is the first fit.
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    record = {}
    for run in ("first", "second"):
        start = time.perf_counter()
        if variant == "kalman":
            fit = _kalman_mle(y)
        else:
            result = UnobservedComponents(y, level="llevel").fit(disp=False)
            fit = (float(result.params[1]), float(result.params[0]))
        record[f"{run}_seconds"] = time.perf_counter() - start
    record["level_variance"], record["observation_variance"] = fit
    return record


_OBJECTIVE = None


def _kalman_mle(y):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import scipy.optimize
    from numpyro_pgm.models import state_space as ss

    global _OBJECTIVE
    with jax.enable_x64(True):
        data = jnp.asarray(y, dtype=jnp.float64)
        if _OBJECTIVE is None:

            def negative_log_likelihood(log_variances, data):
                variances = jnp.exp(log_variances)
                model = ss.local_level(*variances, initial_variance=1e7)
                return -ss.kalman_filter(model, data).log_likelihood_terms[1:].sum()

            _OBJECTIVE = jax.jit(jax.value_and_grad(negative_log_likelihood))
        start = np.log([np.var(y) / 2, np.var(y) / 2])
        fit = scipy.optimize.minimize(
            _OBJECTIVE, start, args=(data,), jac=True, method="L-BFGS-B"
        )
        return tuple(float(v) for v in np.exp(fit.x))


def measure_filter(variant: str) -> dict:
    import jax
    import numpy as np
    from numpyro_pgm.models import state_space as ss

    kind, size = variant.split("-")
    num_timesteps = FILTER_SIZES[size]
    model = ss.local_linear_trend(0.1, 0.01, 1.0, initial_variance=10.0)
    y = ss.simulate(jax.random.key(0), model, num_timesteps=num_timesteps)["y"]
    run = ss.kalman_filter if kind == "sequential" else ss.parallel_kalman_filter
    start = time.perf_counter()
    jax.block_until_ready(run(model, y))
    compile_seconds = time.perf_counter() - start
    times = []
    budget = time.perf_counter() + 5.0
    while len(times) < 3 or (time.perf_counter() < budget and len(times) < 50):
        start = time.perf_counter()
        jax.block_until_ready(run(model, y))
        times.append(time.perf_counter() - start)
    return {
        "seconds": float(np.median(times)),
        "first_call_seconds": compile_seconds,
        "num_timesteps": num_timesteps,
    }


def _description(part: str) -> str:
    """Return the module docstring's paragraph about ``part``, on one line."""
    text = __doc__.split(f"- ``{part}``: ")[1]
    return " ".join(text.split("\n- ")[0].split("\n\n")[0].split())


MEASURE = {"nuts": measure_nuts, "mle": measure_mle, "filter": measure_filter}
COLUMNS = {
    "nuts": (
        [
            ("ess", "min ESS (4000 draws)", ".0f"),
            ("first_seconds", "first fit (s)", ".1f"),
            ("second_seconds", "second fit (s)", ".1f"),
            ("ess_per_second", "ESS/s (second fit)", ".1f"),
            ("divergences", "divergences", ".0f"),
        ],
        "marginal",
        ("second_seconds", "ess_per_second"),
    ),
    "mle": (
        [
            ("first_seconds", "first fit (s)", ".3f"),
            ("second_seconds", "repeat (s)", ".3f"),
            ("level_variance", "sigma^2_eta", ".1f"),
            ("observation_variance", "sigma^2_eps", ".0f"),
        ],
        "statsmodels",
        ("first_seconds", "second_seconds"),
    ),
    "filter": (
        [
            ("seconds", "seconds per call", ".2e"),
            ("first_call_seconds", "first call (s)", ".2f"),
        ],
        "sequential-1e2",
        ("seconds",),
    ),
}


def _load(averages: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in averages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--variant", help="run one variant here (internal)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(MEASURE[args.part](args.variant)))
        return
    load_before = os.getloadavg()
    runs = run_variants(
        Path(__file__),
        PARTS[args.part],
        repeats=args.repeats,
        extra_args=["--part", args.part],
    )
    columns, baseline, ratio_of = COLUMNS[args.part]
    table = markdown_table(medians(runs), columns, baseline=baseline, ratio_of=ratio_of)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{args.repeats} repeat(s), {time.strftime('%Y-%m-%d')}; load average "
        f"(1, 5, 15 min; the machine is shared) {_load(load_before)} before and "
        f"{_load(os.getloadavg())} after"
    )
    body = "\n\n".join([_description(args.part), f"Machine: {machine}.", table])
    write_section(RESULTS, args.part, body)
    print(table)


if __name__ == "__main__":
    main()
