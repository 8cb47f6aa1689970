r"""Label switching in mixture posteriors: relabelling and cross-chain agreement.

The mixture likelihood is invariant to the :math:`K!` permutations of the component
labels (seed ``003_02afaf35b30b64a9.txt``, §2.2: "for each possible assignment,
there are :math:`K!` different solutions"), so a sampler may visit several labellings
and different chains may settle on different ones. :func:`relabel` aligns every
draw to a common reference by solving, per draw, the assignment problem

.. math::

    \sigma^{(s)} = \arg\min_{\sigma \in S_K} \sum_{j=1}^K
    \lVert \bar\mu_j - \mu^{(s)}_{\sigma(j)} \rVert^2

with the Hungarian algorithm, and updates the reference :math:`\bar\mu` to the mean
of the aligned draws until the permutations stop changing (a k-means in permutation
space, in the spirit of Stephens' relabelling algorithm). :func:`label_agreement`
reports whether chains agree on the labels and how often each chain switches.

References
----------
.. [1] M. Stephens, "Dealing with label switching in mixture models", JRSS B 62
   (2000).
.. [2] H. W. Kuhn, "The Hungarian method for the assignment problem", Naval
   Research Logistics Quarterly 2 (1955).
"""

from typing import NamedTuple

import numpy as np
from jax.typing import ArrayLike
from scipy.optimize import linear_sum_assignment

__all__ = [
    "LabelAgreement",
    "Relabelling",
    "apply_permutations",
    "label_agreement",
    "relabel",
]


class Relabelling(NamedTuple):
    """Output of :func:`relabel`.

    Attributes
    ----------
    mu : numpy.ndarray of shape (..., num_components, dim)
        The relabelled means:
        ``mu[..., j, :] = mu_draws[..., permutations[..., j], :]``.
    permutations : numpy.ndarray of shape (..., num_components)
        For each draw, the original label of the new component ``j``; pass it to
        :func:`apply_permutations` to relabel other component-indexed draws.
    reference : numpy.ndarray of shape (num_components, dim)
        The reference means the draws were aligned to.
    num_iterations : int
        Alignment rounds run before the permutations stopped changing.
    """

    mu: np.ndarray
    permutations: np.ndarray
    reference: np.ndarray
    num_iterations: int


class LabelAgreement(NamedTuple):
    """Output of :func:`label_agreement`.

    Attributes
    ----------
    chains_agree : bool
        Whether every chain's usual labelling maps to the same components.
    chain_permutations : numpy.ndarray of shape (num_chains, num_components)
        For each chain, its usual (modal) label of common component ``j``.
    switch_fraction : numpy.ndarray of shape (num_chains,)
        Fraction of a chain's draws whose labelling differs from its usual one.
    reference : numpy.ndarray of shape (num_components, dim)
        Common reference means (those of the first chain).
    """

    chains_agree: bool
    chain_permutations: np.ndarray
    switch_fraction: np.ndarray
    reference: np.ndarray


def _check_draws(mu_draws: ArrayLike, min_ndim: int = 2) -> np.ndarray:
    mu_draws = np.asarray(mu_draws, dtype=float)
    if mu_draws.ndim < min_ndim or not np.all(np.isfinite(mu_draws)):
        raise ValueError(
            f"mu_draws must be a finite array with at least {min_ndim} dimensions, "
            f"(..., num_components, dim); got shape {mu_draws.shape}. Pass the draws "
            "of the 'mu' site, e.g. result.samples['mu']."
        )
    return mu_draws


def _align(draws: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-draw Hungarian assignment of draws (S, K, d) to reference (K, d)."""
    permutations = np.empty(draws.shape[:2], dtype=np.int64)
    for index, draw in enumerate(draws):
        cost = np.sum((reference[:, None, :] - draw[None, :, :]) ** 2, axis=-1)
        _, permutations[index] = linear_sum_assignment(cost)
    return permutations


def relabel(
    mu_draws: ArrayLike,
    *,
    reference: ArrayLike | None = None,
    max_iterations: int = 20,
) -> Relabelling:
    r"""Relabel mixture draws by aligning each draw's means to a reference.

    Parameters
    ----------
    mu_draws : array_like of shape (..., num_components, dim)
        Draws of the component means, e.g. shaped (chain, draw, K, d).
    reference : array_like of shape (num_components, dim), optional
        Fixed reference means (e.g. an EM or CAVI fit). By default it starts at the
        mean of the draws each sorted by their first coordinate and is refined.
    max_iterations : int
        Most alignment rounds when the reference is refined.

    Returns
    -------
    Relabelling
        The relabelled means, the permutations and the reference.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import gmm_labels
    >>> draws = np.array([[[0.0], [5.0]], [[5.1], [0.1]]])
    >>> gmm_labels.relabel(draws).permutations.tolist()
    [[0, 1], [1, 0]]
    """
    mu_draws = _check_draws(mu_draws)
    *batch, num_components, dim = mu_draws.shape
    flat = mu_draws.reshape(-1, num_components, dim)
    refine = reference is None
    if refine:
        order = np.argsort(flat[..., 0], axis=-1)
        reference = np.take_along_axis(flat, order[..., None], axis=-2).mean(0)
    reference = np.asarray(reference, dtype=float)
    if reference.shape != (num_components, dim):
        raise ValueError(
            f"reference must have shape {(num_components, dim)}; got "
            f"{reference.shape}. Pass one mean per component, or None."
        )
    permutations = _align(flat, reference)
    iteration = 1
    while refine and iteration < max_iterations:
        aligned = np.take_along_axis(flat, permutations[..., None], axis=-2)
        reference = aligned.mean(0)
        updated = _align(flat, reference)
        iteration += 1
        if np.array_equal(updated, permutations):
            break
        permutations = updated
    relabelled = np.take_along_axis(flat, permutations[..., None], axis=-2)
    shape = (*batch, num_components)
    return Relabelling(
        relabelled.reshape(mu_draws.shape),
        permutations.reshape(shape),
        reference,
        iteration,
    )


def apply_permutations(
    values: ArrayLike, permutations: ArrayLike, *, axis: int = -1
) -> np.ndarray:
    """Reorder the component axis of per-draw values by :func:`relabel`'s permutations.

    Parameters
    ----------
    values : array_like
        Component-indexed draws whose leading dimensions match ``permutations``'s,
        e.g. ``pi`` (..., K) with ``axis=-1``, ``mu`` (..., K, d) with ``axis=-2``,
        covariances (..., K, d, d) with ``axis=-3``, responsibilities (..., N, K)
        with ``axis=-1``.
    permutations : array_like of shape (..., num_components)
        From :attr:`Relabelling.permutations`.
    axis : int
        The component axis of ``values`` (negative, counted from the end).

    Returns
    -------
    numpy.ndarray
        ``values`` with ``out[..., j, ...] = values[..., permutations[..., j], ...]``.
    """
    values, permutations = np.asarray(values), np.asarray(permutations)
    draw_shape = permutations.shape[:-1]
    if (
        not -values.ndim <= axis < 0
        or values.shape[: len(draw_shape)] != draw_shape
        or values.shape[axis] != permutations.shape[-1]
        or values.ndim + axis < len(draw_shape)
    ):
        raise ValueError(
            f"values must have the draw dimensions {draw_shape} first and "
            f"{permutations.shape[-1]} components on the negative axis {axis}; got "
            f"values of shape {values.shape} and axis={axis}."
        )
    moved = np.moveaxis(values, axis, -1)
    padding = (1,) * (moved.ndim - permutations.ndim)
    index = permutations.reshape(draw_shape + padding + permutations.shape[-1:])
    index = np.broadcast_to(index, moved.shape)
    return np.moveaxis(np.take_along_axis(moved, index, axis=-1), -1, axis)


def label_agreement(mu_draws: ArrayLike) -> LabelAgreement:
    """Check whether chains agree on the component labels.

    Each chain is relabelled on its own (:func:`relabel`); its modal permutation is
    its usual labelling, and ``switch_fraction`` counts the draws that differ from
    it. The chains' references are then aligned to the first chain's by the
    Hungarian algorithm, giving, per chain, its usual label of each common
    component. Chains agree when these labels are the same for every chain; if not,
    :func:`apply_permutations` with ``chain_permutations[c]`` (or :func:`relabel` on
    all draws) brings them to common labels before pooling.

    Parameters
    ----------
    mu_draws : array_like of shape (num_chains, num_draws, num_components, dim)
        Draws of the component means, per chain.

    Returns
    -------
    LabelAgreement
        Whether chains agree, the per-chain labellings and switch fractions.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_pgm.models import gmm_labels
    >>> chain = np.array([[[0.0], [5.0]], [[0.1], [5.1]]])
    >>> report = gmm_labels.label_agreement(np.stack([chain, chain[:, ::-1]]))
    >>> bool(report.chains_agree), report.chain_permutations.tolist()
    (False, [[0, 1], [1, 0]])
    """
    mu_draws = _check_draws(mu_draws, min_ndim=4)
    if mu_draws.ndim != 4:
        raise ValueError(
            f"mu_draws must have shape (num_chains, num_draws, num_components, dim); "
            f"got {mu_draws.shape}."
        )
    num_chains, _, num_components, _ = mu_draws.shape
    references, modal, switch_fraction = [], [], []
    for chain in mu_draws:
        result = relabel(chain)
        patterns, counts = np.unique(result.permutations, axis=0, return_counts=True)
        modal.append(patterns[np.argmax(counts)])
        switch_fraction.append(1.0 - counts.max() / chain.shape[0])
        references.append(result.reference)
    chain_permutations = np.empty((num_chains, num_components), dtype=np.int64)
    for index, reference in enumerate(references):
        cost = np.sum((references[0][:, None, :] - reference[None, :, :]) ** 2, axis=-1)
        _, to_common = linear_sum_assignment(cost)
        chain_permutations[index] = modal[index][to_common]
    agree = bool(np.all(chain_permutations == chain_permutations[:1]))
    return LabelAgreement(
        agree, chain_permutations, np.asarray(switch_fraction), references[0]
    )
