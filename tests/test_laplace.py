"""The mode search of Laplace and MAP in float32 on a large data set."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

import numpyro_pgm as pgm


def model(X, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    with numpyro.plate("point", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ w), obs=y)


def test_lbfgs_stops_at_the_float32_rounding_floor_at_newtons_mode():
    # With 50,000 points in float32 the gradient's rounding error exceeds the
    # default tolerance (1e-5), so a gradient test alone would run L-BFGS to
    # max_iterations and report no convergence; it must stop at the floor, at the
    # mode Newton finds.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50_000, 10)).astype(np.float32)
    truth = rng.normal(size=10) * 0.5
    y = (rng.random(50_000) < 1.0 / (1.0 + np.exp(-X @ truth))).astype(np.int32)
    fits = {
        optimizer: pgm.fit(
            jax.random.key(0),
            model,
            data={"X": X, "y": y},
            method="map",
            optimizer=optimizer,
            checks=False,
        )
        for optimizer in ("lbfgs", "newton")
    }
    lbfgs, newton = fits["lbfgs"], fits["newton"]
    assert lbfgs.settings["converged"] and newton.settings["converged"]
    assert int(lbfgs.sample_stats["num_iterations"][0]) < 100
    # The posterior sd of each weight is about 1/sqrt(N * 0.2) ~ 0.01; the two
    # modes must agree far inside it (float32 rounding of the mode: ~1e-4).
    np.testing.assert_allclose(
        lbfgs.samples["w"][0, 0], newton.samples["w"][0, 0], atol=1e-3
    )
