"""LDA: CAVI against scikit-learn's LatentDirichletAllocation (batch and online).

All three fit the same model (alpha = eta = 1/K, K = 12) on the same training
documents of the docstring corpus (``numpyro_pgm.datasets.load("docstrings")``,
85% of the documents, a fixed random split) and are scored by the same estimator:
held-out perplexity by document completion on the other 15% (half of each test
document's tokens fold in theta with the topics fixed, the other half is scored;
:func:`numpyro_pgm.models.lda_metrics.completion_perplexity`), plus the mean NPMI
coherence of the top ten words. Stopping rules are each method's own:

- ``cavi``: :func:`numpyro_pgm.models.lda_cavi.cavi`, coordinate schedule, 5
  local updates per sweep, best final ELBO of 4 random starts, stop when the ELBO
  per token changes by less than 1e-5 (at most 300 sweeps); ``seconds`` includes
  JIT compilation (a fresh process, as a user meets it) and ``warm_seconds`` is a
  second, compiled run; ``cavi-1-start``: the same with one start;
  ``cavi-vem``: ``schedule="variational-em"`` (Blei et al. 2003; the schedule of
  scikit-learn's batch VB);
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
VARIANTS = ("cavi", "cavi-1-start", "cavi-vem", "sklearn-batch", "sklearn-online")
CAVI_OPTIONS = {
    "cavi": {"num_local_iterations": 5, "num_restarts": 4},
    "cavi-1-start": {"num_local_iterations": 5},
    "cavi-vem": {"schedule": "variational-em"},
}
NUM_TOPICS = 12
TEST_FRACTION = 0.15
SPLIT_SEED = 20260101
NOTES = (
    "Notes: the perplexity goal is not met: scikit-learn's batch VB still reaches "
    "a better optimum (median held-out perplexity about 0.96 of CAVI's over seeds "
    "0-2; seed 0 alone: 322.5). It is an optimisation gap, not a scoring one: both "
    "are scored by the same fold-in and estimator, with the same split, K, alpha, "
    "eta; sklearn's topics, put through one of our sweeps, have an ELBO of -2.90 "
    "nats per token against -2.94 to -3.04 for our single starts. Measured "
    "remedies (8 seeds unless noted): 5 local updates per sweep beat 1 (median "
    "340 against 364); float64 changes nothing; the best-ELBO of 4 starts "
    "(`num_restarts=4`, the `cavi` row) helps little (ELBO and perplexity go "
    "together across starts of one schedule, but the best of 4 was 337-344 on "
    "5 seeds); `schedule='variational-em'` (sklearn's schedule: gamma restarted "
    "and iterated to convergence every pass) reaches higher ELBOs (-2.91 to "
    "-2.95) but not a lower perplexity (median 338 on 5 seeds), even with "
    "sklearn's random gamma restart; sklearn itself varies from 321 to 338 over "
    "seeds 0-4. The speed goal is met: the local step now runs in exponential "
    "form (one exp per document and topic, about 7x faster than the softmax over "
    "entries). Repeat r uses seed r for every variant; `cavi-1-start` shares the "
    "first start of `cavi` (same key), so it matched it on seeds 0 and 2. Times "
    "include JIT compilation in the first column; the machine was shared (other "
    "jobs and our own tests ran during repeats 1-2)."
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
