"""Bad input gets a clear ValueError/TypeError naming the argument and the fix."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_pgm as pgm

KEY = jax.random.key(0)


def model(x, y=None):
    slope = numpyro.sample("slope", dist.Normal(0.0, 1.0))
    with numpyro.plate("point", x.shape[0]):
        numpyro.sample("y", dist.Normal(slope * x, 1.0), obs=y)


def data():
    return {"x": np.linspace(-1, 1, 5), "y": np.array([0.1, -0.2, 0.3, 0.0, 0.5])}


def test_unknown_method():
    with pytest.raises(ValueError, match=r"method must be one of .*'nuts'.*got 'advi'"):
        pgm.fit(KEY, model, data=data(), method="advi")


def test_unknown_guide_name():
    with pytest.raises(ValueError, match=r"guide 'gaussian' is not an AutoGuide name"):
        pgm.fit(KEY, model, data=data(), method="svi", guide="gaussian")


def test_guide_with_another_method():
    with pytest.raises(ValueError, match="guide is only used by method='svi'"):
        pgm.fit(KEY, model, data=data(), method="nuts", guide="normal")


def test_unknown_option_lists_the_allowed_ones():
    with pytest.raises(TypeError, match=r"does not take option\(s\) \['num_step'\]"):
        pgm.fit(KEY, model, data=data(), method="svi", num_step=10)


def test_data_key_the_model_does_not_take():
    with pytest.raises(ValueError, match=r"\['z'\] that model `model` does not take"):
        pgm.fit(KEY, model, data={**data(), "z": 1.0}, method="nuts")


def test_required_argument_missing_from_data():
    with pytest.raises(ValueError, match=r"requires argument\(s\) \['x'\]"):
        pgm.fit(KEY, model, data={"y": data()["y"]}, method="nuts")


def test_missing_observation():
    with pytest.raises(ValueError, match="no observed site"):
        pgm.fit(KEY, model, data={"x": data()["x"]}, method="laplace")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_observed_data(bad):
    values = data()
    values["y"][2] = bad
    with pytest.raises(ValueError, match=r"data\['y'\] contains .*index \[\[2\]\]"):
        pgm.fit(KEY, model, data=values, method="nuts")


def test_allow_missing_lets_a_model_handle_nan_itself():
    @pgm.allow_missing("y")
    def masked(x, y=None):
        slope = numpyro.sample("slope", dist.Normal(0.0, 1.0))
        with numpyro.plate("point", x.shape[0]):
            present = ~jnp.isnan(y)
            numpyro.sample(
                "y",
                dist.Normal(slope * x, 1.0).mask(present),
                obs=jnp.where(present, y, 0.0),
            )

    values = data()
    values["y"][2] = np.nan
    assert pgm.missing_ok_arguments(masked) == ("y",)
    result = pgm.fit(KEY, masked, data=values, method="map")
    assert np.isfinite(result.samples["slope"]).all()


def test_guide_with_a_different_signature():
    def guide(y=None):
        loc = numpyro.param("loc", 0.0)
        numpyro.sample("slope", dist.Normal(loc, 1.0))

    with pytest.raises(ValueError, match="must take the same arguments as model"):
        pgm.fit(KEY, model, data=data(), method="svi", guide=guide)


def test_rng_key_must_be_a_key():
    with pytest.raises(TypeError, match=r"rng_key must be a JAX PRNG key"):
        pgm.fit(0, model, data=data(), method="nuts")


def test_model_must_be_callable():
    with pytest.raises(TypeError, match="model must be a NumPyro model function"):
        pgm.fit(KEY, "model", data=data(), method="nuts")


def test_model_that_fails_on_the_data_is_wrapped():
    with pytest.raises(pgm.ModelError, match="failed when run with the data keys"):
        pgm.fit(KEY, model, data={"x": "not an array", "y": data()["y"]}, method="map")


def test_bad_counts_are_named():
    with pytest.raises(ValueError, match="num_samples must be >= 1; got 0"):
        pgm.fit(KEY, model, data=data(), method="nuts", num_samples=0)
    with pytest.raises(ValueError, match="chain_method must be one of"):
        pgm.fit(KEY, model, data=data(), method="nuts", chain_method="threads")


def test_gibbs_conditional_for_an_unknown_site():
    with pytest.raises(ValueError, match=r"'intercept'.*latent sites are \['slope'\]"):
        pgm.fit(
            KEY,
            model,
            data=data(),
            method="gibbs",
            conditionals={"intercept": lambda key, values, data: {}},
        )


def test_laplace_refuses_a_singular_hessian_and_offers_the_repair():
    def unidentified(y=None):
        a = numpyro.sample("a", dist.ImproperUniform(dist.constraints.real, (), ()))
        b = numpyro.sample("b", dist.ImproperUniform(dist.constraints.real, (), ()))
        with numpyro.plate("point", 3):
            numpyro.sample("y", dist.Normal(a + b, 1.0), obs=y)

    y = np.array([0.5, 1.0, 1.5])
    with pytest.raises(pgm.LaplaceError, match="not positive definite.*hessian_repair"):
        pgm.fit(KEY, unidentified, data={"y": y}, method="laplace")
    repaired = pgm.fit(
        KEY,
        unidentified,
        data={"y": y},
        method="laplace",
        hessian_repair="eigenvalue_floor",
        checks=False,
    )
    total = repaired.samples["a"] + repaired.samples["b"]
    # a + b is identified: its Laplace sd is 1/sqrt(3), whatever the repair does
    # to a - b.
    assert abs(total.std() - 1 / np.sqrt(3)) < 4 * (1 / np.sqrt(3)) * np.sqrt(2 / 1000)


def test_svi_stops_on_nan_loss_with_a_message():
    def exploding(y=None):
        scale = numpyro.sample("scale", dist.LogNormal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(0.0, scale), obs=y)

    with pytest.raises(pgm.SVIError, match="became nan at step .*learning_rate"):
        pgm.fit(
            KEY,
            exploding,
            data={"y": 0.0},
            method="svi",
            learning_rate=1e6,
            num_steps=200,
            progress_bar=False,
        )
