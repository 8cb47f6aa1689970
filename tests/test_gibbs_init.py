"""Starting Gibbs chains at given values (``init_params``)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_pgm as pgm
from numpyro_pgm.inference._initial import unconstraining

Y = np.random.default_rng(0).normal(2.0, 1.5, 25)


def model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
    with numpyro.plate("point", 25):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def stay(rng_key, values, data):
    # A "conditional" that keeps the current value: the chain never leaves its start.
    return {"mu": values["mu"]}


def keep_sigma(rng_key, values, data):
    return {"sigma": values["sigma"]}


def fit(**options):
    settings = dict(num_warmup=0, num_samples=3, progress_bar=False, checks=False)
    return pgm.fit(
        jax.random.key(0),
        model,
        data={"y": Y},
        method="gibbs",
        **{**settings, **options},
    )


def test_chains_start_where_they_are_told_one_start_per_chain():
    starts = {"mu": np.array([-3.0, 0.5, 7.0]), "sigma": np.array([0.3, 1.0, 4.0])}
    result = fit(
        conditionals={"mu": stay, "sigma": keep_sigma},
        init_params=starts,
        num_chains=3,
        chain_method="sequential",
    )
    for site, start in starts.items():
        np.testing.assert_allclose(
            result.samples[site], np.repeat(start[:, None], 3, axis=1), rtol=1e-6
        )


def test_one_start_for_all_chains_and_the_default_start_differs():
    started = fit(
        conditionals={"mu": stay, "sigma": keep_sigma},
        init_params={"mu": 1.25, "sigma": 2.5},
        num_chains=2,
    )
    np.testing.assert_allclose(started.samples["mu"], 1.25)
    np.testing.assert_allclose(started.samples["sigma"], 2.5)
    default = fit(conditionals={"mu": stay, "sigma": keep_sigma}, num_chains=2)
    assert not np.allclose(default.samples["mu"], 1.25)


def test_nuts_block_starts_from_the_unconstrained_value():
    to_kernel = unconstraining(model, ["sigma"])
    values = to_kernel({"y": jnp.asarray(Y)}, {"sigma": jnp.array(3.0), "mu": 1.0})
    np.testing.assert_allclose(values["sigma"], np.log(3.0), rtol=1e-6)
    assert values["mu"] == 1.0  # not a NUTS site: constrained, as given
    # And the fit runs with a NUTS block started there.
    result = fit(
        conditionals={"mu": stay},
        init_params={"mu": 1.0, "sigma": 3.0},
        num_warmup=50,
        num_samples=50,
        num_chains=2,
    )
    np.testing.assert_allclose(result.samples["mu"], 1.0)
    assert np.all(result.samples["sigma"] > 0)


@pytest.mark.parametrize(
    "init_params, match",
    [
        ({"tau": 1.0}, "not latent sites"),
        ({"mu": np.zeros(2)}, r"has shape \(2,\)"),
        ({"mu": np.nan}, "NaN or inf"),
        ({"sigma": -1.0, "mu": 0.0}, "outside the site's support"),
        ([1.0], "must be a dict"),
    ],
)
def test_bad_starts_are_named(init_params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fit(conditionals={"mu": stay, "sigma": keep_sigma}, init_params=init_params)


def test_a_nuts_block_needs_all_of_its_sites():
    def two_scales(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        a = numpyro.sample("a", dist.HalfNormal(5.0))
        b = numpyro.sample("b", dist.HalfNormal(5.0))
        with numpyro.plate("point", 25):
            numpyro.sample("y", dist.Normal(mu, a + b), obs=y)

    with pytest.raises(ValueError, match="Give all of them or none"):
        pgm.fit(
            jax.random.key(0),
            two_scales,
            data={"y": Y},
            method="gibbs",
            conditionals={"mu": stay},
            init_params={"a": 1.0},
            num_warmup=10,
            num_samples=10,
            progress_bar=False,
        )
