r"""Bayesian logistic regression, with the seed's Newton-Laplace algorithm.

For points :math:`x_n \in \mathbb{R}^d` with labels :math:`y_n \in \{0, 1\}`,
:math:`n = 1, \dots, N`, the generative process generalises the one-dimensional
model of seed ``003_02afaf35b30b64a9.txt``, Example 3.4, to :math:`d` features
with an intercept:

.. math::

    \tau &\sim \mathrm{HalfNormal}(s_w) \quad
        \text{(only with ``hierarchical=True``; otherwise } \tau = s_w), \\
    b &\sim \mathcal{N}(0, s_b^2), \\
    w_j \mid \tau &\sim \mathcal{N}(0, \tau^2), \qquad j = 1, \dots, d, \\
    y_n \mid w, b &\sim \mathrm{Bernoulli}\bigl(\sigma(w^\top x_n + b)\bigr),

with :math:`\sigma(t) = (1 + e^{-t})^{-1}`, :math:`s_w` = ``prior_scale`` and
:math:`s_b` = ``intercept_scale``. Sites: ``tau`` (hierarchical only), ``b``,
``w`` (plate ``feature``) and ``y`` (plate ``point``).

Writing :math:`\theta = (b, w) \in \mathbb{R}^{d+1}`, :math:`\tilde x_n = (1, x_n)`
and :math:`\Lambda = \mathrm{diag}(s_b^{-2}, s_w^{-2}, \dots, s_w^{-2})`, the
gradient and Hessian of the log posterior (the seed's eqs. (3.4) and (3.5) in
:math:`d + 1` dimensions) are

.. math::

    \nabla \log p(\theta \mid x, y) &= \tilde X^\top (y - \sigma(\tilde X\theta))
        - \Lambda \theta, \\
    \nabla^2 \log p(\theta \mid x, y) &= -\tilde X^\top S \tilde X - \Lambda,
        \qquad S = \mathrm{diag}\bigl(\sigma(\tilde x_n^\top\theta)
        (1 - \sigma(\tilde x_n^\top\theta))\bigr),

and :func:`laplace_newton` runs the seed's Newton iteration on them to give the
Laplace approximation of section 3.3, :math:`q(\theta) = \mathcal N(\hat\theta,
H^{-1})` with :math:`H = \tilde X^\top S \tilde X + \Lambda` at the mode. Any method
of :func:`numpyro_pgm.fit` also applies to :func:`model`; :func:`predict_proba`
turns the draws of any of them into posterior predictive probabilities.

Inputs are checked when they are concrete: ``X`` must be a finite 2-D array, ``y``
must hold 0/1 labels, one per row of ``X``, no column of ``X`` may be constant
when ``y`` is observed (it would duplicate the intercept), and the scales must be
positive. Inside ``jit`` (traced values) the model skips these checks.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: section 3.3, Example 3.4 (Laplace approximation
   for Bayesian logistic regression, eqs. (3.4)-(3.5)), Example 3.6 (mean-field VI
   underestimates marginal variances).
.. [2] C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer (2006),
   section 4.5.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro import handlers
from scipy.special import expit

from numpyro_pgm.results import InferenceResult

from ._logistic_checks import _check_features, _validate
from .logistic_laplace import (
    LaplaceFit,
    laplace_newton,
    log_posterior,
    log_posterior_gradient,
    log_posterior_hessian,
)

__all__ = [
    "LaplaceFit",
    "laplace_newton",
    "log_posterior",
    "log_posterior_gradient",
    "log_posterior_hessian",
    "model",
    "predict_proba",
    "predictive_draws",
    "simulate",
]

Array = jax.Array

# ---------------------------------------------------------------------------- model


def model(
    X: ArrayLike,
    y: ArrayLike | None = None,
    *,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
    hierarchical: bool = False,
) -> None:
    r"""Bayesian logistic regression with an intercept (seed Example 3.4).

    .. math::

        b \sim \mathcal{N}(0, s_b^2), \quad
        w_j \sim \mathcal{N}(0, \tau^2), \quad
        y_n \sim \mathrm{Bernoulli}(\sigma(w^\top x_n + b)),

    with :math:`\tau = s_w`, or :math:`\tau \sim \mathrm{HalfNormal}(s_w)` when
    ``hierarchical=True``.

    Parameters
    ----------
    X : array_like of shape (num_points, num_features)
        Features; standardise them so that a unit ``prior_scale`` is sensible.
    y : array_like of shape (num_points,), optional
        Labels in {0, 1}; ``None`` samples them (the model is generative).
    prior_scale : float
        :math:`s_w`: the prior standard deviation of each weight, or the scale of
        the half-normal prior on :math:`\tau` when ``hierarchical=True``.
    intercept_scale : float
        :math:`s_b`: the prior standard deviation of the intercept.
    hierarchical : bool
        Learn the weights' prior scale :math:`\tau` (site ``tau``).

    Examples
    --------
    >>> import jax, numpy as np
    >>> from numpyro import handlers
    >>> from numpyro_pgm.models import logistic
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, -1.0]])
    >>> trace = handlers.trace(handlers.seed(logistic.model, 0)).get_trace(X)
    >>> trace["w"]["value"].shape, trace["y"]["value"].shape
    ((2,), (3,))
    """
    _validate(X, y, prior_scale, intercept_scale)
    X = jnp.asarray(X)
    num_points, num_features = X.shape
    if hierarchical:
        tau = numpyro.sample("tau", dist.HalfNormal(prior_scale))
    else:
        tau = prior_scale
    b = numpyro.sample("b", dist.Normal(0.0, intercept_scale))
    with numpyro.plate("feature", num_features):
        w = numpyro.sample("w", dist.Normal(0.0, tau))
    logits = X @ w + b
    with numpyro.plate("point", num_points):
        numpyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def simulate(
    rng_key: Array,
    *,
    num_points: int,
    num_features: int,
    correlation: float = 0.0,
    prior_scale: float = 1.0,
    intercept_scale: float = 5.0,
    hierarchical: bool = False,
    w: ArrayLike | None = None,
    b: float | None = None,
) -> dict[str, np.ndarray]:
    r"""Draw features, latents and labels by ancestral sampling of :func:`model`.

    The features are standard normal with equal pairwise correlation
    :math:`\rho`: :math:`x_n = \sqrt{1 - \rho}\, z_n + \sqrt{\rho}\, u_n \mathbf 1`
    with :math:`z_n \sim \mathcal N(0, I_d)` and :math:`u_n \sim \mathcal N(0, 1)`,
    so :math:`\mathrm{Cov}(x_n) = (1 - \rho) I + \rho \mathbf 1 \mathbf 1^\top`.
    The latents are drawn from the prior unless ``w`` and/or ``b`` are given.

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key.
    num_points, num_features : int
        :math:`N` and :math:`d`.
    correlation : float
        :math:`\rho \in [0, 1)`, the correlation between any two features.
    prior_scale, intercept_scale, hierarchical
        As in :func:`model`.
    w : array_like of shape (num_features,), optional
        True weights; drawn from the prior when ``None``.
    b : float, optional
        True intercept; drawn from the prior when ``None``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``X`` (num_points, num_features) float64, ``y`` (num_points,) int64, ``w``
        (num_features,), ``b`` () and, when hierarchical, ``tau`` ().

    Examples
    --------
    >>> import jax
    >>> from numpyro_pgm.models import logistic
    >>> data = logistic.simulate(jax.random.key(0), num_points=5, num_features=2)
    >>> sorted(data), data["X"].shape
    (['X', 'b', 'w', 'y'], (5, 2))
    """
    for name, value in (("num_points", num_points), ("num_features", num_features)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    if not 0.0 <= correlation < 1.0:
        raise ValueError(
            f"correlation must lie in [0, 1) so that the features' covariance is "
            f"positive definite; got {correlation!r}."
        )
    feature_key, model_key = jax.random.split(rng_key)
    noise_key, shared_key = jax.random.split(feature_key)
    independent = jax.random.normal(noise_key, (num_points, num_features))
    shared = jax.random.normal(shared_key, (num_points, 1))
    X = np.asarray(
        np.sqrt(1.0 - correlation) * np.asarray(independent, dtype=np.float64)
        + np.sqrt(correlation) * np.asarray(shared, dtype=np.float64)
    )
    given = {}
    if w is not None:
        given["w"] = jnp.asarray(w)
    if b is not None:
        given["b"] = jnp.asarray(b)
    conditioned = handlers.condition(handlers.seed(model, model_key), given)
    trace = handlers.trace(conditioned).get_trace(
        X,
        prior_scale=prior_scale,
        intercept_scale=intercept_scale,
        hierarchical=hierarchical,
    )
    out = {"X": X, "y": np.asarray(trace["y"]["value"], dtype=np.int64)}
    for name in ("w", "b", "tau"):
        if name in trace:
            out[name] = np.asarray(trace[name]["value"], dtype=np.float64)
    return out


# ----------------------------------------------------------------------- prediction


def _draws(result: InferenceResult | Mapping[str, ArrayLike]) -> tuple[Any, Any]:
    samples = result.samples if isinstance(result, InferenceResult) else result
    if not isinstance(samples, Mapping) or "w" not in samples or "b" not in samples:
        raise TypeError(
            "result must be an InferenceResult of numpyro_pgm.fit on "
            "logistic.model, or a mapping with draws 'w' (chain, draw, num_features) "
            f"and 'b' (chain, draw); got {type(result).__name__}"
            + (f" with keys {sorted(samples)}" if isinstance(samples, Mapping) else "")
            + "."
        )
    w = np.asarray(samples["w"], dtype=np.float64)
    b = np.asarray(samples["b"], dtype=np.float64)
    if w.ndim != 3 or b.shape != w.shape[:2]:
        raise ValueError(
            "draws must be shaped (chain, draw, num_features) for 'w' and (chain, "
            f"draw) for 'b'; got {w.shape} and {b.shape}."
        )
    return w, b


def predictive_draws(
    result: InferenceResult | Mapping[str, ArrayLike], X_new: ArrayLike
) -> np.ndarray:
    r"""Per-draw probabilities :math:`\sigma(w^{(s)\top} x + b^{(s)})` at new points.

    Parameters
    ----------
    result : InferenceResult or mapping
        A result of :func:`numpyro_pgm.fit` on :func:`model` (any method), or a
        mapping with draws ``w`` (chain, draw, num_features) and ``b`` (chain,
        draw), such as :meth:`LaplaceFit.sample`.
    X_new : array_like of shape (num_new, num_features)
        New points, transformed like the training features.

    Returns
    -------
    numpy.ndarray of shape (chain, draw, num_new)
        :math:`P(y = 1 \mid x, w^{(s)}, b^{(s)})` for every draw, in float64.
    """
    w, b = _draws(result)
    _check_features(X_new, "X_new")
    X_new = np.asarray(X_new, dtype=np.float64)
    if X_new.shape[1] != w.shape[-1]:
        raise ValueError(
            f"X_new has {X_new.shape[1]} column(s) but the model was fitted with "
            f"{w.shape[-1]} feature(s); pass the same columns, transformed the same "
            "way (e.g. standardised with the training means and sds)."
        )
    logits = np.einsum("cdk,nk->cdn", w, X_new) + b[..., None]
    return expit(logits)


def predict_proba(
    result: InferenceResult | Mapping[str, ArrayLike], X_new: ArrayLike
) -> np.ndarray:
    r"""Posterior predictive probability :math:`P(y = 1 \mid x, \mathcal D)`.

    .. math::

        P(y = 1 \mid x, \mathcal D) = \int \sigma(w^\top x + b)\,
        p(w, b \mid \mathcal D)\, dw\, db
        \approx \frac1S \sum_{s=1}^S \sigma(w^{(s)\top} x + b^{(s)}),

    averaged over every draw of every chain, whichever method produced them.

    Parameters
    ----------
    result : InferenceResult or mapping
        As in :func:`predictive_draws`.
    X_new : array_like of shape (num_new, num_features)
        New points.

    Returns
    -------
    numpy.ndarray of shape (num_new,)
        Probabilities of the class 1, in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import logistic
    >>> draws = {"w": np.zeros((1, 4, 2)), "b": np.zeros((1, 4))}
    >>> logistic.predict_proba(draws, np.ones((3, 2)))
    array([0.5, 0.5, 0.5])
    """
    return predictive_draws(result, X_new).mean(axis=(0, 1))
