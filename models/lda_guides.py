r"""Variational guides for LDA: the seed's mean-field family and an amortised one.

The seed's family (``003_02afaf35b30b64a9.txt``, §3.5) is

.. math::

    q(\beta, \theta, z) = \prod_k \mathrm{Dirichlet}(\beta_k; \lambda_k)
    \prod_d \mathrm{Dirichlet}(\theta_d; \gamma_d) \prod_{d,n}
    \mathrm{Categorical}(z_{dn}; \phi_{dn}).

On :func:`numpyro_pgm.models.lda.model` the assignments are summed out exactly, so
:func:`mean_field_guide` holds only :math:`q(\beta) q(\theta)`: its ELBO
:math:`\mathbb{E}_q[\log p(c, \theta, \beta) - \log q(\theta, \beta)]` is at least
the seed's for every :math:`\phi` (the optimal :math:`q(z)` given
:math:`\theta, \beta` is the exact conditional, not a mean-field factor). The
parameters are ``beta_concentration`` (:math:`\lambda`, shape (K, V)) and
``theta_concentration`` (:math:`\gamma`, shape (D, K)), learned by SVI with
implicit reparameterisation gradients of the Dirichlet [2]_.
:func:`token_mean_field_guide` is the same family for
:func:`numpyro_pgm.models.lda.token_model`, where ``TraceEnum_ELBO`` sums
:math:`z` out.

:func:`amortised_guide` keeps :math:`q(\beta_k) = \mathrm{Dirichlet}(\lambda_k)` and
replaces the :math:`D \times K` free parameters :math:`\gamma` by an encoder, a
small multilayer perceptron :math:`f` from a document's counts to its factor, in
the form of the seed's document-level update
:math:`\gamma_{dk} = \alpha_k + \sum_n \phi_{dnk}`:

.. math::

    \gamma_d = \alpha + N_d\, e^{s(c_d)}\, \mathrm{softmax}(f(c_d)),

where :math:`\mathrm{softmax}(f)` plays the average :math:`\phi` and
:math:`s` (initialised at 0) lets the total concentration move away from the
CAVI value :math:`\sum_k \alpha_k + N_d`. This is ProdLDA's inference network [3]_
with the Dirichlet prior kept. The encoder is plain JAX (one hidden softplus
layer) with weights held in ``numpyro.param`` sites named ``encoder_*``, so it
trains on minibatches of documents (``subsample_size``) and gives
:math:`q(\theta_d)` for any new document at the cost of one forward pass
(:func:`amortised_concentration`).

Every guide has the signature of its model, as ``pgm.fit(..., guide=...)``
requires. The topic factors start at
:math:`\lambda_{kv} = \eta_v + (\bar c_v / K)\, g_{kv}` with
:math:`g_{kv} \sim \mathrm{Exponential}(1)` and :math:`\bar c_v` the corpus count of
word :math:`v`: the right scale with enough asymmetry to break the symmetry
between topics.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``: §3.5.
.. [2] M. Figurnov, S. Mohamed and A. Mnih, "Implicit reparameterization
   gradients", NeurIPS (2018).
.. [3] A. Srivastava and C. Sutton, "Autoencoding variational inference for topic
   models", ICLR (2017).
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import ArrayLike
from numpyro.distributions import constraints

from .lda import tokens_to_counts
from .lda_checks import _concentrations, _corpus, check_counts, check_num_topics

__all__ = [
    "amortised_concentration",
    "amortised_guide",
    "make_amortised_guide",
    "mean_field_guide",
    "token_mean_field_guide",
]

Array = jax.Array

DEFAULT_HIDDEN_SIZE = 64
"""Width of the encoder's hidden layer in :func:`amortised_guide`."""


class _FlooredDirichlet(dist.Dirichlet):
    r"""Dirichlet whose draws are clipped below at :math:`\text{tiny}^{3/4}`.

    NumPyro clips Dirichlet draws at the smallest normal float (tiny), so the
    cotangent :math:`(\gamma - 1)/\theta` of a log density at such a draw is
    about 1/tiny; scaled by a minibatch factor it overflows to inf, and inf times
    the zero path derivative of an underflowed draw gives NaN gradients. The floor
    (about 1e-29 in float32) leaves 8 orders of magnitude of headroom; it only moves
    components that are already far below float resolution of the others.
    """

    def sample(self, key, sample_shape=()):
        """Draw as NumPyro's Dirichlet, then apply the floor."""
        draws = super().sample(key, sample_shape)
        return jnp.maximum(draws, jnp.finfo(draws.dtype).tiny ** 0.75)


def _topic_factor(counts: Array | None, num_topics: int, eta: Array) -> Array:
    r"""Sample :math:`\beta \sim q(\beta) = \prod_k \mathrm{Dirichlet}(\lambda_k)`."""

    def init(rng_key):
        vocab_size = eta.shape[0]
        if counts is None:
            scale = jnp.ones(vocab_size)
        else:
            scale = jnp.asarray(counts, eta.dtype).sum(0) / num_topics
        noise = jax.random.exponential(rng_key, (num_topics, vocab_size), eta.dtype)
        return eta[None, :] + scale[None, :] * noise + 1e-2

    lam = numpyro.param("beta_concentration", init, constraint=constraints.positive)
    with numpyro.plate("topic", num_topics):
        return numpyro.sample("beta", _FlooredDirichlet(lam))


def mean_field_guide(
    counts: ArrayLike | None = None,
    *,
    num_topics: int,
    doc_lengths: ArrayLike | None = None,
    vocab_size: int | None = None,
    topic_concentration: ArrayLike | None = None,
    word_concentration: ArrayLike | None = None,
    subsample_size: int | None = None,
) -> None:
    r"""Mean-field guide of the seed for :func:`numpyro_pgm.models.lda.model`.

    .. math::

        q(\beta, \theta) = \prod_k \mathrm{Dirichlet}(\beta_k; \lambda_k)
        \prod_d \mathrm{Dirichlet}(\theta_d; \gamma_d),

    with :math:`z` summed out by the collapsed model. Parameters
    ``beta_concentration`` (:math:`\lambda`) and ``theta_concentration``
    (:math:`\gamma`, subsampled with the ``document`` plate).

    Parameters
    ----------
    counts, num_topics, doc_lengths, vocab_size, topic_concentration, \
word_concentration, subsample_size
        As in :func:`numpyro_pgm.models.lda.model`.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro import handlers
    >>> from numpyro_pgm.models import lda_guides
    >>> counts = np.array([[3, 0, 1, 2], [0, 2, 2, 1], [1, 1, 0, 4]])
    >>> with handlers.seed(rng_seed=0):
    ...     trace = handlers.trace(lda_guides.mean_field_guide).get_trace(
    ...         counts, num_topics=2)
    >>> trace["beta_concentration"]["value"].shape, trace["theta"]["value"].shape
    ((2, 4), (3, 2))

    Fit it with ``pgm.fit(rng_key, lda.model, data={"counts": counts,
    "num_topics": 2}, method="svi", guide=lda_guides.mean_field_guide)``.

    References
    ----------
    .. [1] F. Tobar, seed ``003_02afaf35b30b64a9.txt``, §3.5.
    """
    num_topics = check_num_topics(num_topics)
    counts, lengths, num_documents, vocab_size = _corpus(
        counts, doc_lengths, vocab_size
    )
    alpha, eta = _concentrations(
        num_topics, vocab_size, topic_concentration, word_concentration
    )
    _topic_factor(counts, num_topics, eta)
    _document_factor(lengths, num_documents, alpha, subsample_size, dim=None)


def _document_factor(
    lengths: Array, num_documents: int, alpha: Array, subsample_size, dim
) -> None:
    r""":math:`q(\theta_d) = \mathrm{Dirichlet}(\gamma_d)`, free per document."""

    def init(rng_key):
        shape = (num_documents, alpha.shape[0])
        noise = jax.random.uniform(rng_key, shape, alpha.dtype, 0.5, 1.5)
        per_topic = jnp.asarray(lengths, alpha.dtype)[:, None] / alpha.shape[0]
        return alpha[None, :] + per_topic * noise

    with numpyro.plate(
        "document", num_documents, subsample_size=subsample_size, dim=dim
    ):
        gamma = numpyro.param(
            "theta_concentration", init, constraint=constraints.positive, event_dim=1
        )
        numpyro.sample("theta", _FlooredDirichlet(gamma))


def token_mean_field_guide(
    words: ArrayLike | None = None,
    *,
    num_topics: int,
    doc_lengths: ArrayLike | None = None,
    vocab_size: int | None = None,
    topic_concentration: ArrayLike | None = None,
    word_concentration: ArrayLike | None = None,
) -> None:
    r"""Mean-field guide of the seed for :func:`numpyro_pgm.models.lda.token_model`.

    Same family and parameters as :func:`mean_field_guide`; :math:`z` is summed
    out by ``TraceEnum_ELBO`` (``pgm.fit`` picks it because ``z`` is enumerable).

    Parameters
    ----------
    words, num_topics, doc_lengths, vocab_size, topic_concentration, \
word_concentration
        As in :func:`numpyro_pgm.models.lda.token_model`.
    """
    num_topics = check_num_topics(num_topics)
    if words is None:
        raise ValueError(
            "words must be given to the guide; got None. Pass the observed tokens."
        )
    words = jnp.asarray(words)
    max_length, num_documents = words.shape
    lengths = (
        jnp.full(num_documents, max_length)
        if doc_lengths is None
        else jnp.asarray(doc_lengths)
    )
    alpha, eta = _concentrations(
        num_topics, int(vocab_size), topic_concentration, word_concentration
    )
    counts = None
    if not isinstance(words, jax.core.Tracer):
        counts = tokens_to_counts(words, lengths, int(vocab_size))
    _topic_factor(counts, num_topics, eta)
    _document_factor(lengths, num_documents, alpha, None, dim=-1)


def _init_weights(rng_key: Array, fan_in: int, fan_out: int, scale: float, dtype):
    return scale * jax.random.normal(rng_key, (fan_in, fan_out), dtype)


def _encoder_params(vocab_size: int, hidden_size: int, num_topics: int, dtype):
    r"""Declare the encoder's weights as ``numpyro.param`` sites.

    The input is a unit vector, so first-layer weights of scale 1 give
    pre-activations of scale 1; the second layer is scaled by
    :math:`1/\sqrt{\text{fan-in}}` (LeCun).
    """
    sizes = ((vocab_size, hidden_size, 1.0), (hidden_size, num_topics + 1, None))
    params = {}
    for layer, (fan_in, fan_out, scale) in enumerate(sizes):
        scale = 1.0 / np.sqrt(fan_in) if scale is None else scale
        params[f"encoder_w{layer}"] = numpyro.param(
            f"encoder_w{layer}",
            lambda key, i=fan_in, o=fan_out, s=scale: _init_weights(
                key, i, o, s, dtype
            ),
        )
        params[f"encoder_b{layer}"] = numpyro.param(
            f"encoder_b{layer}", jnp.zeros(fan_out, dtype)
        )
    return params


def _encode(params: Mapping[str, Array], counts: Array, alpha: Array) -> Array:
    r""":math:`\gamma_d = \alpha + N_d e^{s} \mathrm{softmax}(f(c_d))` per row.

    :math:`f` and :math:`s` read :math:`\log(1 + c_d)` scaled to unit length (a
    bounded input keeps Adam's steps on the first layer small).
    """
    counts = jnp.asarray(counts, alpha.dtype)
    features = jnp.log1p(counts)
    features = features / jnp.linalg.norm(features, axis=-1, keepdims=True)
    hidden = jax.nn.softplus(features @ params["encoder_w0"] + params["encoder_b0"])
    out = hidden @ params["encoder_w1"] + params["encoder_b1"]
    logits, log_scale = out[..., :-1], jnp.clip(out[..., -1:], -10.0, 10.0)
    lengths = counts.sum(-1, keepdims=True)
    return alpha + lengths * jnp.exp(log_scale) * jax.nn.softmax(logits, axis=-1)


def make_amortised_guide(hidden_size: int = DEFAULT_HIDDEN_SIZE) -> Callable:
    r"""Build an amortised guide for :func:`numpyro_pgm.models.lda.model`.

    Parameters
    ----------
    hidden_size : int
        Width of the encoder's hidden layer.

    Returns
    -------
    callable
        A guide with the model's signature: :math:`q(\beta_k) =
        \mathrm{Dirichlet}(\lambda_k)` and :math:`q(\theta_d) =
        \mathrm{Dirichlet}(\gamma_d)` with :math:`\gamma_d = \alpha + N_d
        e^{s(c_d)} \mathrm{softmax}(f(c_d))` from a one-hidden-layer encoder.
        Works with ``subsample_size`` (minibatches of documents).

    Examples
    --------
    >>> from numpyro_pgm.models import lda_guides
    >>> guide = lda_guides.make_amortised_guide(hidden_size=16)
    >>> guide.__name__
    'amortised_guide'
    """
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int):
        raise ValueError(
            f"hidden_size must be a positive integer; got {hidden_size!r}."
        )
    if hidden_size < 1:
        raise ValueError(f"hidden_size must be a positive integer; got {hidden_size}.")

    def amortised_guide(
        counts: ArrayLike | None = None,
        *,
        num_topics: int,
        doc_lengths: ArrayLike | None = None,
        vocab_size: int | None = None,
        topic_concentration: ArrayLike | None = None,
        word_concentration: ArrayLike | None = None,
        subsample_size: int | None = None,
    ) -> None:
        num_topics = check_num_topics(num_topics)
        if counts is None:
            raise ValueError(
                "counts must be given to the amortised guide (the encoder reads "
                "them); got None."
            )
        counts, _, num_documents, vocab_size = _corpus(counts, doc_lengths, vocab_size)
        alpha, eta = _concentrations(
            num_topics, vocab_size, topic_concentration, word_concentration
        )
        _topic_factor(counts, num_topics, eta)
        params = _encoder_params(vocab_size, hidden_size, num_topics, alpha.dtype)
        with numpyro.plate("document", num_documents, subsample_size=subsample_size):
            batch = numpyro.subsample(counts, event_dim=1)
            numpyro.sample("theta", _FlooredDirichlet(_encode(params, batch, alpha)))

    amortised_guide.__doc__ = (
        f"Amortised LDA guide with an encoder of {hidden_size} hidden units; see "
        "make_amortised_guide."
    )
    return amortised_guide


amortised_guide = make_amortised_guide()
amortised_guide.__doc__ = r"""Amortised guide for :func:`numpyro_pgm.models.lda.model`.

:math:`q(\beta_k) = \mathrm{Dirichlet}(\lambda_k)` and
:math:`q(\theta_d) = \mathrm{Dirichlet}(\alpha + N_d e^{s(c_d)}
\mathrm{softmax}(f(c_d)))` with a one-hidden-layer encoder of
``DEFAULT_HIDDEN_SIZE`` units (see :func:`make_amortised_guide`). Use it with
``subsample_size`` to train on minibatches of documents.
"""


def amortised_concentration(
    params: Mapping[str, Any],
    counts: ArrayLike,
    *,
    topic_concentration: ArrayLike | None = None,
) -> np.ndarray:
    r"""Compute the amortised :math:`\gamma_d` of every document from learned params.

    Parameters
    ----------
    params : mapping
        The encoder's parameters, ``encoder_w0``, ``encoder_b0``, ``encoder_w1``,
        ``encoder_b1`` (e.g. ``result.groups["learned_params"]`` from
        ``pgm.fit``; a leading restart axis, if any, is indexed at 0).
    counts : array_like of shape (num_documents, vocab_size)
        Documents to encode (training or new ones).
    topic_concentration : float or array_like, optional
        The :math:`\alpha` used in training (default :math:`1/K`).

    Returns
    -------
    ndarray of shape (num_documents, num_topics)
        :math:`\gamma_d`; the posterior mean of :math:`\theta_d` is
        :math:`\gamma_d / \sum_k \gamma_{dk}`.
    """
    counts = check_counts(counts)
    names = ("encoder_w0", "encoder_b0", "encoder_w1", "encoder_b1")
    missing = [name for name in names if name not in params]
    if missing:
        raise ValueError(
            f"params lacks {missing}; pass the learned parameters of an SVI fit "
            "with amortised_guide (result.groups['learned_params'])."
        )
    weights = {name: jnp.asarray(params[name]) for name in names}
    if weights["encoder_w0"].ndim == 3:
        weights = {name: value[0] for name, value in weights.items()}
    if weights["encoder_w0"].shape[0] != counts.shape[1]:
        raise ValueError(
            f"counts must have {weights['encoder_w0'].shape[0]} columns (the "
            f"encoder's vocabulary); got {counts.shape[1]}."
        )
    num_topics = weights["encoder_w1"].shape[1] - 1
    alpha, _ = _concentrations(num_topics, counts.shape[1], topic_concentration, None)
    return np.asarray(_encode(weights, counts, alpha))
