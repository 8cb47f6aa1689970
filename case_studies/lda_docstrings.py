r"""Case study: topics in the docstrings of NumPy and SciPy.

Every public function and class of NumPy and SciPy documents itself; stripped of
examples, references, code and stop words, the docstrings form a corpus of about
2,000 short documents (median about 50 words) over a vocabulary of about 2,200
words (``numpyro_pgm.datasets.load("docstrings")``, built from the installed
packages, no download). Each document carries a weak label, the module family it
comes from (``linalg``, ``stats``, ``signal``, ``sparse``, ...), which the topic
model never sees.

We fit latent Dirichlet allocation (seed ``003_02afaf35b30b64a9.txt``, §3.5;
:mod:`numpyro_pgm.models.lda`),

.. math::

    \beta_k \sim \mathrm{Dirichlet}(\eta), \quad
    \theta_d \sim \mathrm{Dirichlet}(\alpha), \quad
    c_d \mid \theta_d, \beta \sim \mathrm{Multinomial}(N_d, \theta_d^\top\beta),

with :math:`\alpha = \eta = 1/K`, by three variational methods, the first with
two schedules:

* ``cavi``: the seed's coordinate ascent updates for :math:`\phi, \gamma,
  \lambda` (:func:`numpyro_pgm.models.lda_cavi.cavi`), run over the non-zero
  entries of the count matrix, 5 local updates per sweep, the best (highest
  final ELBO) of ``--num-restarts`` random starts (4; 1 in the quick run);
* ``cavi-vem``: the same updates scheduled as variational EM
  (``schedule="variational-em"``), scikit-learn's batch
  ``LatentDirichletAllocation`` step for step: every sweep restarts
  :math:`\gamma` and updates each document until it settles, then
  :math:`\lambda`; one start, in float64 like scikit-learn;
* ``svi-mean-field``: ``pgm.fit(method="svi")`` with the seed's mean-field family
  :math:`q(\beta) q(\theta)` on the collapsed model (the assignments summed out),
  full batch, Dirichlet reparameterisation gradients;
* ``svi-amortised``: ``pgm.fit(method="svi")`` with an encoder network from a
  document's counts to :math:`q(\theta_d)` (ProdLDA-style), trained on
  minibatches of documents (``subsample_size``).

A random 15% of the documents is held out. For each method the script reports the
held-out perplexity by document completion (half of each test document's tokens
estimate :math:`\theta_d` with the method's topics fixed, the other half is
scored), the NPMI coherence of each topic's top ten words (co-occurrence in the
training documents), the normalised mutual information between each training
document's most probable topic and its module family, the top words of every
topic (aligned across methods with the Hungarian algorithm), and the run time
(which includes JIT compilation). What to look for: the methods find largely
the same topics (statistics, linear algebra, random generation, filters and
signals, sparse matrices, ndimage boundary modes, optimisation, ...), CAVI
converges in a few dozen sweeps with a monotone ELBO, variational EM trades that
guarantee (its restarts can lower the ELBO a little from one sweep to the next)
for a few percent lower perplexity, scikit-learn's (``benchmarks/lda_sklearn.py``
compares the two and scikit-learn on time too), and the amortised guide pays a
small price in ELBO for handling any new document in one forward pass.

Run ``python case_studies/lda_docstrings.py --quick`` for a smoke run (a subset
of the corpus and few steps) or without ``--quick`` for the full comparison. The
figures and ``summary.md`` go to ``--out-dir``.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §3.5.
.. [2] D. M. Blei, A. Y. Ng and M. I. Jordan, "Latent Dirichlet allocation",
   JMLR 3 (2003).
.. [3] A. Srivastava and C. Sutton, "Autoencoding variational inference for topic
   models", ICLR (2017).
.. [4] H. M. Wallach, I. Murray, R. Salakhutdinov and D. Mimno, "Evaluation
   methods for topic models", ICML (2009).
.. [5] J. H. Lau, D. Newman and T. Baldwin, "Machine reading tea leaves", EACL
   (2014).
"""

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpyro_pgm.case_studies._outputs import (  # noqa: E402
    diagnostics_section,
    fit_and_report,
    save_figures,
)
from numpyro_pgm.models import lda, lda_cavi, lda_guides, lda_metrics  # noqa: E402

import numpyro_pgm as pgm  # noqa: E402
from numpyro_pgm import datasets  # noqa: E402

METHODS = ("cavi", "cavi-vem", "svi-mean-field", "svi-amortised")
COLORS = {
    "cavi": "black",
    "cavi-vem": "tab:gray",
    "svi-mean-field": "tab:red",
    "svi-amortised": "tab:blue",
}
CAVI_SCHEDULES = {"cavi": "coordinate", "cavi-vem": "variational-em"}
TEST_FRACTION = 0.15
SPLIT_SEED = 20260101
NUM_TOP_WORDS = 10
QUICK = {
    "num_documents": 400,
    "vocab_size": 200,
    "num_topics": 6,
    "num_steps": 150,
    "num_iterations": 40,
    "num_samples": 40,  # pgm.report's tail diagnostics need >= 25 draws
    "batch_size": 64,
    "num_restarts": 1,
}


# ----------------------------------------------------------------------------- data


def load_data(
    split_seed: int = SPLIT_SEED,
    num_documents: int | None = None,
    vocab_size: int | None = None,
) -> dict[str, Any]:
    """Load the docstring corpus, optionally shrink it, and split it.

    ``num_documents`` keeps a random subset of documents and ``vocab_size`` the
    most frequent words (documents left with fewer than 4 tokens are dropped).
    Test documents are split in halves for document completion.
    """
    dataset = datasets.load("docstrings")
    counts, labels = dataset.counts, dataset.y
    vocabulary = np.asarray(dataset.vocabulary)
    rng = np.random.default_rng(split_seed)
    if num_documents is not None and num_documents < counts.shape[0]:
        keep = np.sort(rng.choice(counts.shape[0], num_documents, replace=False))
        counts, labels = counts[keep], labels[keep]
    if vocab_size is not None and vocab_size < counts.shape[1]:
        words = np.sort(np.argsort(-counts.sum(0), kind="stable")[:vocab_size])
        counts, vocabulary = counts[:, words], vocabulary[words]
    long_enough = counts.sum(1) >= 4
    counts, labels = counts[long_enough], labels[long_enough]
    order = rng.permutation(counts.shape[0])
    num_test = int(round(TEST_FRACTION * counts.shape[0]))
    test, train = np.sort(order[:num_test]), np.sort(order[num_test:])
    observed, held_out = lda_metrics.split_documents(
        jax.random.key(split_seed), counts[test]
    )
    return {
        "counts": counts[train],
        "labels": labels[train],
        "test_observed": observed,
        "test_held_out": held_out,
        "vocabulary": vocabulary,
        "target_names": tuple(dataset.target_names),
        "dataset": dataset,
    }


# ------------------------------------------------------------------------------ fit


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = {
        "num_documents": None,
        "vocab_size": None,
        "num_topics": args.num_topics,
        "num_steps": args.num_steps,
        "num_iterations": args.num_iterations,
        "num_samples": args.num_samples,
        "batch_size": args.batch_size,
        "num_restarts": args.num_restarts,
    }
    if args.quick:
        settings.update(QUICK)
    return settings


def _fit_one(method: str, rng_key: jax.Array, counts: np.ndarray, settings) -> dict:
    """Fit one method; return its topics, document proportions and ELBO trace."""
    num_topics = settings["num_topics"]
    start = time.perf_counter()
    if method in CAVI_SCHEDULES:
        coordinate = CAVI_SCHEDULES[method] == "coordinate"
        num_restarts = settings["num_restarts"] if coordinate else 1
        # Variational EM in float64, as scikit-learn runs it.
        with jax.enable_x64(not coordinate):
            fit = lda_cavi.cavi(
                rng_key,
                counts,
                num_topics=num_topics,
                num_iterations=settings["num_iterations"],
                num_local_iterations=5 if coordinate else None,
                tol=1e-6,
                schedule=CAVI_SCHEDULES[method],
                num_restarts=num_restarts,
            )
            topic_word, doc_topic = (
                np.asarray(fit.topic_word),
                np.asarray(fit.doc_topic),
            )
        return {
            "topic_word": topic_word,
            "doc_topic": doc_topic,
            "elbo": np.asarray(fit.elbo),
            "steps": np.arange(1, fit.num_iterations + 1),
            "final_elbo": float(fit.elbo[-1]),
            "time": time.perf_counter() - start,
            "detail": f"{fit.num_iterations} sweeps (best of {num_restarts} "
            f"start{'s' if num_restarts > 1 else ''}), converged: {fit.converged}",
        }
    data = {"counts": counts, "num_topics": num_topics}
    if method == "svi-amortised":
        guide, learning_rate = lda_guides.amortised_guide, 0.01
        data["subsample_size"] = min(settings["batch_size"], counts.shape[0])
    else:
        guide, learning_rate = lda_guides.mean_field_guide, 0.02
    result = pgm.fit(
        rng_key,
        lda.model,
        data=data,
        method="svi",
        guide=guide,
        num_steps=settings["num_steps"],
        num_samples=settings["num_samples"],
        learning_rate=learning_rate,
        stop_on_plateau=False,
        progress_bar=False,
        checks=False,
        dims=lda.DIMS,
    )
    params = result.groups["learned_params"]
    lam = params["beta_concentration"][0]
    if method == "svi-amortised":
        gamma = lda_guides.amortised_concentration(params, counts)
    else:
        gamma = params["theta_concentration"][0]
    elbo = np.asarray(result.sample_stats["elbo"][0])
    tail = min(100, elbo.size)
    return {
        "topic_word": lam / lam.sum(1, keepdims=True),
        "doc_topic": gamma / gamma.sum(1, keepdims=True),
        "elbo": elbo,
        "steps": np.arange(1, elbo.size + 1),
        "final_elbo": float(elbo[-tail:].mean()),
        "time": time.perf_counter() - start,
        "detail": f"{elbo.size} steps of Adam (lr {learning_rate})"
        + (
            f", minibatches of {data['subsample_size']} documents"
            if "subsample_size" in data
            else ", full batch"
        ),
        "result": result,
    }


def fit(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings(args)
    data = load_data(
        num_documents=settings["num_documents"], vocab_size=settings["vocab_size"]
    )
    keys = jax.random.split(jax.random.key(args.seed), len(METHODS))
    fits = {
        method: _fit_one(method, keys[METHODS.index(method)], data["counts"], settings)
        for method in args.method
    }
    return {"data": data, "fits": fits, "settings": settings}


# --------------------------------------------------------------------------- report


def _metrics(fit: Mapping[str, Any], data: Mapping[str, Any], num_topics: int):
    perplexity = lda_metrics.completion_perplexity(
        fit["topic_word"],
        data["test_observed"],
        data["test_held_out"],
        topic_concentration=1.0 / num_topics,
    )
    coherence = lda_metrics.npmi_coherence(
        fit["topic_word"], data["counts"], num_words=NUM_TOP_WORDS
    )
    nmi = lda_metrics.normalized_mutual_information(
        data["labels"], fit["doc_topic"].argmax(1)
    )
    return {
        "perplexity": perplexity,
        "coherence": coherence,
        "nmi": nmi,
        "time": fit["time"],
        "elbo_per_token": fit["final_elbo"] / float(data["counts"].sum()),
    }


def _aligned(fits: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Topic order of each method matched to the first method's topics."""
    reference = next(iter(fits.values()))["topic_word"]
    return {
        method: lda_metrics.match_topics(fit["topic_word"], reference)
        for method, fit in fits.items()
    }


def plot_elbo(fits, total_tokens: int):
    figure, axes = plt.subplots(1, len(fits), figsize=(4 * len(fits), 3.2))
    axes = np.atleast_1d(axes)
    for ax, (method, fit) in zip(axes, fits.items(), strict=True):
        per_token = fit["elbo"] / total_tokens
        if method in CAVI_SCHEDULES:
            ax.plot(fit["steps"], per_token, color=COLORS[method])
        else:
            window = max(1, min(50, per_token.size // 10))
            smooth = np.convolve(per_token, np.ones(window) / window, mode="valid")
            ax.plot(fit["steps"], per_token, color=COLORS[method], alpha=0.25, lw=0.5)
            ax.plot(fit["steps"][window - 1 :], smooth, color=COLORS[method])
        ax.set_title(method)
        ax.set_xlabel("sweep" if method in CAVI_SCHEDULES else "SVI step")
        ax.set_ylabel("ELBO per token")
        low = np.quantile(per_token, 0.05)
        ax.set_ylim(low, None)
    figure.tight_layout()
    return figure


def plot_topics_by_module(fits, order, labels, target_names):
    present = np.unique(labels)
    figure, axes = plt.subplots(
        1, len(fits), figsize=(4.2 * len(fits), 0.3 * present.size + 1.8)
    )
    axes = np.atleast_1d(axes)
    for ax, (method, fit) in zip(axes, fits.items(), strict=True):
        proportions = fit["doc_topic"][:, order[method]]
        table = np.stack([proportions[labels == c].mean(0) for c in present])
        ax.imshow(table, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_yticks(range(present.size), [target_names[c] for c in present])
        ax.set_xticks(range(table.shape[1]))
        ax.set_xlabel("topic")
        ax.set_title(f"{method}: mean topic proportion")
    figure.tight_layout()
    return figure


def plot_coherence(metrics, order):
    figure, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(metrics)
    for i, (method, values) in enumerate(metrics.items()):
        scores = values["coherence"][order[method]]
        ax.bar(
            np.arange(scores.size) + i * width,
            scores,
            width,
            label=method,
            color=COLORS[method],
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("topic (aligned across methods)")
    ax.set_ylabel(f"NPMI of top {NUM_TOP_WORDS} words")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _summary(results, metrics, order, figures) -> str:
    data, fits, settings = results["data"], results["fits"], results["settings"]
    counts = data["counts"]
    lines = [
        "# LDA on the NumPy/SciPy docstring corpus",
        "",
        f"Training corpus: {counts.shape[0]} documents, {counts.shape[1]} words, "
        f"{int(counts.sum())} tokens; {data['test_observed'].shape[0]} held-out "
        f"documents (split in halves for document completion). K = "
        f"{settings['num_topics']} topics, alpha = eta = 1/K.",
        "",
        "Data: docstrings of the public API of the installed NumPy and SciPy "
        "(BSD-3-Clause), built at load time by `numpyro_pgm.datasets.load"
        '("docstrings")`; the module family is a weak label the model never sees.',
        "",
        "| method | held-out perplexity | mean NPMI | NMI (topic vs module) "
        "| ELBO / token | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for method, values in metrics.items():
        lines.append(
            f"| {method} | {values['perplexity']:.1f} | "
            f"{values['coherence'].mean():.3f} | {values['nmi']:.3f} | "
            f"{values['elbo_per_token']:.3f} | {values['time']:.1f} |"
        )
    lines += [
        "",
        "Perplexity: lower is better (a unigram model scores about "
        f"{_unigram_perplexity(data):.0f}). Times include JIT compilation. ELBO: "
        "CAVI's last sweep, the mean of the last 100 SVI steps (the amortised one "
        "estimated on minibatches). The ELBOs are not comparable across "
        "families: CAVI bounds log p(c) with a mean-field q(z), the SVI guides "
        "sum z out exactly (a tighter bound) but are optimised stochastically.",
        "",
        *[f"- `{method}`: {fit['detail']}" for method, fit in fits.items()],
        "",
        "## Top words per topic",
        "",
        "Topics of every method are reordered to match the first method's "
        "(Hungarian algorithm on total variation distance).",
        "",
    ]
    for method, fit in fits.items():
        words = lda_metrics.top_words(
            fit["topic_word"][order[method]], data["vocabulary"], num_words=8
        )
        coherence = metrics[method]["coherence"][order[method]]
        lines += [f"### {method}", "", "| topic | NPMI | top words |", "|---|---|---|"]
        lines += [
            f"| {k} | {coherence[k]:.2f} | {' '.join(row)} |"
            for k, row in enumerate(words)
        ]
        lines.append("")
    lines += ["## Figures", "", *[f"- `{name}`" for name in figures], ""]
    return "\n".join(lines)


def _unigram_perplexity(data) -> float:
    unigram = data["counts"].sum(0) + 0.5
    unigram = unigram / unigram.sum()
    held = data["test_held_out"]
    return float(np.exp(-np.sum(held * np.log(unigram)) / held.sum()))


def report(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, fits = results["data"], results["fits"]
    num_topics = results["settings"]["num_topics"]
    metrics = {m: _metrics(fit, data, num_topics) for m, fit in fits.items()}
    order = _aligned(fits)
    figures = {
        "elbo.png": plot_elbo(fits, int(data["counts"].sum())),
        "topics_by_module.png": plot_topics_by_module(
            fits, order, data["labels"], data["target_names"]
        ),
        "coherence.png": plot_coherence(metrics, order),
    }
    save_figures(figures, out_dir, dpi=110)
    summary = _summary(results, metrics, order, figures)
    # The project's standard report for the InferenceResult fits (the SVI ones):
    # ELBO traces, checks and summary statistics of the global site beta (the
    # per-document theta has one row per document and is left out).
    svi = {m: fit["result"] for m, fit in fits.items() if "result" in fit}
    if svi:
        summary += diagnostics_section(
            svi,
            out_dir,
            title="LDA on the docstring corpus: diagnostics of the SVI fits",
            var_names=["beta"],
            description="ELBO traces, checks and summary statistics of the topics "
            "(beta) for the SVI fits",
        )
    (out_dir / "summary.md").write_text(summary)
    return metrics


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="LDA on the NumPy/SciPy docstring corpus: CAVI, mean-field "
        "SVI and amortised SVI compared."
    )
    parser.add_argument(
        "--method",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="methods to run (default: all)",
    )
    parser.add_argument("--num-topics", type=int, default=12)
    parser.add_argument("--num-steps", type=int, default=3000, help="SVI steps")
    parser.add_argument(
        "--num-iterations", type=int, default=300, help="maximum CAVI sweeps"
    )
    parser.add_argument(
        "--num-samples", type=int, default=50, help="posterior draws kept by SVI"
    )
    parser.add_argument(
        "--batch-size", type=int, default=128, help="documents per amortised step"
    )
    parser.add_argument(
        "--num-restarts",
        type=int,
        default=4,
        help="random starts of the coordinate CAVI (best kept)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="results/lda_docstrings")
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny settings for a smoke run: {QUICK}"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    args = _parser().parse_args(argv)
    args.method = [m for m in METHODS if m in args.method]
    return fit_and_report(args, fit, report)


if __name__ == "__main__":
    main()
