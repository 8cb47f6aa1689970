r"""Gaussian mixture on Old Faithful: samplers against each other, fits against sklearn.

The model is the case study's (``case_studies/gmm_old_faithful.py``): the
hierarchical mixture of :mod:`numpyro_pgm.models.gmm` with a Wishart precision per
component, :math:`K = 2`, on standardised columns (eruption duration, waiting time):

.. math::

    \pi \sim \mathrm{Dirichlet}(1), \quad \mu_k \sim \mathcal N(0, 2^2 I), \quad
    \Lambda_k \sim \mathrm{Wishart}(d + 2, ((d + 2)\, 0.5^2)^{-1} I), \quad
    z_n \sim \mathrm{Categorical}(\pi), \quad
    x_n \sim \mathcal N(\mu_{z_n}, \Lambda_{z_n}^{-1}).

Part (a), "Samplers on Old Faithful" (all 272 eruptions, 4 chains x (500 warmup +
500 draws) each):

- ``nuts-marginalised``: ``pgm.fit(method="nuts")``, z summed out (the baseline);
- ``discrete-hmc-gibbs``: NumPyro's ``MCMC(DiscreteHMCGibbs(NUTS(model)))`` with z
  sampled (its enumeration turned off): Gibbs updates of every z_n, then a NUTS
  step of pi, mu and the precisions given z;
- ``conjugate-gibbs``: ``pgm.fit(method="gibbs", conditionals=...)`` with the
  closed-form full conditionals of :mod:`numpyro_pgm.models.gmm_gibbs`.

Metric: the smallest bulk ESS over pi and mu, relabelled
(:func:`numpyro_pgm.models.gmm_labels.relabel`, all chains aligned to one
reference), per second of the whole fit including JAX's compilation (a fresh
process, as users meet it) and per second without XLA's backend compile time
(reported by ``jax.monitoring``). Ratios are to ``nuts-marginalised``.

Part (b), "Against scikit-learn" (a fixed random 80/20 split, seed ``SPLIT_SEED``,
standardised with the training means and sds): fit time and the held-out
log-likelihood per point (standardised units) of scikit-learn's
``GaussianMixture`` (full covariances, k-means start, defaults: maximum
likelihood, scored at the estimate) and ``BayesianGaussianMixture`` (variational,
Dirichlet weights, its Normal-Wishart prior set to match ours in the mean: 4
degrees of freedom, ``covariance_prior = I``, ``mean_precision_prior = 1/16``;
scored, as sklearn does, at the variational mean parameters), against
``gmm_em.em`` (maximum likelihood, scored at the estimate),
``gmm_cavi.cavi`` (scored by the posterior predictive of q: log of the average
density over 2000 draws of q) and NUTS (``nuts-predictive``: the same model on
the training split, 4 x (500 + 500), log of the average density over the 2000
posterior draws). Ratios are to ``sklearn-gmm``.

Every variant runs in its own process, all variants interleaved within each
repeat, medians over repeats (:mod:`harness`). Results go to
``benchmarks/results/gmm.md``.

Run: ``python benchmarks/gmm.py --repeats 3``.
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

RESULTS = Path(__file__).resolve().parent / "results" / "gmm.md"
SAMPLERS = ("nuts-marginalised", "discrete-hmc-gibbs", "conjugate-gibbs")
FITS = ("sklearn-gmm", "sklearn-bgmm", "em", "cavi", "nuts-predictive")
VARIANTS = SAMPLERS + FITS
NUM_COMPONENTS = 2
TEST_FRACTION = 0.2
SPLIT_SEED = 20260101
MCMC_SETTINGS = {"num_warmup": 500, "num_samples": 500, "num_chains": 4}
NUM_Q_DRAWS = 2000
MODEL_KWARGS = {
    "learn_covariance": True,
    "covariance_prior": "wishart",
    "prior_scale": 2.0,
    "obs_scale_prior": 0.5,
    "concentration": 1.0,
}


# -- data ---------------------------------------------------------------------------
def _standardise(train, test=None):
    mean, scale = train.mean(0), train.std(0)
    out = (train - mean) / scale
    return out if test is None else (out, (test - mean) / scale)


def old_faithful(split: bool):
    """All eruptions standardised, or a (train, test) pair standardised by train."""
    import numpy as np

    from numpyro_pgm import datasets

    raw = np.asarray(datasets.load("old_faithful").X, dtype=np.float64)
    if not split:
        return _standardise(raw)
    order = np.random.default_rng(SPLIT_SEED).permutation(raw.shape[0])
    num_test = int(round(TEST_FRACTION * raw.shape[0]))
    test, train = np.sort(order[:num_test]), np.sort(order[num_test:])
    return _standardise(raw[train], raw[test])


# -- metrics ------------------------------------------------------------------------
def mixture_log_density(x, pi, mu, cov):
    """Log density of each point under each parameter draw: shape (draws, points).

    ``pi`` (S, K), ``mu`` (S, K, d), ``cov`` (S, K, d, d).
    """
    import numpy as np
    from scipy.special import logsumexp

    chol = np.linalg.cholesky(cov)[:, :, None]  # S, K, 1, d, d
    diff = x[None, None] - mu[:, :, None, :]  # S, K, N, d
    white = np.linalg.solve(chol, diff[..., None])[..., 0]
    log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    dim = x.shape[-1]
    log_normal = -0.5 * (white**2).sum(-1) - log_det - 0.5 * dim * np.log(2 * np.pi)
    return logsumexp(np.log(pi)[:, :, None] + log_normal, axis=1)


def predictive_log_likelihood(x, pi, mu, cov) -> float:
    """Mean over points of log (1/S) sum_s p(x_n | theta_s)."""
    import numpy as np
    from scipy.special import logsumexp

    pi, mu, cov = (np.asarray(a, np.float64) for a in (pi, mu, cov))
    if pi.ndim == 1:
        pi, mu, cov = pi[None], mu[None], cov[None]
    log_density = mixture_log_density(x, pi, mu, cov)
    return float(np.mean(logsumexp(log_density, axis=0) - np.log(pi.shape[0])))


def min_relabelled_ess(pi, mu) -> float:
    """Smallest bulk ESS over pi and mu after relabelling; draws (chain, draw, ...)."""
    import numpy as np
    from arviz_stats.base import array_stats
    from numpyro_pgm.models import gmm_labels

    relabelling = gmm_labels.relabel(np.asarray(mu, np.float64))
    pi = gmm_labels.apply_permutations(np.asarray(pi), relabelling.permutations)
    flat = np.concatenate(
        [pi.reshape(*pi.shape[:2], -1), relabelling.mu.reshape(*pi.shape[:2], -1)],
        axis=-1,
    )
    ess = array_stats.ess(flat, chain_axis=0, draw_axis=1, method="bulk")
    return float(np.min(ess))


# -- one variant ----------------------------------------------------------------------
def _sampler(variant: str, key, x):
    """Run one sampler on x; return draws of pi, mu, obs_precision (chain, draw)."""
    import numpy as np
    from numpyro_pgm.models import gmm, gmm_gibbs

    import numpyro_pgm as pgm

    data = {"x": x, "num_components": NUM_COMPONENTS, **MODEL_KWARGS}
    if variant == "discrete-hmc-gibbs":
        import jax
        from numpyro import handlers
        from numpyro.infer import MCMC, NUTS, DiscreteHMCGibbs

        def no_enumeration(site):
            return {"enumerate": None} if site["name"] == "z" else {}

        model = handlers.infer_config(gmm.model, config_fn=no_enumeration)
        mcmc = MCMC(DiscreteHMCGibbs(NUTS(model)), **MCMC_SETTINGS, progress_bar=False)
        mcmc.run(key, **data)
        samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
        return {k: np.asarray(samples[k]) for k in ("pi", "mu", "obs_precision")}
    options = dict(MCMC_SETTINGS, progress_bar=False, checks=False)
    if variant == "conjugate-gibbs":
        options["conditionals"] = gmm_gibbs.gibbs_conditionals(**data)
    method = "gibbs" if variant == "conjugate-gibbs" else "nuts"
    result = pgm.fit(key, gmm.model, data=data, method=method, **options)
    return {k: np.asarray(result.samples[k]) for k in ("pi", "mu", "obs_precision")}


def measure(variant: str) -> dict:
    """Fit one variant in this process; return a JSON-ready record."""
    start = time.perf_counter()
    if not variant.startswith("sklearn"):
        # Import numpyro_pgm before JAX starts, so that it can set up one virtual
        # CPU device per chain (as the README asks); same for every JAX variant.
        import numpyro_pgm  # noqa: F401
    import jax
    import numpy as np

    compile_seconds = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, secs, **kw: (
            compile_seconds.append(secs) if "backend_compile" in name else None
        )
    )
    key = jax.random.key(0)
    record: dict[str, float] = {}
    if variant in SAMPLERS:
        draws = _sampler(variant, key, old_faithful(split=False))
        seconds = time.perf_counter() - start
        ess = min_relabelled_ess(draws["pi"], draws["mu"])
        compile_total = sum(compile_seconds)
        return {
            "seconds": seconds,
            "compile_seconds": compile_total,
            "min_ess": ess,
            "ess_per_second": ess / seconds,
            "ess_per_second_no_compile": ess / (seconds - compile_total),
        }
    train, test = old_faithful(split=True)
    if variant.startswith("sklearn"):
        from sklearn.mixture import BayesianGaussianMixture, GaussianMixture
    fit_start, compile_before = time.perf_counter(), sum(compile_seconds)
    if variant.startswith("sklearn"):
        if variant == "sklearn-gmm":
            model = GaussianMixture(NUM_COMPONENTS, covariance_type="full",
                                    random_state=0)  # fmt: skip
        else:
            dim = train.shape[1]
            model = BayesianGaussianMixture(
                n_components=NUM_COMPONENTS,
                covariance_type="full",
                weight_concentration_prior_type="dirichlet_distribution",
                weight_concentration_prior=1.0,
                mean_prior=np.zeros(dim),
                mean_precision_prior=1 / 16,
                degrees_of_freedom_prior=dim + 2.0,
                covariance_prior=np.eye(dim),
                max_iter=500,
                random_state=0,
            )
        model.fit(train)
        fit_seconds = time.perf_counter() - fit_start
        log_likelihood = float(model.score(test))
    elif variant == "em":
        from numpyro_pgm.models import gmm_em

        params = gmm_em.em(key, train, num_components=NUM_COMPONENTS).params
        params = jax.device_get(params)
        fit_seconds = time.perf_counter() - fit_start
        log_likelihood = predictive_log_likelihood(
            test, params.weights, params.means, params.covs
        )
    elif variant == "cavi":
        from numpyro_pgm.models import gmm_cavi

        fit = gmm_cavi.cavi(key, train, num_components=NUM_COMPONENTS, **MODEL_KWARGS)
        fit = jax.device_get(fit)
        fit_seconds = time.perf_counter() - fit_start
        log_likelihood = predictive_log_likelihood(test, *_q_draws(fit))
    else:
        draws = _sampler("nuts-marginalised", key, train)
        fit_seconds = time.perf_counter() - fit_start
        pi = draws["pi"].reshape(-1, NUM_COMPONENTS)
        mu = draws["mu"].reshape(-1, *draws["mu"].shape[-2:])
        precision = draws["obs_precision"]
        cov = np.linalg.inv(precision.reshape(-1, *precision.shape[-3:]))
        log_likelihood = predictive_log_likelihood(test, pi, mu, cov)
    record["seconds"] = fit_seconds
    record["compile_seconds"] = sum(compile_seconds) - compile_before
    record["seconds_no_compile"] = fit_seconds - record["compile_seconds"]
    record["log_likelihood"] = log_likelihood
    return record


def _q_draws(fit):
    """Draws of (pi, mu, cov) from CAVI's mean-field posterior q."""
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.asarray(fit.pi_concentration, np.float64), NUM_Q_DRAWS)
    mu = np.stack(
        [
            rng.multivariate_normal(m, s, NUM_Q_DRAWS)
            for m, s in zip(
                np.asarray(fit.mu_mean), np.asarray(fit.mu_cov), strict=True
            )  # fmt: skip
        ],
        axis=1,
    )
    precision = np.stack(
        [
            stats.wishart(df=float(df), scale=np.asarray(scale, np.float64)).rvs(
                NUM_Q_DRAWS, random_state=rng
            )
            for df, scale in zip(fit.precision_df, fit.precision_scale, strict=True)
        ],
        axis=1,
    )
    return pi, mu, np.linalg.inv(precision)


# -- the run ---------------------------------------------------------------------------
NOTES_A = (
    "The ESS is over the relabelled weights and means (the smallest of their 6 "
    "bulk ESSs). Seconds are the whole fit in a fresh process, imports and "
    "compilation included; the last column removes XLA's backend compile time."
)
NOTES_B = (
    "Held-out log-likelihood: the mean over the test points of log p(x_n | "
    "training data), in standardised units (higher is better); maximum-likelihood "
    "fits (sklearn-gmm, em) and sklearn-bgmm are scored at their estimate, cavi "
    "and nuts-predictive by their posterior predictive (log of the average "
    "density over 2000 draws). The ratio column of the log-likelihood divides "
    "two negative numbers (below 1 is better); the differences are what matter. "
    "JAX variants pay compilation in a fresh process; sklearn has none."
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(measure(args.variant)))
        return
    runs = run_variants(Path(__file__), VARIANTS, repeats=args.repeats)
    rows = medians(runs)
    load = os.getloadavg()
    setting = (
        f"Medians of {args.repeats} interleaved repeats, each variant in a fresh "
        f"process; CPU ({platform.machine()}, {os.cpu_count()} cores, shared), load "
        f"average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at "
        "the end of the run."
    )
    reproduce = f"Reproduce: `python benchmarks/gmm.py --repeats {args.repeats}`."
    samplers = markdown_table(
        {v: rows[v] for v in SAMPLERS},
        [
            ("seconds", "total s", ".1f"),
            ("compile_seconds", "compile s", ".1f"),
            ("min_ess", "min ESS", ".0f"),
            ("ess_per_second", "min-ESS/s", ".1f"),
            ("ess_per_second_no_compile", "min-ESS/s without compile", ".1f"),
        ],
        baseline="nuts-marginalised",
        ratio_of=("ess_per_second", "ess_per_second_no_compile"),
    )
    write_section(
        RESULTS,
        "Samplers on Old Faithful",
        "Old Faithful (272 x 2, standardised), K = 2, the case study's model "
        "(Wishart precision per component); 4 chains x (500 warmup + 500 draws). "
        f"{setting}\n\n{samplers}\n\n{NOTES_A}\n\n{reproduce}",
    )
    fits = markdown_table(
        {v: rows[v] for v in FITS},
        [
            ("seconds", "fit s", ".2f"),
            ("compile_seconds", "compile s", ".2f"),
            ("seconds_no_compile", "fit s without compile", ".2f"),
            ("log_likelihood", "held-out log-lik / point", ".4f"),
        ],
        baseline="sklearn-gmm",
        ratio_of=("seconds", "seconds_no_compile", "log_likelihood"),
    )
    train, test = old_faithful(split=True)
    write_section(
        RESULTS,
        "Against scikit-learn",
        f"Old Faithful split at random (seed {SPLIT_SEED}): {len(train)} training "
        f"and {len(test)} test eruptions, standardised with the training means "
        f"and sds; K = 2, full covariances. {setting}\n\n{fits}\n\n{NOTES_B}\n\n"
        f"{reproduce}",
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
