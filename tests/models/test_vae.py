"""Tests for the variational autoencoder: model, estimators, training, checkpoints.

Tolerances:

* sampling checks assert ``|estimate - expected| <= Z * standard_error`` (or a
  one-sided ``difference > Z * standard_error``) with ``Z = 4``: a normal tail of
  6.3e-5 per compared statistic, so a test comparing m statistics fails by chance
  with probability below m * 6.3e-5 (m <= 16 here, so below 1e-3);
* exact identities run in float32 (the networks' precision) with ``RTOL = 1e-4``,
  about a thousand float32 ulps, far above the rounding of the sums of <= 64 terms
  compared, and far below any modelling error (a wrong KL or a missing term is
  off by O(1));
* a resumed training run must equal the uninterrupted one exactly: same compiled
  steps on the same inputs.
"""

import functools
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import optax
import pytest
from numpyro import handlers
from numpyro.infer import Trace_ELBO, TraceMeanField_ELBO
from numpyro_pgm.models import vae, vae_evaluation, vae_result, vae_training
from scipy import stats

import numpyro_pgm as pgm
from numpyro_pgm import datasets

Z = 4.0
RTOL = 1e-4


@pytest.fixture(scope="module")
def digits():
    images = vae.binarize(datasets.load("digits").X / 16.0)
    order = np.random.default_rng(0).permutation(len(images))
    return images[order[:1400]], images[order[1400:]]


@pytest.fixture(scope="module")
def trained(digits):
    x_train, x_test = digits
    networks = vae.init_networks(
        jax.random.key(0), num_pixels=64, latent_dims=2, hidden_size=64
    )
    result = vae_training.train(
        jax.random.key(1),
        x_train,
        networks=networks,
        num_epochs=15,
        batch_size=100,
        x_test=x_test,
        learning_rate=3e-3,
        progress_bar=False,
    )
    return result, networks


def _se(values):
    values = np.asarray(values, dtype=np.float64)
    return values.std(ddof=1) / np.sqrt(values.size)


# --- the model --------------------------------------------------------------------


def test_simulate_and_guide_shapes_and_sites():
    networks = vae.init_networks(jax.random.key(0), num_pixels=64, latent_dims=3)
    data = vae.simulate(jax.random.key(1), networks=networks, num_images=5)
    assert data["x"].shape == (5, 64) and data["z"].shape == (5, 3)
    assert set(np.unique(np.asarray(data["x"]))) <= {0.0, 1.0}
    batch = np.asarray(data["x"])
    model_trace = handlers.trace(handlers.seed(vae.model, 2)).get_trace(
        batch, networks=networks, num_images=40
    )
    guide_trace = handlers.trace(handlers.seed(vae.guide, 3)).get_trace(
        batch, networks=networks, num_images=40
    )
    assert model_trace["x"]["fn"].event_shape == (64,)
    assert model_trace["z"]["fn"].batch_shape == (5,)
    assert guide_trace["z"]["value"].shape == (5, 3)
    assert [f.name for f in model_trace["x"]["cond_indep_stack"]] == ["image"]
    # Minibatch scaling N / B on every site; the beta weight only on z.
    assert model_trace["x"]["scale"] == pytest.approx(40 / 5)
    assert "decoder$params" in model_trace and "encoder$params" in guide_trace
    beta_trace = handlers.trace(handlers.seed(vae.guide, 3)).get_trace(
        batch, networks=networks, beta=0.5
    )
    assert beta_trace["z"]["scale"] == pytest.approx(0.5)


def test_kl_divergence_matches_closed_form_of_numpyro():
    loc = jax.random.normal(jax.random.key(0), (7, 4))
    scale = jnp.exp(0.5 * jax.random.normal(jax.random.key(1), (7, 4)))
    expected = dist.kl_divergence(
        dist.Normal(loc, scale).to_event(1),
        dist.Normal(0.0, 1.0).expand([4]).to_event(1),
    )
    np.testing.assert_allclose(vae.kl_divergence(loc, scale), expected, rtol=RTOL)


def test_analytic_kl_equals_its_monte_carlo_estimate(trained, digits):
    result, networks = trained
    x = digits[1][:16]
    loc, scale = vae_evaluation.encode(result.params, x, networks=networks)
    q = dist.Normal(loc, scale).to_event(1)
    z = q.sample(jax.random.key(2), (4000,))
    prior = dist.Normal(0.0, 1.0).expand([networks.latent_dims]).to_event(1)
    log_ratio = np.asarray(q.log_prob(z) - prior.log_prob(z), dtype=np.float64)
    mc, se = log_ratio.mean(axis=0), log_ratio.std(axis=0, ddof=1) / np.sqrt(4000)
    analytic = np.asarray(vae.kl_divergence(loc, scale))
    assert np.all(np.abs(mc - analytic) <= Z * se), (mc, analytic, se)
    # The check has power: a KL missing its factor 1/2 is rejected for every image.
    assert np.all(np.abs(mc - 2 * analytic) > Z * se)


@functools.cache
def _loss_function(kind):
    elbo = Trace_ELBO() if kind == "trace" else TraceMeanField_ELBO()

    def loss(key, params, x, networks, beta):
        return elbo.loss(
            key, params, vae.model, vae.guide, x, networks=networks, beta=beta
        )

    return eqx.filter_jit(jax.vmap(loss, in_axes=(0, None, None, None, None)))


def _losses(kind, params, x, networks, beta, num_draws):
    keys = jax.random.split(jax.random.key(5), num_draws)
    loss = _loss_function(kind)(keys, params, x, networks, jnp.asarray(beta))
    return np.asarray(loss, dtype=np.float64)


@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_trace_and_meanfield_elbo_estimate_the_same_objective(trained, digits, beta):
    result, networks = trained
    x = digits[1][:32]
    monte_carlo = _losses("trace", result.params, x, networks, beta, 2000)
    analytic = _losses("meanfield", result.params, x, networks, beta, 2000)
    gap = monte_carlo.mean() - analytic.mean()
    assert abs(gap) <= Z * np.hypot(_se(monte_carlo), _se(analytic))


def test_beta_weights_exactly_the_analytic_kl(trained, digits):
    result, networks = trained
    x = digits[1][:32]
    # Same keys, same z draws: the losses differ by (beta_2 - beta_1) * sum KL.
    one = _losses("meanfield", result.params, x, networks, 1.0, 2000)[:3]
    three = _losses("meanfield", result.params, x, networks, 3.0, 2000)[:3]
    loc, scale = vae_evaluation.encode(result.params, x, networks=networks)
    total_kl = float(vae.kl_divergence(loc, scale).sum())
    np.testing.assert_allclose(three - one, 2.0 * total_kl, rtol=RTOL)


# --- training and what it learns --------------------------------------------------


def test_elbo_rises_during_training(trained):
    result, _ = trained
    first, last = -result.step_loss[0], -result.step_loss[-1]
    # The spread of steps within an epoch includes the training trend, so this
    # standard error is conservative.
    assert last.mean() - first.mean() > Z * np.hypot(_se(first), _se(last))
    assert result.train_elbo[-1] > result.train_elbo[0]
    assert np.all(np.isfinite(result.test_elbo))


def test_reconstructions_beat_the_mean_image(trained, digits):
    result, networks = trained
    x_train, x_test = digits
    recon = np.asarray(
        vae_evaluation.reconstruct(result.params, x_test, networks=networks)
    )
    recon_error = ((recon - x_test) ** 2).sum(axis=1)
    mean_error = ((x_train.mean(axis=0) - x_test) ** 2).sum(axis=1)
    improvement = mean_error - recon_error
    assert improvement.mean() > Z * _se(improvement)
    # The check has power: the untrained networks' reconstructions do not pass.
    untrained = np.asarray(vae_evaluation.reconstruct({}, x_test, networks=networks))
    worse = mean_error - ((untrained - x_test) ** 2).sum(axis=1)
    assert not worse.mean() > Z * _se(worse)


def _elbo_and_bound(params, x, networks, num_samples):
    """Independent estimates: the ELBO from one set of draws, L_K from another."""
    first, second = (
        np.asarray(
            vae_evaluation.log_weights(
                jax.random.key(seed),
                params,
                x,
                networks=networks,
                num_samples=num_samples,
            ),
            dtype=np.float64,
        )
        for seed in (7, 8)
    )
    bound = jax.nn.logsumexp(second, axis=0) - np.log(num_samples)
    np.testing.assert_allclose(
        bound,
        vae_evaluation.importance_weighted_bound(
            jax.random.key(8), params, x, networks=networks, num_samples=num_samples
        ),
        rtol=RTOL,
    )
    return first.mean(axis=0), np.asarray(bound)


def test_importance_weighted_bound_is_above_the_elbo(trained, digits):
    result, networks = trained
    elbo, bound = _elbo_and_bound(result.params, digits[1], networks, 64)
    gap = bound - elbo
    assert gap.mean() > Z * _se(gap)
    # With K = 1 the "bound" is the ELBO itself (E[L_1] = ELBO): no gap.
    elbo, bound_1 = _elbo_and_bound(result.params, digits[1], networks, 1)
    gap_1 = bound_1 - elbo
    assert abs(gap_1.mean()) <= Z * _se(gap_1)


def _linear_gaussian(rng_key, num_pixels, latent_dims):
    """Affine VAE with the exact posterior as its encoder (p(z|x) is diagonal)."""
    networks = vae.init_networks(
        rng_key,
        num_pixels=num_pixels,
        latent_dims=latent_dims,
        num_hidden_layers=0,
        likelihood="gaussian",
    )
    keys = jax.random.split(rng_key, 3)
    q, _ = jnp.linalg.qr(jax.random.normal(keys[0], (num_pixels, latent_dims)))
    w = q * jnp.array([2.0, 1.0, 0.5])[:latent_dims]  # orthogonal columns
    b = jax.random.normal(keys[1], (num_pixels,))
    noise = 0.7
    precision = 1.0 + jnp.sum(w**2, axis=0) / noise**2  # diagonal of I + W'W/s^2
    post_scale = 1.0 / jnp.sqrt(precision)
    encoder_w = jnp.concatenate([(w / noise**2 / precision).T, jnp.zeros_like(w.T)])
    encoder_b = jnp.concatenate(
        [
            -(w.T @ b) / noise**2 / precision,
            jnp.log(jnp.expm1(post_scale - vae.MIN_SCALE)),
        ]
    )
    networks = _set(networks, encoder_w, encoder_b, w, b, jnp.log(noise))
    covariance = w @ w.T + noise**2 * jnp.eye(num_pixels)
    return networks, dist.MultivariateNormal(b, covariance)


def _set(networks, encoder_w, encoder_b, w, b, log_scale):
    return eqx.tree_at(
        lambda n: (
            n.encoder.mlp.layers[0].weight,
            n.encoder.mlp.layers[0].bias,
            n.decoder.mlp.layers[0].weight,
            n.decoder.mlp.layers[0].bias,
            n.decoder.log_scale,
        ),
        networks,
        (encoder_w, encoder_b, w, b, log_scale),
    )


def test_exact_posterior_gives_log_evidence_for_every_draw():
    # With q(z|x) = p(z|x), log p(x, z) - log q(z | x) = log p(x) for every z.
    networks, marginal = _linear_gaussian(jax.random.key(0), 6, 3)
    x = np.asarray(marginal.sample(jax.random.key(1), (200,)))
    params = {"encoder$params": networks.encoder, "decoder$params": networks.decoder}
    weights = vae_evaluation.log_weights(
        jax.random.key(2), params, x, networks=networks, num_samples=256
    )
    exact = marginal.log_prob(x)
    np.testing.assert_allclose(
        weights, jnp.broadcast_to(exact, weights.shape), rtol=RTOL
    )


def test_bounds_sit_below_the_exact_log_evidence():
    networks, marginal = _linear_gaussian(jax.random.key(0), 6, 3)
    x = np.asarray(marginal.sample(jax.random.key(1), (200,)))
    # A worse encoder: wider and shifted.
    layer = networks.encoder.mlp.layers[0]
    networks = eqx.tree_at(
        lambda n: n.encoder.mlp.layers[0].bias,
        networks,
        layer.bias + jnp.r_[0.3, -0.2, 0.1, 0.8, 0.8, 0.8],
    )
    params = {"encoder$params": networks.encoder, "decoder$params": networks.decoder}
    exact = np.asarray(marginal.log_prob(x), dtype=np.float64)
    elbo, bound = _elbo_and_bound(params, x, networks, 256)
    assert (exact - elbo).mean() > Z * _se(exact - elbo)
    assert (bound - elbo).mean() > Z * _se(bound - elbo)
    assert (exact - bound).mean() > -Z * _se(exact - bound)


# --- checkpoints ------------------------------------------------------------------


def _small_run(x, tmp_path=None, num_epochs=4, rng_key=None, **options):
    networks = vae.init_networks(
        jax.random.key(0), num_pixels=64, latent_dims=2, hidden_size=16
    )
    return vae_training.train(
        jax.random.key(1) if rng_key is None else rng_key,
        x[:200],
        networks=networks,
        num_epochs=num_epochs,
        batch_size=50,
        x_test=x[200:260],
        loss="elbo",
        checkpoint_path=None if tmp_path is None else tmp_path / "run.npz",
        progress_bar=False,
        **options,
    )


def _assert_same(a, b):
    for left, right in zip(
        jax.tree.leaves(a.svi_state), jax.tree.leaves(b.svi_state), strict=True
    ):
        if vae_training._is_key(left):
            left, right = jax.random.key_data(left), jax.random.key_data(right)
        np.testing.assert_array_equal(left, right)
    np.testing.assert_array_equal(a.step_loss, b.step_loss)
    np.testing.assert_array_equal(a.train_elbo, b.train_elbo)
    np.testing.assert_array_equal(a.test_elbo, b.test_elbo)


def test_resumed_run_equals_uninterrupted_run(digits, tmp_path):
    x = digits[0]
    uninterrupted = _small_run(x)

    class Interrupt(Exception):
        pass

    def stop_after_two(info):
        if info["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        _small_run(x, tmp_path, callback=stop_after_two)
    assert os.listdir(tmp_path) == ["run.npz"]  # renamed into place, no temp left
    resumed = _small_run(x, tmp_path)
    assert resumed.resumed_from == 2
    _assert_same(resumed, uninterrupted)
    # A finished checkpoint is returned as it is.
    again = _small_run(x, tmp_path)
    assert again.resumed_from == 4
    _assert_same(again, uninterrupted)


def test_checkpoint_of_another_run_is_refused(digits, tmp_path):
    x = digits[0]
    _small_run(x, tmp_path, num_epochs=2)
    with pytest.raises(ValueError, match="rng_key"):
        _small_run(x, tmp_path, num_epochs=3, rng_key=jax.random.key(9))
    with pytest.raises(ValueError, match="num_epochs=1 is less than the 2 epochs"):
        _small_run(x, tmp_path, num_epochs=1)
    restarted = _small_run(x, tmp_path, num_epochs=1, resume=False)
    assert restarted.resumed_from == 0


def test_nan_loss_stops_training_with_a_message(digits, tmp_path):
    networks = vae.init_networks(
        jax.random.key(0), num_pixels=64, latent_dims=2, hidden_size=16
    )
    broken = eqx.tree_at(
        lambda n: n.decoder.mlp.layers[0].bias,
        networks,
        networks.decoder.mlp.layers[0].bias * jnp.nan,
    )
    with pytest.raises(pgm.SVIError, match="NaN or infinite in epoch 1.*run.npz"):
        vae_training.train(
            jax.random.key(1),
            digits[0][:200],
            networks=broken,
            num_epochs=2,
            batch_size=50,
            loss="elbo",
            checkpoint_path=tmp_path / "run.npz",
            progress_bar=False,
        )
    assert not (tmp_path / "run.npz").exists()


# --- bad input --------------------------------------------------------------------


@pytest.fixture(scope="module")
def networks():
    return vae.init_networks(jax.random.key(0), num_pixels=64, latent_dims=2)


def test_images_of_the_wrong_size_are_refused(networks):
    trace = handlers.trace(handlers.seed(vae.model, 0))
    with pytest.raises(
        ValueError, match=r"x must be a 2-D array of shape .*64.*\(5, 63\)"
    ):
        trace.get_trace(np.zeros((5, 63)), networks=networks)
    with pytest.raises(ValueError, match=r"x must be a 2-D array.*\(5, 8, 8\)"):
        vae_training.train(
            jax.random.key(0), np.zeros((5, 8, 8)), networks=networks, num_epochs=1
        )
    with pytest.raises(ValueError, match=r"x_test must be a 2-D array"):
        vae_training.train(
            jax.random.key(0),
            np.zeros((5, 64)),
            networks=networks,
            num_epochs=1,
            x_test=np.zeros((5, 65)),
        )


def test_values_outside_the_unit_interval_are_refused_for_bernoulli(networks):
    counts = np.full((3, 64), 16.0)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\].*\[16, 16\]"):
        vae_evaluation.elbo(jax.random.key(0), {}, counts, networks=networks)
    gaussian = vae.init_networks(
        jax.random.key(0), num_pixels=64, likelihood="gaussian"
    )
    assert vae_evaluation.elbo(
        jax.random.key(0), {}, counts, networks=gaussian
    ).shape == (3,)


def test_nan_pixels_are_refused(networks):
    x = np.zeros((4, 64))
    x[2, 10] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite; got 1 NaN .* row 2"):
        vae_training.train(jax.random.key(0), x, networks=networks, num_epochs=1)
    with pytest.raises(ValueError, match="x must be finite"):
        handlers.trace(handlers.seed(vae.guide, 0)).get_trace(x, networks=networks)


def test_bad_settings_name_the_argument(networks):
    x = np.zeros((10, 64))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        vae.init_networks(jax.random.key(0), num_pixels=64, likelihood="poisson")
    with pytest.raises(ValueError, match="latent_dims must be an int >= 1"):
        vae.init_networks(jax.random.key(0), num_pixels=64, latent_dims=0)
    with pytest.raises(ValueError, match="beta must be a positive"):
        handlers.trace(handlers.seed(vae.model, 0)).get_trace(
            x, networks=networks, beta=-1.0
        )
    with pytest.raises(ValueError, match="batch_size must be at most .*10.*got 11"):
        vae_training.train(
            jax.random.key(0), x, networks=networks, num_epochs=1, batch_size=11
        )
    with pytest.raises(ValueError, match="loss must be one of"):
        vae_training.train(
            jax.random.key(0),
            x,
            networks=networks,
            num_epochs=1,
            loss="kl",
            batch_size=5,
        )
    with pytest.raises(ValueError, match="x must be given to the guide"):
        vae.guide(networks=networks)
    with pytest.raises(TypeError, match="networks must be a vae.Networks"):
        vae.model(x, networks={"encoder": None})


# --- the trained VAE as an InferenceResult -----------------------------------------


def test_inference_result_holds_the_run_and_draws_from_the_encoder(trained, digits):
    result, _ = trained
    x = digits[1][:3]
    num_samples = 400
    inference = vae_result.inference_result(
        jax.random.key(7), result, x, num_samples=num_samples, seconds=1.5
    )
    assert inference.method == "svi" and inference.timings["total"] == 1.5
    assert inference.samples["z"].shape == (1, num_samples, 3, 2)
    np.testing.assert_array_equal(
        inference.sample_stats["elbo"][0], -result.step_loss.ravel()
    )
    np.testing.assert_array_equal(
        inference.sample_stats["test_elbo"][0], result.test_elbo
    )
    learned = inference.groups["learned_params"]
    assert any(name.startswith("decoder$params") for name in learned)
    assert any(name.startswith("encoder$params") for name in learned)
    assert all(value.shape[0] == 1 for value in learned.values())
    inference.to_datatree()  # every name is a valid DataTree variable
    assert {f.name for f in pgm.check(inference)} == {"elbo_settled", "pareto_khat"}
    # The draws are those of q(z | x): their means match the encoder's means.
    loc, scale = vae_evaluation.encode(result.params, x, networks=result.networks)
    z = inference.samples["z"][0]
    se = np.asarray(scale) / np.sqrt(num_samples)
    assert np.all(np.abs(z.mean(axis=0) - np.asarray(loc)) <= Z * se)
    # E_q[log w] summed over the images equals the same expectation estimated by
    # vae_evaluation.log_weights from independent draws, within Monte Carlo error.
    # (Dropping the prior term log p(z) would shift it by O(1) nats per image.)
    log_w = np.asarray(inference.sample_stats["log_weight"][0], np.float64)
    other = np.asarray(
        vae_evaluation.log_weights(
            jax.random.key(8),
            result.params,
            x,
            networks=result.networks,
            num_samples=num_samples,
        ),
        np.float64,
    ).sum(axis=1)
    assert abs(log_w.mean() - other.mean()) <= Z * np.hypot(_se(log_w), _se(other))


def test_inference_result_refuses_bad_input(trained, digits):
    result, _ = trained
    with pytest.raises(TypeError, match="training must be the TrainingResult"):
        vae_result.inference_result(jax.random.key(0), result._asdict(), digits[1][:2])
    with pytest.raises(ValueError, match="x_test|x"):
        vae_result.inference_result(jax.random.key(0), result, digits[1][:2, :10])
    with pytest.raises(ValueError, match="num_samples"):
        vae_result.inference_result(
            jax.random.key(0), result, digits[1][:2], num_samples=0
        )


# --- the generic entry point ------------------------------------------------------


def test_fit_runs_the_vae_full_batch(digits, networks):
    result = pgm.fit(
        jax.random.key(0),
        vae.model,
        data={"x": digits[0][:100], "networks": networks},
        method="svi",
        guide=vae.guide,
        loss="meanfield_elbo",
        num_steps=300,
        num_samples=100,
        learning_rate=3e-3,
        progress_bar=False,
        checks=False,
    )
    elbo = np.asarray(result.sample_stats["elbo"]).ravel()
    first, last = elbo[:50], elbo[-50:]
    assert last.mean() - first.mean() > Z * np.hypot(_se(first), _se(last))
    assert any(
        name.startswith("decoder$params") for name in result.groups["learned_params"]
    )


# --- slow: recovery of the maximum-likelihood linear-Gaussian model -----------------


@pytest.mark.slow
def test_affine_gaussian_vae_reaches_the_ppca_maximum_likelihood():
    # With affine networks and one noise scale the VAE is probabilistic PCA, whose
    # maximum log-likelihood is closed-form (Tipping and Bishop, 1999), and whose
    # ELBO optimum with a diagonal q is the PPCA maximum (Lucas et al., 2019).
    # Tolerance: the trained decoder must lie in the 99.9% likelihood-ratio
    # confidence region of the MLE, 2 (l_ML - l) <= chi2_k(0.999), with k the
    # number of free PPCA parameters; l <= l_ML holds exactly.
    num_pixels, latent_dims, num_points = 8, 2, 2000
    rng = np.random.default_rng(0)
    w = rng.normal(size=(num_pixels, latent_dims)) * np.array([2.0, 1.0])
    x = rng.normal(size=(num_points, latent_dims)) @ w.T + rng.normal(size=num_pixels)
    x = (x + 0.5 * rng.normal(size=x.shape)).astype(np.float32)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    noise = eigenvalues[latent_dims:].mean()
    maximum = (
        -num_points
        / 2
        * (
            num_pixels * np.log(2 * np.pi)
            + np.log(eigenvalues[:latent_dims]).sum()
            + (num_pixels - latent_dims) * np.log(noise)
            + num_pixels
        )
    )
    networks = vae.init_networks(
        jax.random.key(0),
        num_pixels=num_pixels,
        latent_dims=latent_dims,
        num_hidden_layers=0,
        likelihood="gaussian",
    )
    num_epochs = 1000
    schedule = optax.exponential_decay(3e-2, num_epochs * 10, decay_rate=0.01)
    result = vae_training.train(
        jax.random.key(1),
        x,
        networks=networks,
        num_epochs=num_epochs,
        batch_size=200,
        optimizer=optax.adam(schedule),
        progress_bar=False,
    )
    layer = result.networks.decoder.mlp.layers[0]
    weight = np.asarray(layer.weight, dtype=np.float64)
    scale = float(np.exp(result.networks.decoder.log_scale))
    covariance = weight @ weight.T + scale**2 * np.eye(num_pixels)
    log_likelihood = (
        stats.multivariate_normal(np.asarray(layer.bias, dtype=np.float64), covariance)
        .logpdf(x)
        .sum()
    )
    free = (
        num_pixels * latent_dims + num_pixels + 1 - latent_dims * (latent_dims - 1) // 2
    )
    assert log_likelihood <= maximum + 1e-6 * abs(maximum)
    assert 2 * (maximum - log_likelihood) <= stats.chi2.ppf(0.999, free)
