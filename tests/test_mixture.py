"""A discrete latent: a two-component mixture under NUTS (enumerated) and Gibbs."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
import scipy.special
import scipy.stats
from arviz_stats.base import array_stats

import numpyro_pgm as pgm

NUM_POINTS = 60
SCALE = 0.7


def mixture(x=None):
    weight = numpyro.sample("weight", dist.Beta(2.0, 2.0))
    locs = numpyro.sample(
        "locs",
        dist.TransformedDistribution(
            dist.Normal(jnp.zeros(2), 3.0 * jnp.ones(2)).to_event(1),
            dist.transforms.OrderedTransform(),
        ),
    )
    with numpyro.plate("point", NUM_POINTS):
        z = numpyro.sample("z", dist.Bernoulli(weight))
        numpyro.sample("x", dist.Normal(locs[z], SCALE), obs=x)


def _data():
    rng = np.random.default_rng(11)
    z = rng.random(NUM_POINTS) < 0.35
    return np.where(z, 2.0, -1.5) + SCALE * rng.normal(size=NUM_POINTS)


def _marginal_log_density(x, weight, locs):
    """log p(x_n | weight, locs), summed over z_n by hand (scipy)."""
    weight = weight.reshape(-1, 1)
    components = np.stack(
        [
            np.log1p(-weight) + scipy.stats.norm.logpdf(x, locs[:, :1], SCALE),
            np.log(weight) + scipy.stats.norm.logpdf(x, locs[:, 1:], SCALE),
        ]
    )
    return scipy.special.logsumexp(components, axis=0)


@pytest.fixture(scope="module")
def nuts_result():
    return pgm.fit(
        jax.random.key(0),
        mixture,
        data={"x": _data()},
        method="nuts",
        num_warmup=400,
        num_samples=500,
        num_chains=2,
        progress_bar=False,
        checks=False,
    )


def test_nuts_enumerates_the_discrete_site(nuts_result):
    assert nuts_result.settings["enumerated_sites"] == ["z"]
    # z is summed out while sampling, then drawn from p(z | x, theta) per draw.
    z = nuts_result.samples["z"]
    assert z.shape == (2, 500, NUM_POINTS)
    assert set(np.unique(z)) <= {0, 1}
    data = _data()
    # Points far on the right belong to the upper component in almost every draw.
    assert z[..., data > 3.0].mean() > 0.95
    assert z[..., data < -2.5].mean() < 0.05


def test_log_likelihood_is_the_marginal_mixture_density(nuts_result):
    loglik = nuts_result.log_likelihood["x"]
    assert loglik.shape == (2, 500, NUM_POINTS)
    expected = _marginal_log_density(
        _data(),
        nuts_result.samples["weight"].reshape(-1),
        nuts_result.samples["locs"].reshape(-1, 2),
    )
    np.testing.assert_allclose(loglik.reshape(-1, NUM_POINTS), expected, rtol=2e-5)
    tree = nuts_result.to_datatree()
    assert tree["log_likelihood"]["x"].dims == ("chain", "draw", "point")


def test_gibbs_samples_the_discrete_site_and_agrees_with_nuts(nuts_result):
    result = pgm.fit(
        jax.random.key(1),
        mixture,
        data={"x": _data()},
        method="gibbs",
        num_warmup=400,
        num_samples=500,
        num_chains=2,
        progress_bar=False,
        checks=False,
    )
    assert result.settings["discrete_gibbs_sites"] == ["z"]
    assert result.settings["nuts_sites"] == ["weight", "locs"]
    assert result.samples["z"].shape == (2, 500, NUM_POINTS)
    # Both chains target the same posterior: posterior means agree within 4 combined
    # Monte Carlo standard errors.
    for site in ("weight", "locs"):
        a, b = nuts_result.samples[site], result.samples[site]
        if a.ndim == 2:
            a, b = a[..., None], b[..., None]
        for i in range(a.shape[-1]):
            mcse_a = float(array_stats.mcse(a[..., i], 0, 1))
            mcse_b = float(array_stats.mcse(b[..., i], 0, 1))
            gap = abs(a[..., i].mean() - b[..., i].mean())
            assert gap <= 4 * np.hypot(mcse_a, mcse_b), (site, i, gap)
    # The marginal log-likelihood is computed the same way for Gibbs draws.
    expected = _marginal_log_density(
        _data(),
        result.samples["weight"].reshape(-1),
        result.samples["locs"].reshape(-1, 2),
    )
    np.testing.assert_allclose(
        result.log_likelihood["x"].reshape(-1, NUM_POINTS), expected, rtol=2e-5
    )


def test_non_enumerable_discrete_site_is_named_with_ways_out():
    def counts_model(y=None):
        n = numpyro.sample("n", dist.Poisson(5.0))
        numpyro.sample("y", dist.Normal(n, 1.0), obs=y)

    with pytest.raises(ValueError, match=r"\['n'\].*infinite support.*gibbs"):
        pgm.fit(jax.random.key(0), counts_model, data={"y": 3.0}, method="nuts")


@pytest.mark.parametrize("method", ["svi", "laplace"])
def test_approximate_methods_sum_out_and_redraw_the_discrete_site(method):
    options = {"svi": dict(num_steps=1500, progress_bar=False), "laplace": {}}[method]
    result = pgm.fit(
        jax.random.key(2),
        mixture,
        data={"x": _data()},
        method=method,
        posterior_predictive=True,
        checks=False,
        **options,
    )
    assert result.settings["enumerated_sites"] == ["z"]
    assert result.samples["z"].shape == (1, 1000, NUM_POINTS)
    assert result.groups["posterior_predictive"]["x"].shape == (1, 1000, NUM_POINTS)
    expected = _marginal_log_density(
        _data(),
        result.samples["weight"].reshape(-1),
        result.samples["locs"].reshape(-1, 2),
    )
    np.testing.assert_allclose(
        result.log_likelihood["x"].reshape(-1, NUM_POINTS), expected, rtol=2e-5
    )
