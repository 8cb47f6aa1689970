"""NUTS, Gibbs, CAVI, SVI and EM on the same mixture: agreement, recovery, SBC.

Tolerances (all per compared statistic, z = 4: two-sided normal tail 6.3e-5):

* two MCMC estimates of a posterior mean agree within ``z * sqrt(mcse_a**2 +
  mcse_b**2)``, the MCSE from the bulk ESS of the relabelled draws;
* a point or variational estimate (EM's maximum likelihood, the CAVI and SVI
  variational means) differs from the posterior mean by a bias, not by Monte Carlo
  error. By Bernstein-von Mises the posterior is Gaussian around the MLE up to
  O(1/N): the posterior mean minus the MLE (prior pull plus skewness) is O(1/N) while
  the posterior sd is O(1/sqrt(N)), so their ratio is O(1/sqrt(N_k)) for a component
  holding N_k points. We allow ``z * mcse + sd / sqrt(N_min)`` (coefficient 1 on the
  O(1/sqrt(N)) term); the mean-field factorisation (seed Example 3.6: exact means for
  a Gaussian target) adds only terms of the same order for separated clusters;
* SBC: rank statistics of label-invariant functions (smallest and largest mean, the
  weight of the lower component), chi-square test on 10 bins, Bonferroni over the
  three statistics at a declared failure rate of 0.01.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from arviz_stats.base import array_stats
from numpyro import handlers
from numpyro_pgm.models import gmm, gmm_cavi, gmm_em, gmm_gibbs, gmm_labels
from scipy import stats

import numpyro_pgm as pgm
from numpyro_pgm import datasets

Z = 4.0
FAILURE_RATE = 0.01
MODEL_KWARGS = {
    "learn_covariance": True,
    "covariance_prior": "wishart",
    "prior_scale": 2.0,
    "obs_scale_prior": 0.5,
}


def _old_faithful():
    raw = datasets.load("old_faithful").X
    return (raw - raw.mean(0)) / raw.std(0)


def _reference(x):
    """EM means sorted by the first coordinate: the labels every method is put in."""
    fit = gmm_em.em(jax.random.key(0), x, num_components=2)
    means = np.asarray(fit.params.means)
    return fit, means[np.argsort(means[:, 0])]


def _posterior_mean(draws, reference):
    """Relabelled mean, sd and MCSE (from the bulk ESS) of mu draws (chain, draw)."""
    mu = gmm_labels.relabel(np.asarray(draws, np.float64), reference=reference).mu
    flat = mu.reshape(*mu.shape[:2], -1)
    ess = np.asarray(array_stats.ess(flat, chain_axis=0, draw_axis=1))
    sd = flat.std((0, 1))
    shape = mu.shape[-2:]
    return (
        flat.mean((0, 1)).reshape(shape),
        sd.reshape(shape),
        (sd / np.sqrt(ess)).reshape(shape),
    )


def _aligned(means, reference):
    means = np.asarray(means, np.float64)
    return gmm_labels.relabel(means[None], reference=reference).mu[0]


def _bias_bound(sd, counts):
    """sd / sqrt(N_min): the O(1/sqrt(N)) allowance for point and VI estimates."""
    return sd / np.sqrt(np.min(counts))


def test_em_and_cavi_agree_on_old_faithful():
    """The two deterministic reference algorithms, learned covariances (cheap tier).

    Each differs from the posterior mean by at most sd / sqrt(N_min), so from each
    other by at most twice that; CAVI's own sd stands in for the posterior sd.
    """
    x = _old_faithful()
    em_fit, reference = _reference(x)
    cavi_fit = gmm_cavi.cavi(jax.random.key(2), x, num_components=2, **MODEL_KWARGS)
    assert cavi_fit.converged and em_fit.converged
    counts = np.asarray(em_fit.responsibilities).sum(0)
    assert counts.min() > 90  # the smaller cluster of eruptions
    order = gmm_labels.relabel(
        np.asarray(cavi_fit.mu_mean)[None], reference=reference
    ).permutations[0]
    cavi_mean = np.asarray(cavi_fit.mu_mean)[order]
    cavi_sd = np.sqrt(np.diagonal(np.asarray(cavi_fit.mu_cov), 0, -2, -1))[order]
    gap = np.abs(cavi_mean - reference)
    assert np.all(gap <= 2 * _bias_bound(cavi_sd, counts)), gap / cavi_sd


@pytest.mark.slow
def test_nuts_gibbs_cavi_svi_and_em_agree_on_old_faithful():
    x = _old_faithful()
    data = {"x": x, "num_components": 2, **MODEL_KWARGS}
    em_fit, reference = _reference(x)
    counts = np.asarray(em_fit.responsibilities).sum(0)
    mcmc = {"num_warmup": 1000, "num_samples": 1000, "progress_bar": False}
    nuts = pgm.fit(jax.random.key(3), gmm.model, data=data, method="nuts",
                   checks=False, **mcmc)  # fmt: skip
    gibbs = pgm.fit(
        jax.random.key(4), gmm.model, data=data, method="gibbs", checks=False,
        conditionals=gmm_gibbs.gibbs_conditionals(**data), **mcmc,
    )  # fmt: skip
    # A decaying step size: with a constant one, Adam's iterate jitters around the
    # optimum by a fixed amount (here ~0.5 posterior sds), which is not a bias of VI.
    num_steps = 6000
    schedule = optax.cosine_decay_schedule(0.02, num_steps, alpha=0.005)
    svi = pgm.fit(
        jax.random.key(5), gmm.model, data=data, method="svi",
        guide=gmm.mean_field_guide, num_steps=num_steps,
        optimizer=optax.adam(schedule), stop_on_plateau=False, num_samples=100,
        progress_bar=False, checks=False,
    )  # fmt: skip
    cavi_fit = gmm_cavi.cavi(jax.random.key(6), x, num_components=2, **MODEL_KWARGS)
    nuts_mean, nuts_sd, nuts_mcse = _posterior_mean(nuts.samples["mu"], reference)
    gibbs_mean, _, gibbs_mcse = _posterior_mean(gibbs.samples["mu"], reference)
    gaps = {"gibbs": np.abs(gibbs_mean - nuts_mean)}
    allowances = {"gibbs": Z * np.hypot(nuts_mcse, gibbs_mcse)}
    point = {
        "cavi": cavi_fit.mu_mean,
        "em": em_fit.params.means,
        "svi": np.asarray(svi.groups["learned_params"]["mu_loc"])[0],
    }
    for name, estimate in point.items():
        gaps[name] = np.abs(_aligned(estimate, reference) - nuts_mean)
        allowances[name] = Z * nuts_mcse + _bias_bound(nuts_sd, counts)
    print({name: np.round(gap / nuts_sd, 4).tolist() for name, gap in gaps.items()})
    for name in gaps:
        assert np.all(gaps[name] <= allowances[name]), (name, gaps[name])


@pytest.mark.slow
def test_nuts_recovers_simulated_parameters():
    truth_mu = np.array([[-2.0, 0.0], [2.0, 1.0]])
    truth_pi = np.array([0.4, 0.6])
    data = gmm.simulate(
        jax.random.key(10), num_points=200, num_components=2, dim=2, mu=truth_mu,
        pi=truth_pi, prior_scale=3.0,
    )  # fmt: skip
    result = pgm.fit(
        jax.random.key(11), gmm.model, data={"x": np.asarray(data["x"]),
        "num_components": 2, "prior_scale": 3.0}, method="nuts",
        num_warmup=500, num_samples=500, progress_bar=False, checks=False,
    )  # fmt: skip
    relabelling = gmm_labels.relabel(result.samples["mu"], reference=truth_mu)
    pi = gmm_labels.apply_permutations(result.samples["pi"], relabelling.permutations)
    for draws, truth in ((relabelling.mu, truth_mu), (pi[..., :1], truth_pi[:1])):
        flat = draws.reshape(*draws.shape[:2], -1)
        ess = np.asarray(array_stats.ess(flat, chain_axis=0, draw_axis=1))
        sd = flat.std((0, 1))
        mean = flat.mean((0, 1))
        # The truth is a draw from the posterior given the data it generated, so
        # (truth - posterior mean) / sd is about N(0, 1); add the Monte Carlo error.
        bound = Z * np.sqrt(sd**2 + sd**2 / ess)
        assert np.all(np.abs(mean - np.ravel(truth)) <= bound)
    # Every draw of z comes from enumeration: the responsibilities recover them.
    responsibilities = gmm.responsibilities(
        data["x"], pi.mean((0, 1)), relabelling.mu.mean((0, 1))
    )
    agreement = np.mean(
        np.asarray(responsibilities).argmax(-1) == np.asarray(data["z"])
    )
    assert agreement > 0.9


# ---------------------------------------------------------------------------- SBC

SBC_SIZES = {"num_points": 30, "num_components": 2, "dim": 1}
SBC_PRIOR = {"prior_scale": 3.0, "concentration": 2.0}


def _invariants(pi, mu):
    """Label-invariant statistics: smallest and largest mean, lower weight."""
    mu = np.asarray(mu)[..., 0]
    lower = np.argmin(mu, axis=-1)
    pi_lower = np.take_along_axis(np.asarray(pi), lower[..., None], axis=-1)[..., 0]
    return np.stack([mu.min(-1), mu.max(-1), pi_lower], axis=-1)


def _rank_p_values(ranks, num_draws, num_bins=10):
    """Chi-square p-value of the rank histogram, per statistic."""
    p_values = []
    for column in ranks.T:
        counts = np.bincount(column * num_bins // (num_draws + 1), minlength=num_bins)
        p_values.append(stats.chisquare(counts).pvalue)
    return np.array(p_values)


@functools.wraps(gmm.mean_field_guide)
def too_narrow_guide(*args, **kwargs):
    """The seed's mean-field guide with the scale of q(mu) pinned at 0.05.

    The posterior sd of each mean is about 0.3 here (15 points per component, unit
    noise), so this guide is about 6 times too narrow; ``mu_scale`` is hidden from
    SVI, so it stays pinned while the rest is learned.
    """
    pinned = handlers.substitute(
        gmm.mean_field_guide, data={"mu_scale": jnp.full((2, 1), 0.05)}
    )
    return handlers.block(pinned, hide=["mu_scale"])(*args, **kwargs)


@pytest.mark.slow
def test_sbc_passes_for_nuts_and_fails_for_a_too_narrow_guide():
    num_simulations, num_draws, thinning = 100, 99, 4
    keys = jax.random.split(jax.random.key(20), num_simulations)
    right, wrong = [], []
    for key in keys:
        simulate_key, fit_key = jax.random.split(key)
        truth = gmm.simulate(simulate_key, **SBC_SIZES, **SBC_PRIOR)
        result = pgm.fit(
            fit_key, gmm.model,
            data={"x": np.asarray(truth["x"]), "num_components": 2, **SBC_PRIOR},
            method="nuts", num_warmup=300, num_samples=num_draws * thinning,
            num_chains=1, thinning=thinning, progress_bar=False, checks=False,
        )  # fmt: skip
        true_stats = _invariants(truth["pi"], truth["mu"])
        draws = _invariants(result.samples["pi"][0], result.samples["mu"][0])
        right.append(np.sum(draws < true_stats, axis=0))
        narrow = pgm.fit(
            fit_key, gmm.model,
            data={"x": np.asarray(truth["x"]), "num_components": 2, **SBC_PRIOR},
            method="svi", guide=too_narrow_guide, num_steps=1500,
            num_samples=num_draws, progress_bar=False, checks=False,
        )  # fmt: skip
        narrow_draws = _invariants(narrow.samples["pi"][0], narrow.samples["mu"][0])
        wrong.append(np.sum(narrow_draws < true_stats, axis=0))
    p_right = _rank_p_values(np.array(right), num_draws)
    p_wrong = _rank_p_values(np.array(wrong), num_draws)
    print("SBC p-values, NUTS:", p_right, "too narrow:", p_wrong)
    assert p_right.min() > FAILURE_RATE / 3
    assert p_wrong.min() < FAILURE_RATE / 3
