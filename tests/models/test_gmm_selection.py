"""Choosing K: the label correction and the Laplace evidence against exact sums.

The exact evidence of a tiny one-dimensional mixture with known noise is a sum over
all K^N assignments, each term conjugate: p(z) is Dirichlet-multinomial and the
members of a component are jointly Gaussian with covariance sigma^2 I + s0^2 11^T.
With K = 1 the posterior of mu is Gaussian, so Laplace is exact (float64 rounding).
With K = 2 and clusters 8 sds apart, the assignments are certain; the only
non-Gaussian factor left is pi ~ Beta(a, b) on the logit scale, whose Laplace error
is known in closed form. Without the log K! correction the estimate would be off by
log 2.
"""

import itertools
import math

import jax
import numpy as np
import pytest
from numpyro_pgm.models import gmm_selection
from scipy import stats
from scipy.special import betaln, gammaln, logsumexp

EXACT_RTOL = 1e-9  # Newton converges to ~1e-9 in the gradient; log det in float64


def _exact_log_evidence(x, num_components, alpha=1.0, prior_scale=3.0):
    num_points = x.shape[0]
    terms = []
    for z in itertools.product(range(num_components), repeat=num_points):
        z = np.array(z)
        counts = np.bincount(z, minlength=num_components)
        term = (
            gammaln(num_components * alpha)
            - gammaln(num_points + num_components * alpha)
            + np.sum(gammaln(alpha + counts) - gammaln(alpha))
        )
        for k in range(num_components):
            members = x[z == k, 0]
            if members.size:
                cov = np.eye(members.size) + prior_scale**2
                term += stats.multivariate_normal.logpdf(members, None, cov)
        terms.append(term)
    return float(logsumexp(terms))


def _laplace_beta_gap(a, b):
    """log B(a, b) minus its Laplace approximation on the logit scale."""
    p = a / (a + b)
    log_laplace = (
        a * math.log(p)
        + b * math.log(1 - p)
        + 0.5 * math.log(2 * math.pi)
        - 0.5 * math.log((a + b) * p * (1 - p))
    )
    return betaln(a, b) - log_laplace


def test_label_correction():
    assert gmm_selection.label_correction(1) == 0.0
    assert gmm_selection.label_correction(4) == pytest.approx(math.log(24))
    assert gmm_selection.label_correction(4, ordered=True) == 0.0
    assert gmm_selection.label_correction(2, concentration=np.ones(2)) == (
        pytest.approx(math.log(2))
    )
    with pytest.raises(ValueError, match="exchangeable"):
        gmm_selection.label_correction(2, concentration=np.array([1.0, 2.0]))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"num_components": [0, 1]}, "num_components"),
        ({"num_components": [11]}, "num_components"),
        ({"criteria": ["waic"]}, "criteria"),
    ],
)
def test_bad_arguments_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        gmm_selection.select_num_components(jax.random.key(0), np.zeros((10, 1)), **bad)


@pytest.mark.slow
def test_corrected_laplace_evidence_matches_the_exact_sum():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-4, 1, 5), rng.normal(4, 1, 5)])[:, None]
    selection = gmm_selection.select_num_components(
        jax.random.key(1), x, num_components=[1, 2], criteria=["laplace"],
        prior_scale=3.0,
    )  # fmt: skip
    table = selection.table
    assert table["laplace_converged"].all()
    exact_1 = _exact_log_evidence(x, 1)
    np.testing.assert_allclose(table.loc[1, "log_evidence"], exact_1, rtol=EXACT_RTOL)
    exact_2 = _exact_log_evidence(x, 2)
    gap = _laplace_beta_gap(6.0, 6.0)  # pi | z ~ Beta(1 + 5, 1 + 5): 0.0208
    print("K=2: exact", exact_2, "Laplace + log 2", table.loc[2, "log_evidence"])
    # What is left besides the Beta term: the two label modes overlap by about
    # exp(-8^2 / 8) and the tails of the other assignments, far below 1e-4.
    assert abs(exact_2 - table.loc[2, "log_evidence"] - gap) < 1e-4
    assert abs(exact_2 - table.loc[2, "log_evidence_mode"]) > math.log(2) - 0.05
    assert selection.best_evidence == 2
    assert table.loc[2, "posterior_prob"] > 0.99
