r"""Held-out rating prediction for matrix factorisation, from any method's result.

For draws :math:`\theta^{(s)}` of the posterior (NUTS, Gibbs, SVI, Laplace, or the
CAVI factors of :mod:`.matrix_factorization_cavi`), the posterior predictive of an
unobserved entry is the mixture

.. math::

    p(R_{ij} \mid \mathcal O) \approx \frac1S \sum_s
    \mathcal N\bigl(R_{ij};\ \text{offset} + b_i^{(s)} + c_j^{(s)} +
    u_i^{(s)\top} v_j^{(s)},\ \sigma^{2(s)}\bigr);

:func:`predict` returns its mean, standard deviation and a central interval from
one predictive draw per posterior draw (seed ``004_cd8dd066ec9fb123.txt``,
"Example: Matrix factorization": "most entries of R are missing and we want to
predict them"). :func:`sample_posterior` turns a CAVI fit into draws laid out
like those of ``fit``, and :func:`score` gives the RMSE and interval coverage.

References
----------
.. [1] G. Louppe, *Foundations of Data Science*, Lecture 8, seed
   ``004_cd8dd066ec9fb123.txt``, "Example: Matrix factorization".
.. [2] T. Gneiting and A. E. Raftery, "Strictly proper scoring rules, prediction,
   and estimation", JASA 102 (2007) (interval coverage and width).
"""

from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from numpyro_pgm.results import InferenceResult

from .matrix_factorization import _MODEL_DEFAULTS
from .matrix_factorization_cavi import CAVIResult
from .matrix_factorization_gibbs import PRECISION_SITES

__all__ = ["RatingPrediction", "predict", "sample_posterior", "score"]

Array = jax.Array
_CHUNK = 2048


class RatingPrediction(NamedTuple):
    r"""Posterior predictive summaries of ratings, one entry per requested pair.

    Attributes
    ----------
    mean : numpy.ndarray of shape (num_pairs,)
        Posterior predictive mean.
    sd : numpy.ndarray of shape (num_pairs,)
        Posterior predictive standard deviation (factor uncertainty and noise).
    loc_sd : numpy.ndarray of shape (num_pairs,)
        Posterior standard deviation of the expected rating
        :math:`\text{offset} + b_i + c_j + u_i^\top v_j` (factor uncertainty
        only).
    lower, upper : numpy.ndarray of shape (num_pairs,)
        Central ``prob`` predictive interval (Monte Carlo quantiles).
    prob : float
        The interval's nominal probability.
    num_draws : int
        The number of posterior draws used.
    """

    mean: np.ndarray
    sd: np.ndarray
    loc_sd: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    prob: float
    num_draws: int


def _draws_and_settings(
    rng_key: Array, posterior: Any, num_draws: int | None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    settings: dict[str, Any] = {}
    if isinstance(posterior, CAVIResult):
        draws = sample_posterior(rng_key, posterior, num_draws or 1000)
        settings = {k: posterior.settings[k] for k in ("offset", "obs_scale")}
    elif isinstance(posterior, InferenceResult):
        draws = dict(posterior.samples)
        constant = posterior.groups.get("constant_data", {})
        settings = {
            k: float(constant[k]) for k in ("offset", "obs_scale") if k in constant
        }
    elif isinstance(posterior, Mapping):
        draws = dict(posterior)
    else:
        raise TypeError(
            "posterior must be an InferenceResult of numpyro_pgm.fit on "
            "matrix_factorization.model, a CAVIResult, or a mapping of draws shaped "
            f"(chain, draw, *site); got {type(posterior).__name__}."
        )
    missing = [s for s in ("user_factors", "item_factors") if s not in draws]
    if missing:
        raise ValueError(
            f"posterior has no draws of {missing}; it must come from "
            f"matrix_factorization.model (sites found: {sorted(draws)})."
        )
    return draws, settings


def _flat(draws: Mapping[str, Any], num_draws: int | None) -> dict[str, Array]:
    shape = np.shape(draws["user_factors"])
    if len(shape) != 4:
        raise ValueError(
            "user_factors draws must be shaped (chain, draw, num_factors, num_users); "
            f"got {shape}."
        )
    total = shape[0] * shape[1]
    keep = np.arange(total)
    if num_draws is not None and num_draws < total:
        keep = np.linspace(0, total - 1, num_draws).round().astype(int)
    return {
        k: jnp.asarray(np.reshape(v, (total, *np.shape(v)[2:]))[keep])
        for k, v in draws.items()
    }


@partial(jax.jit, static_argnames=("prob",))
def _summaries(rng_key, draws, user, item, offset, obs_scale, prob):
    loc = offset + jnp.einsum(
        "skn,skn->sn",
        draws["user_factors"][:, :, user],
        draws["item_factors"][:, :, item],
    )
    if "user_bias" in draws:
        loc = loc + draws["user_bias"][:, user] + draws["item_bias"][:, item]
    if "obs_precision" in draws:
        scale = jax.lax.rsqrt(draws["obs_precision"])[:, None]
    else:
        scale = jnp.full((loc.shape[0], 1), obs_scale, loc.dtype)
    replicate = loc + scale * jax.random.normal(rng_key, loc.shape, loc.dtype)
    tail = (1.0 - prob) / 2.0
    lower, upper = jnp.quantile(replicate, jnp.array([tail, 1.0 - tail]), axis=0)
    loc_var = jnp.var(loc, axis=0)
    sd = jnp.sqrt(loc_var + jnp.mean(scale**2))
    return loc.mean(0), sd, jnp.sqrt(loc_var), lower, upper


def predict(
    rng_key: Array,
    posterior: InferenceResult | CAVIResult | Mapping[str, ArrayLike],
    user: ArrayLike,
    item: ArrayLike,
    *,
    prob: float = 0.9,
    num_draws: int | None = 1000,
    offset: float | None = None,
    obs_scale: float | None = None,
) -> RatingPrediction:
    r"""Predict ratings of (user, item) pairs with central predictive intervals.

    Parameters
    ----------
    rng_key : Array
        PRNG key for the predictive noise (and the CAVI draws).
    posterior : InferenceResult, CAVIResult or mapping
        A result of ``numpyro_pgm.fit`` on
        :func:`numpyro_pgm.models.matrix_factorization.model` (any method), a
        :class:`~numpyro_pgm.models.matrix_factorization_cavi.CAVIResult`, or draws
        shaped ``(chain, draw, *site)``.
    user, item : array_like of int, shape (num_pairs,)
        The pairs to predict, coded as in training.
    prob : float
        Probability of the central interval, in (0, 1).
    num_draws : int or None
        Posterior draws to use (evenly thinned); ``None`` uses all.
    offset, obs_scale : float, optional
        The model's fixed ``offset`` and ``obs_scale``. Default: the values the
        result was fitted with (its constant data, or the CAVI settings), else
        the model defaults. ``obs_scale`` is ignored when the draws contain
        ``obs_precision``.

    Returns
    -------
    RatingPrediction
        Mean, sd and interval per pair.

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import matrix_factorization as mf
    >>> from numpyro_pgm.models.matrix_factorization_cavi import cavi
    >>> from numpyro_pgm.models.matrix_factorization_predict import predict
    >>> sim = mf.simulate(jax.random.key(0), num_users=20, num_items=15,
    ...                   num_factors=2, num_ratings=150)
    >>> fit = cavi(jax.random.key(1), sim["user"], sim["item"], sim["rating"],
    ...            num_users=20, num_items=15, num_factors=2)
    >>> out = predict(jax.random.key(2), fit, [0, 1], [3, 4])
    >>> out.mean.shape, bool((out.lower < out.upper).all())
    ((2,), True)
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must lie in (0, 1); got {prob!r}. Pass e.g. 0.9.")
    if num_draws is not None and (
        isinstance(num_draws, bool) or not isinstance(num_draws, int) or num_draws < 2
    ):
        raise ValueError(f"num_draws must be an int >= 2 or None; got {num_draws!r}.")
    draw_key, noise_key = jax.random.split(rng_key)
    draws, settings = _draws_and_settings(draw_key, posterior, num_draws)
    flat = _flat(draws, num_draws)
    num_users = flat["user_factors"].shape[-1]
    num_items = flat["item_factors"].shape[-1]
    pairs = []
    for name, value, size in (("user", user, num_users), ("item", item, num_items)):
        array = np.asarray(value)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ValueError(
                f"{name} must be a 1-D integer array of codes; got shape "
                f"{array.shape} and dtype {array.dtype}."
            )
        if array.size and (array.min() < 0 or array.max() >= size):
            raise ValueError(
                f"{name} holds codes outside [0, {size}) (the model was fitted with "
                f"{size} {name}s); found {array.min()}..{array.max()}. Use the "
                "training codes; new users or items need refitting."
            )
        pairs.append(array)
    if pairs[0].shape != pairs[1].shape:
        raise ValueError(
            f"user and item must have the same length; got {pairs[0].shape} and "
            f"{pairs[1].shape}."
        )
    offset = (
        settings.get("offset", _MODEL_DEFAULTS["offset"]) if offset is None else offset
    )
    obs_scale = (
        settings.get("obs_scale", _MODEL_DEFAULTS["obs_scale"])
        if obs_scale is None
        else obs_scale
    )
    num_pairs = pairs[0].size
    pieces = []
    for index, start in enumerate(range(0, num_pairs, _CHUNK)):
        rows = np.arange(start, min(start + _CHUNK, num_pairs))
        padded = np.resize(rows, _CHUNK) if num_pairs > _CHUNK else rows
        out = _summaries(
            jax.random.fold_in(noise_key, index),
            flat,
            jnp.asarray(pairs[0][padded]),
            jnp.asarray(pairs[1][padded]),
            float(offset),
            float(obs_scale),
            float(prob),
        )
        pieces.append([np.asarray(o)[: rows.size] for o in out])
    if pieces:
        mean, sd, loc_sd, lower, upper = (
            np.concatenate(p) for p in zip(*pieces, strict=True)
        )
    else:
        mean = sd = loc_sd = lower = upper = np.zeros(0)
    return RatingPrediction(
        mean, sd, loc_sd, lower, upper, float(prob), int(flat["user_factors"].shape[0])
    )


def score(prediction: RatingPrediction, rating: ArrayLike) -> dict[str, float]:
    """Root mean squared error, interval coverage and width against true ratings.

    Parameters
    ----------
    prediction : RatingPrediction
        Output of :func:`predict`.
    rating : array_like of shape (num_pairs,)
        The held-out ratings of the same pairs.

    Returns
    -------
    dict
        ``rmse`` (of the predictive mean), ``mae``, ``coverage`` (fraction inside
        the interval, to compare with ``prob``) and ``width`` (mean interval
        width).
    """
    rating = np.asarray(rating, dtype=float)
    if rating.shape != prediction.mean.shape:
        raise ValueError(
            f"rating must have the shape of the prediction {prediction.mean.shape}; "
            f"got {rating.shape}."
        )
    error = prediction.mean - rating
    inside = (rating >= prediction.lower) & (rating <= prediction.upper)
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "coverage": float(np.mean(inside)),
        "width": float(np.mean(prediction.upper - prediction.lower)),
    }


def sample_posterior(
    rng_key: Array, result: CAVIResult, num_samples: int = 1000
) -> dict[str, np.ndarray]:
    r"""Draw from the fitted :math:`q`, laid out like ``fit`` draws.

    Parameters
    ----------
    rng_key : Array
        PRNG key.
    result : CAVIResult
        Output of :func:`cavi`.
    num_samples : int
        Number of draws.

    Returns
    -------
    dict of str to numpy.ndarray
        The model's latent sites shaped ``(1, num_samples, *site)``:
        ``user_factors`` ``(1, S, num_factors, num_users)`` (factor-major, as in
        the model), ``item_factors``, and the biases and precisions when the model
        has them; usable wherever a result's ``samples`` is.
    """
    if not isinstance(result, CAVIResult):
        raise TypeError(f"result must be a CAVIResult; got {type(result).__name__}.")
    if (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, int)
        or num_samples < 1
    ):
        raise ValueError(f"num_samples must be an int >= 1; got {num_samples!r}.")
    settings = result.settings
    draws = _sample_q(
        rng_key,
        result.user_mean,
        result.user_cov,
        result.item_mean,
        result.item_cov,
        result.precision_shape,
        result.precision_rate,
        num_samples=num_samples,
        num_factors=settings["num_factors"],
        biases=settings["biases"],
        hyperprior=settings["hyperprior"],
    )
    return {name: np.asarray(value)[None] for name, value in draws.items()}


@partial(
    jax.jit, static_argnames=("num_samples", "num_factors", "biases", "hyperprior")
)
def _sample_q(
    rng_key,
    user_mean,
    user_cov,
    item_mean,
    item_cov,
    precision_shape,
    precision_rate,
    *,
    num_samples,
    num_factors,
    biases,
    hyperprior,
):
    keys = jax.random.split(rng_key, 3)
    draws = {}
    for key, side, mean, cov in (
        (keys[0], "user", user_mean, user_cov),
        (keys[1], "item", item_mean, item_cov),
    ):
        cholesky = jnp.linalg.cholesky(cov)
        noise = jax.random.normal(key, (num_samples, *mean.shape), mean.dtype)
        free = mean + jnp.einsum("nab,snb->sna", cholesky, noise)
        draws[f"{side}_factors"] = jnp.swapaxes(free[..., :num_factors], -1, -2)
        if biases:
            draws[f"{side}_bias"] = free[..., num_factors]
    if hyperprior:
        gamma = jax.random.gamma(keys[2], precision_shape, (num_samples, 3))
        values = gamma / precision_rate
        for index, name in enumerate(PRECISION_SITES):
            draws[name] = values[:, index]
    return draws
