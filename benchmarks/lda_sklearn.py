"""LDA: CAVI against scikit-learn's LatentDirichletAllocation (batch and online).

All three fit the same model (alpha = eta = 1/K, K = 12) on the same training
documents of the docstring corpus (``numpyro_pgm.datasets.load("docstrings")``,
85% of the documents, a fixed random split) and are scored by the same estimator:
held-out perplexity by document completion on the other 15% (half of each test
document's tokens fold in theta with the topics fixed, the other half is scored;
:func:`numpyro_pgm.models.lda_metrics.completion_perplexity`), plus the mean NPMI
coherence of the top ten words. Stopping rules are each method's own:

- ``cavi``: :func:`numpyro_pgm.models.lda_cavi.cavi` with its default
  coordinate schedule (never-decreasing ELBO), 5 local updates per sweep, best
  final ELBO of 4 random starts, float32, stop when the ELBO per token changes by
  less than 1e-5 (at most 300 sweeps); ``seconds`` includes JIT compilation (a
  fresh process, as a user meets it) and ``warm_seconds`` is a second, compiled
  run;
- ``cavi-vem``: ``schedule="variational-em"``, scikit-learn's batch VB step for
  step (Gamma(100, 1/100) starts, per-document E-step stop at mean change 1e-3,
  at most 100 updates), in float64 (``jax.enable_x64``, as sklearn runs on
  float64 counts), one start, same stopping rule; ``cavi-vem-float32``: the same
  in JAX's default float32;
- ``sklearn-batch``: ``learning_method="batch"``, at most 100 passes, stop when
  the training perplexity (checked every 5 passes) changes by less than 0.1;
- ``sklearn-online``: ``learning_method="online"`` (Hoffman et al. 2010),
  minibatches of 128 documents, at most 30 passes, same stopping rule.

Repeat r uses random seed r for every variant. Each variant runs in a fresh
process, variants interleaved within each repeat,
medians reported with ratios to CAVI. Results go to the section "CAVI against
scikit-learn" of ``benchmarks/results/lda.md``.

Run: ``python benchmarks/lda_sklearn.py --repeats 3``.
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

RESULTS = Path(__file__).resolve().parent / "results" / "lda.md"
VARIANTS = (
    "cavi",
    "cavi-vem",
    "cavi-vem-float32",
    "sklearn-batch",
    "sklearn-online",
)
CAVI_OPTIONS = {
    "cavi": {"num_local_iterations": 5, "num_restarts": 4},
    "cavi-vem": {"schedule": "variational-em"},
    "cavi-vem-float32": {"schedule": "variational-em"},
}
FLOAT64 = ("cavi-vem",)  # run under jax.enable_x64, like sklearn on float64 counts
NUM_TOPICS = 12
TEST_FRACTION = 0.15
SPLIT_SEED = 20260101
NOTES = (
    "Notes: `cavi-vem` is scikit-learn's batch VB step for step: from the same "
    "lambda and the same Gamma(100, 1/100) E-step starts, three of its sweeps "
    "equal sklearn's `_e_step`/`_em_step` to 4e-12 relative in float64 (test "
    "`test_variational_em_sweeps_are_sklearns_batch_em_steps`, with sklearn's "
    "series digamma, absolute error about 2e-9, swapped for scipy's). What "
    "changed from the previous version (not isolated one by one): the "
    "per-document E-step stop (mean change of gamma_d below 1e-3; before, all "
    "documents iterated until the slowest met a max-change rule), phi for the "
    "M-step from the final gamma, the Gamma(100, 1/100) starts, and float64. "
    "Perplexity: over seeds 0-2 (the table) `cavi-vem` has median 328.3 against "
    "sklearn's 331.1; over seeds 0-4 (same script, single runs) 331.3, 320.9, "
    "328.3, 334.5, 343.0 (median 331.3) against sklearn's 322.5, 337.7, 331.1, "
    "321.3, 324.7 (median 324.7); started from sklearn's own initial lambda "
    "(numpy RandomState(seed)), our float64 sweeps gave 321.9, 332.2, 330.9, "
    "327.6, 327.2 (median 327.6). So the optimum quality is sklearn's, up to "
    "start-to-start variation (about +-8 here); a systematic gap of a few units "
    "cannot be excluded with 5 seeds. float32 costs about 3% (`cavi-vem-float32`;"
    " seeds 0-4 median 341.1, final ELBO -2.94 to -2.96 nats per token against "
    "-2.90 to -2.93 in float64). The default coordinate schedule (`cavi`, "
    "never-decreasing ELBO, best of 4 starts, float32) stays about 4% worse than "
    "sklearn but is the fastest. Time: `cavi-vem` takes 13.2 s including JIT "
    "against sklearn's 7.3 s (1.8x) and 9.0 s compiled (1.2x), so for it the "
    "speed goal is not met: its E-step updates every document until the slowest "
    "has converged (frozen documents are recomputed and discarded, fixed shapes "
    "under jit), where sklearn's loop stops each document on its own; the "
    "coordinate `cavi` takes 0.8x sklearn's time including JIT (0.3x compiled), "
    "at 1.04x its perplexity. The case study keeps the coordinate schedule (its "
    "narrative is the monotone ELBO, and the variational-em fit is not faster "
    "than sklearn). Repeat r uses seed r for every variant; perplexities are "
    "deterministic per seed (identical in an earlier run of this script). Times "
    "include JIT compilation in the first column; the machine is shared (other "
    "workers' jobs ran; load average 0.8 at the start and 4.3 at the end)."
)


def _data():
    import jax
    import numpy as np
    from numpyro_pgm.models import lda_metrics

    from numpyro_pgm import datasets

    counts = datasets.load("docstrings").counts
    order = np.random.default_rng(SPLIT_SEED).permutation(counts.shape[0])
    num_test = int(round(TEST_FRACTION * counts.shape[0]))
    test, train = np.sort(order[:num_test]), np.sort(order[num_test:])
    observed, held_out = lda_metrics.split_documents(
        jax.random.key(SPLIT_SEED), counts[test]
    )
    return counts[train], observed, held_out


def measure(variant: str, seed: int = 0) -> dict:
    """Fit one variant in this process; return a JSON-ready record."""
    import jax
    import numpy as np
    from numpyro_pgm.models import lda_cavi, lda_metrics

    train, observed, held_out = _data()
    prior = 1.0 / NUM_TOPICS
    record = {}
    if variant in CAVI_OPTIONS:

        def run():
            return lda_cavi.cavi(
                jax.random.key(seed),
                train,
                num_topics=NUM_TOPICS,
                num_iterations=300,
                tol=1e-5,
                **CAVI_OPTIONS[variant],
            )

        with jax.enable_x64(variant in FLOAT64):
            start = time.perf_counter()
            fit = run()
            topic_word = np.asarray(fit.topic_word)
            record["seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            np.asarray(run().topic_word)
            record["warm_seconds"] = time.perf_counter() - start
        record["passes"] = fit.num_iterations
    else:
        from sklearn.decomposition import LatentDirichletAllocation

        method = variant.removeprefix("sklearn-")
        model = LatentDirichletAllocation(
            n_components=NUM_TOPICS,
            doc_topic_prior=prior,
            topic_word_prior=prior,
            learning_method=method,
            max_iter=100 if method == "batch" else 30,
            batch_size=128,
            evaluate_every=5,
            perp_tol=0.1,
            random_state=seed,
        )
        start = time.perf_counter()
        model.fit(train)
        record["seconds"] = time.perf_counter() - start
        record["warm_seconds"] = record["seconds"]
        record["passes"] = model.n_iter_
        topic_word = model.components_ / model.components_.sum(1, keepdims=True)
    record["perplexity"] = lda_metrics.completion_perplexity(
        topic_word, observed, held_out, topic_concentration=prior
    )
    record["npmi"] = float(lda_metrics.npmi_coherence(topic_word, train).mean())
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(measure(args.variant, args.seed)))
        return
    # Repeat r uses seed r for every variant: the fits' random starts differ
    # between repeats, so the medians cover start-to-start variation too.
    runs = {variant: [] for variant in VARIANTS}
    for repeat in range(args.repeats):
        one = run_variants(
            Path(__file__), VARIANTS, repeats=1, extra_args=["--seed", str(repeat)]
        )
        for variant in VARIANTS:
            runs[variant] += one[variant]
    rows = medians(runs)
    table = markdown_table(
        rows,
        [
            ("seconds", "fit time (s)", ".1f"),
            ("warm_seconds", "compiled fit time (s)", ".1f"),
            ("passes", "passes", ".0f"),
            ("perplexity", "held-out perplexity", ".1f"),
            ("npmi", "mean NPMI", ".3f"),
        ],
        baseline="cavi",
        ratio_of=("seconds", "warm_seconds", "perplexity"),
    )
    train, observed, _ = _data()
    load = os.getloadavg()[0]
    body = (
        f"Docstring corpus: {train.shape[0]} training documents x {train.shape[1]} "
        f"words ({int(train.sum())} tokens), {observed.shape[0]} test documents "
        f"split in halves; K = {NUM_TOPICS}, alpha = eta = 1/K. Medians of "
        f"{args.repeats} interleaved repeats, each variant in a fresh process; "
        f"CPU ({platform.machine()}, {os.cpu_count()} cores), load average "
        f"{load:.1f} at the end. Ratios are to CAVI; the sklearn rows have no "
        "compilation, so their two times are the same run. Passes: CAVI sweeps, "
        "sklearn epochs (n_iter_).\n\n"
        f"{table}\n\n{NOTES}\n\nReproduce: `python benchmarks/lda_sklearn.py "
        f"--repeats {args.repeats}`."
    )
    write_section(RESULTS, "CAVI against scikit-learn", body)
    print(body)


if __name__ == "__main__":
    main()
