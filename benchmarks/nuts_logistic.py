"""fit(method="nuts") against hand-written NumPyro MCMC, and Laplace against NUTS.

Workload: Bayesian logistic regression on scikit-learn's Wisconsin breast-cancer data
(569 x 30, standardised), w ~ N(0, 1), intercept ~ N(0, 5), 4 chains x (1000 warmup +
1000 draws). Each variant runs in a fresh process; the time includes compilation.

Run: ``python benchmarks/nuts_logistic.py --repeats 3`` (writes benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

VARIANTS = ("numpyro-default", "numpyro-4-devices", "pgm-nuts", "pgm-laplace")


def _data():
    import numpy as np

    from numpyro_pgm import datasets

    dataset = datasets.load("breast_cancer")
    X = (dataset.X - dataset.X.mean(0)) / dataset.X.std(0)
    return np.asarray(X, dtype=np.float32), np.asarray(dataset.y, dtype=np.int32)


def logistic(X, y=None):
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 5.0))
    with numpyro.plate("point", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ w + b), obs=y)


def _min_ess(samples) -> float:
    import numpy as np
    from arviz_stats.base import array_stats

    values = []
    for array in samples.values():
        array = np.asarray(array, dtype=np.float64)
        flat = array.reshape(array.shape[0], array.shape[1], -1)
        values.append(np.min(array_stats.ess(np.moveaxis(flat, -1, 0), 1, 2)))
    return float(min(values))


def run_one(variant: str) -> dict:
    if variant == "numpyro-default":
        # NumPyro as a user gets it: one CPU device (numpyro_pgm, imported for the
        # data, must not add virtual devices here).
        os.environ["NUMPYRO_PGM_HOST_DEVICES"] = "0"
    elif variant == "numpyro-4-devices":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    start = time.perf_counter()
    import jax

    X, y = _data()
    key = jax.random.key(0)
    if variant.startswith("numpyro"):
        from numpyro.infer import MCMC, NUTS

        mcmc = MCMC(
            NUTS(logistic),
            num_warmup=1000,
            num_samples=1000,
            num_chains=4,
            progress_bar=False,
        )
        mcmc.run(key, X=X, y=y)
        samples = mcmc.get_samples(group_by_chain=True)
        jax.block_until_ready(samples)
    elif variant == "pgm-nuts":
        import numpyro_pgm as pgm

        result = pgm.fit(
            key, logistic, data={"X": X, "y": y}, method="nuts", progress_bar=False
        )
        samples = result.samples
    else:
        import numpyro_pgm as pgm

        result = pgm.fit(
            key, logistic, data={"X": X, "y": y}, method="laplace", checks=False
        )
        samples = None
    seconds = time.perf_counter() - start
    record = {"seconds": seconds}
    if samples is not None:
        ess = _min_ess({k: v for k, v in samples.items() if k in ("w", "b")})
        record.update(min_ess=ess, min_ess_per_second=ess / seconds)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--results", type=Path, default=Path(__file__).with_name("RESULTS.md")
    )
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_one(args.variant)))
        return

    from harness import markdown_table, medians, run_variants, write_section

    runs = run_variants(Path(__file__), VARIANTS, repeats=args.repeats)
    rows = medians(runs)
    mcmc_rows = {k: v for k, v in rows.items() if "min_ess" in v}
    table = markdown_table(
        mcmc_rows,
        [
            ("seconds", "total s", ".1f"),
            ("min_ess", "min ESS", ".0f"),
            ("min_ess_per_second", "min ESS/s", ".0f"),
        ],
        baseline="numpyro-default",
        ratio_of=("seconds", "min_ess_per_second"),
    )
    laplace_ratio = rows["pgm-laplace"]["seconds"] / rows["pgm-nuts"]["seconds"]
    body = (
        f"{__doc__.strip().splitlines()[0]}\n\n"
        f"Medians of {args.repeats} interleaved repeats, fresh process each, times "
        "including JAX compilation, on this project's 2-core CPU machine.\n\n"
        f"{table}\n\n"
        f'Laplace (`fit(method="laplace")`, 1000 draws): '
        f"{rows['pgm-laplace']['seconds']:.1f} s, {laplace_ratio:.2f} x the time of "
        '`fit(method="nuts")`.\n'
    )
    write_section(args.results, "NUTS on breast-cancer logistic regression", body)
    print(body)


if __name__ == "__main__":
    main()
