r"""Training a VAE by SVI on shuffled minibatches, with resumable checkpoints.

Each epoch draws a permutation of the :math:`N` training images, cuts it into
:math:`\lfloor N / B \rfloor` minibatches of :math:`B` images (the last
:math:`N \bmod B` images of that permutation sit the epoch out; a new
permutation brings them back next epoch) and takes one ``numpyro.infer.SVI``
step per minibatch; the steps of an epoch run as one compiled ``lax.scan``. The
step loss is :math:`-\frac{N}{B} \sum_{n \in \text{batch}}
\widehat{\mathcal L}_\beta(x_n)`, an unbiased estimate of the full-data negative
(:math:`\beta`-weighted) ELBO (seed ``003_02afaf35b30b64a9.txt``, section 6.3,
footnote 2: the ELBO is additive over images).

After every epoch the ELBO per image (:math:`\beta = 1`, analytic KL, one draw per
image) is evaluated on the training images and, if given, on held-out images; a
tqdm progress bar shows both. With ``checkpoint_path`` the run saves, after every
epoch, the SVI state (parameters, optimiser state and the SVI random key), the
number of epochs done, the histories and a fingerprint of the configuration, to a
``.npz`` file written to a temporary name and renamed over the old one
(``os.replace`` is atomic, so an interruption leaves either the old or the new
checkpoint, never half of one). A later call with the same arguments resumes from
it. Every random choice of epoch :math:`e` comes from keys derived from
``rng_key`` and :math:`e` alone (``fold_in``) or from the saved SVI key, so a
resumed run gives the same result as an uninterrupted one.

References
----------
.. [1] F. Tobar, *Probabilistic Generative Models*, lecture notes (2026), seed
   ``003_02afaf35b30b64a9.txt``, section 6.3 and Example 6.3 (a VAE trained over
   epochs).
.. [2] M. D. Hoffman, D. M. Blei, C. Wang and J. Paisley, "Stochastic variational
   inference", JMLR 14 (2013).
"""

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike
from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from numpyro.infer.elbo import ELBO
from numpyro.infer.svi import SVIState
from numpyro.optim import optax_to_numpyro
from tqdm.auto import tqdm

from numpyro_pgm import SVIError

from .vae import Networks, _check_beta, check_images, guide, model
from .vae_evaluation import elbo, with_params
from .vae_networks import _check_positive_int

__all__ = [
    "CHECKPOINT_VERSION",
    "LOSSES",
    "TrainingResult",
    "load_checkpoint",
    "train",
]

CHECKPOINT_VERSION = 1
"""Format version written into every checkpoint."""

LOSSES = ("meanfield_elbo", "elbo")
"""Loss names: ``TraceMeanField_ELBO`` (analytic KL) and ``Trace_ELBO`` (Monte
Carlo KL)."""

MSG_MISMATCH = (
    "checkpoint_path {path} was written by a different run: {fields} differ "
    "(checkpoint {saved}, now {now}). Resume with the same rng_key, data and "
    "settings, pass a new checkpoint_path, or resume=False to start over and "
    "overwrite it."
)


class TrainingResult(NamedTuple):
    r"""What :func:`train` returns.

    Attributes
    ----------
    params : dict
        Trained parameters: sites ``encoder$params`` and ``decoder$params``.
    networks : Networks
        The networks with the trained weights put in.
    svi_state : SVIState
        Final SVI state (optimiser state and SVI random key).
    step_loss : numpy.ndarray of shape (num_epochs, num_batches)
        Loss of every step divided by the number of training images: the negative
        :math:`\beta`-weighted ELBO per image, on that step's minibatch.
    train_elbo, test_elbo : numpy.ndarray of shape (num_epochs,)
        ELBO per image (:math:`\beta = 1`) after each epoch on the training and
        held-out images; ``test_elbo`` is all NaN without ``x_test``.
    num_epochs : int
        Epochs done.
    resumed_from : int
        Epochs loaded from the checkpoint (0 for a fresh run).
    """

    params: dict[str, Any]
    networks: Networks
    svi_state: SVIState
    step_loss: np.ndarray
    train_elbo: np.ndarray
    test_elbo: np.ndarray
    num_epochs: int
    resumed_from: int


def _resolve_loss(loss: Any, num_particles: int) -> tuple[ELBO, str]:
    if isinstance(loss, ELBO):
        return loss, type(loss).__name__
    if loss == "meanfield_elbo":
        return TraceMeanField_ELBO(num_particles=num_particles), loss
    if loss == "elbo":
        return Trace_ELBO(num_particles=num_particles), loss
    raise ValueError(
        f"loss must be one of {LOSSES} or a numpyro.infer ELBO instance; got "
        f"{loss!r}. 'meanfield_elbo' uses the analytic KL (lower variance), 'elbo' "
        "estimates the KL by Monte Carlo."
    )


def _key_data(rng_key: jax.Array) -> np.ndarray:
    if jnp.issubdtype(rng_key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(rng_key))
    return np.asarray(rng_key)


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(
        leaf.dtype, jax.dtypes.prng_key
    )


def _digest(x: np.ndarray | None) -> str:
    if x is None:
        return "none"
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]


def _save_checkpoint(path: Path, svi_state: SVIState, arrays: Mapping[str, Any]):
    leaves = jax.tree.leaves(svi_state)
    payload = {
        f"leaf_{i}": _key_data(leaf) if _is_key(leaf) else np.asarray(leaf)
        for i, leaf in enumerate(leaves)
    }
    payload.update({name: np.asarray(value) for name, value in arrays.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as stream:
        np.savez(stream, **payload)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def load_checkpoint(path: str | os.PathLike, template: SVIState) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` checkpoint.
    template : SVIState
        An SVI state of the same structure (e.g. from ``svi.init``), whose tree
        structure and key types the saved leaves are put back into.

    Returns
    -------
    dict
        ``svi_state``, ``epoch`` (epochs done), ``fingerprint`` (dict),
        ``step_loss``, ``train_elbo`` and ``test_elbo``.
    """
    with np.load(path, allow_pickle=False) as saved:
        version = int(saved["version"])
        if version != CHECKPOINT_VERSION:
            raise ValueError(
                f"checkpoint {path} has format version {version}; this code reads "
                f"version {CHECKPOINT_VERSION}. Start a new run."
            )
        template_leaves, treedef = jax.tree.flatten(template)
        leaves = []
        for i, like in enumerate(template_leaves):
            value = saved[f"leaf_{i}"]
            if _is_key(like):
                value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(like))
            else:
                value = jnp.asarray(value, dtype=like.dtype)
            leaves.append(value)
        return {
            "svi_state": jax.tree.unflatten(treedef, leaves),
            "epoch": int(saved["epoch"]),
            "fingerprint": json.loads(str(saved["fingerprint"])),
            "step_loss": saved["step_loss"],
            "train_elbo": saved["train_elbo"],
            "test_elbo": saved["test_elbo"],
        }


def _fingerprint(rng_key, x, x_test, networks, batch_size, loss_name, beta, state):
    leaves = jax.tree.leaves(state)
    return {
        "rng_key": _key_data(rng_key).tolist(),
        "data": _digest(np.asarray(x)),
        "test_data": _digest(None if x_test is None else np.asarray(x_test)),
        "batch_size": batch_size,
        "loss": loss_name,
        "beta": float(beta),
        "networks": [networks.num_pixels, networks.latent_dims, networks.likelihood],
        "state": [list(np.shape(leaf)) for leaf in leaves],
    }


def _resume(path, template, fingerprint, num_epochs):
    loaded = load_checkpoint(path, template)
    saved = loaded["fingerprint"]
    differ = sorted(k for k in fingerprint if saved.get(k) != fingerprint[k])
    if differ:
        raise ValueError(
            MSG_MISMATCH.format(
                path=path,
                fields=", ".join(differ),
                saved={k: saved.get(k) for k in differ},
                now={k: fingerprint[k] for k in differ},
            )
        )
    if loaded["epoch"] > num_epochs:
        raise ValueError(
            f"num_epochs={num_epochs} is less than the {loaded['epoch']} epochs "
            f"already in checkpoint_path {path}; pass num_epochs >= "
            f"{loaded['epoch']} to continue, or a new checkpoint_path."
        )
    return loaded


_RUNNERS: dict[Any, tuple[SVI, Callable, Callable]] = {}
_MAX_RUNNERS = 8


def _epoch_runner(
    cache_key: tuple, elbo_loss: ELBO, optimizer: optax.GradientTransformation
) -> tuple[SVI, Callable, Callable]:
    """Return an SVI object with its compiled initialisation and epoch.

    They are shared by the runs of one configuration: compiling an epoch takes
    seconds on a CPU, and runs that differ only in their key, data, networks'
    weights or beta (all traced arguments) reuse it.
    """
    if cache_key in _RUNNERS:
        return _RUNNERS[cache_key]
    (_, _, num_images, batch_size) = cache_key
    num_batches = num_images // batch_size
    svi = SVI(model, guide, optax_to_numpyro(optimizer), elbo_loss)

    @eqx.filter_jit
    def run_epoch(state, epoch, images, shuffle_key, networks, beta):
        order = jax.random.fold_in(shuffle_key, epoch)
        order = jax.random.permutation(order, num_images)
        batches = images[order[: num_batches * batch_size]]
        batches = batches.reshape(num_batches, batch_size, -1)

        def step(state, batch):
            return svi.update(
                state, batch, networks=networks, num_images=num_images, beta=beta
            )

        return jax.lax.scan(step, state, batches)

    @eqx.filter_jit
    def init(rng_key, batch, networks, beta):
        return svi.init(
            rng_key, batch, networks=networks, num_images=num_images, beta=beta
        )

    if len(_RUNNERS) >= _MAX_RUNNERS:
        _RUNNERS.pop(next(iter(_RUNNERS)))
    _RUNNERS[cache_key] = (svi, init, run_epoch)
    return svi, init, run_epoch


def train(
    rng_key: jax.Array,
    x: ArrayLike,
    *,
    networks: Networks,
    num_epochs: int,
    batch_size: int = 128,
    x_test: ArrayLike | None = None,
    loss: str | ELBO = "meanfield_elbo",
    beta: float = 1.0,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    num_particles: int = 1,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = True,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
    progress_bar: bool = True,
) -> TrainingResult:
    r"""Train a VAE by SVI over epochs of shuffled minibatches.

    Parameters
    ----------
    rng_key : Array
        JAX PRNG key; it alone decides initialisation, shuffling and the SVI draws.
    x : array_like of shape (num_images, num_pixels)
        Training images.
    networks : Networks
        Initial networks from :func:`~numpyro_pgm.models.vae.init_networks`.
    num_epochs : int
        Total epochs (including any already in the checkpoint).
    batch_size : int, default 128
        Images per SVI step, at most ``len(x)``.
    x_test : array_like of shape (num_test, num_pixels), optional
        Held-out images for the test ELBO after each epoch.
    loss : {"meanfield_elbo", "elbo"} or ELBO, default "meanfield_elbo"
        Analytic KL (``TraceMeanField_ELBO``, eq. (6.15)) or Monte Carlo KL
        (``Trace_ELBO``), or any ELBO instance.
    beta : float, default 1
        KL weight (:math:`\beta`-VAE when not 1).
    learning_rate : float, default 1e-3
        Adam step size when ``optimizer`` is None.
    optimizer : optax.GradientTransformation, optional
        Replaces Adam.
    num_particles : int, default 1
        Draws of :math:`z` per image and step.
    checkpoint_path : str or path-like, optional
        Where to save a checkpoint after every epoch and resume from.
    resume : bool, default True
        Resume from ``checkpoint_path`` when it exists (else it is overwritten).
        The key, data, batch size, loss, beta and network sizes must match the
        checkpoint's; a new ``learning_rate`` is allowed and applies from the
        resumed epoch on (the result then differs from an uninterrupted run).
    callback : callable, optional
        Called after every epoch (after its checkpoint) with a dict holding
        ``epoch`` (epochs done), ``train_elbo``, ``test_elbo`` and ``params``.
    progress_bar : bool, default True
        Show a tqdm bar with the train and test ELBO.

    Returns
    -------
    TrainingResult

    Raises
    ------
    SVIError
        If a loss becomes NaN or infinite; the checkpoint keeps the last good
        epoch.
    """
    x = check_images(x, networks)
    if x_test is not None:
        x_test = check_images(x_test, networks, name="x_test")
    num_epochs = _check_positive_int("num_epochs", num_epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    num_images = x.shape[0]
    if batch_size > num_images:
        raise ValueError(
            f"batch_size must be at most the number of training images "
            f"({num_images}); got {batch_size}."
        )
    _check_beta(beta)
    elbo_loss, loss_name = _resolve_loss(loss, num_particles)
    if optimizer is None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate!r}.")
        optimizer_key: Any = ("adam", float(learning_rate))
    else:
        optimizer_key = optimizer
    loss_key = (loss_name, num_particles) if isinstance(loss, str) else elbo_loss
    num_batches = num_images // batch_size
    svi, init, run_epoch = _epoch_runner(
        (loss_key, optimizer_key, num_images, batch_size),
        elbo_loss,
        optax.adam(learning_rate) if optimizer is None else optimizer,
    )
    init_key, shuffle_key, eval_key = jax.random.split(rng_key, 3)
    beta_array = jnp.asarray(beta, dtype=x.dtype)
    state = init(init_key, x[:batch_size], networks, beta_array)

    fingerprint = _fingerprint(
        rng_key, x, x_test, networks, batch_size, loss_name, beta, state
    )
    path = None if checkpoint_path is None else Path(checkpoint_path)
    start = 0
    step_loss = np.full((num_epochs, num_batches), np.nan)
    train_elbo = np.full(num_epochs, np.nan)
    test_elbo = np.full(num_epochs, np.nan)
    if path is not None and resume and path.exists():
        loaded = _resume(path, state, fingerprint, num_epochs)
        state, start = loaded["svi_state"], loaded["epoch"]
        step_loss[:start] = loaded["step_loss"]
        train_elbo[:start] = loaded["train_elbo"]
        test_elbo[:start] = loaded["test_elbo"]

    def evaluate(params, images, epoch, which):
        key = jax.random.fold_in(jax.random.fold_in(eval_key, epoch), which)
        return float(elbo(key, params, images, networks=networks).mean())

    with tqdm(
        total=num_epochs, initial=start, desc="VAE", disable=not progress_bar
    ) as bar:
        for epoch in range(start, num_epochs):
            new_state, losses = run_epoch(
                state, jnp.asarray(epoch), x, shuffle_key, networks, beta_array
            )
            losses = np.asarray(losses) / num_images
            if not np.isfinite(losses).all():
                raise SVIError(
                    f"the ELBO became NaN or infinite in epoch {epoch + 1}; lower "
                    f"learning_rate (now {learning_rate}) or check the data."
                    + ("" if path is None else f" {path} holds the last good epoch.")
                )
            state = new_state
            params = svi.get_params(state)
            step_loss[epoch] = losses
            train_elbo[epoch] = evaluate(params, x, epoch, 0)
            if x_test is not None:
                test_elbo[epoch] = evaluate(params, x_test, epoch, 1)
            if path is not None:
                _save_checkpoint(
                    path,
                    state,
                    {
                        "version": CHECKPOINT_VERSION,
                        "epoch": epoch + 1,
                        "fingerprint": json.dumps(fingerprint),
                        "step_loss": step_loss[: epoch + 1],
                        "train_elbo": train_elbo[: epoch + 1],
                        "test_elbo": test_elbo[: epoch + 1],
                    },
                )
            bar.update(1)
            bar.set_postfix(
                train_elbo=f"{train_elbo[epoch]:.2f}",
                test_elbo=f"{test_elbo[epoch]:.2f}",
            )
            if callback is not None:
                callback(
                    {
                        "epoch": epoch + 1,
                        "train_elbo": train_elbo[epoch],
                        "test_elbo": test_elbo[epoch],
                        "params": params,
                    }
                )
    params = svi.get_params(state)
    return TrainingResult(
        params=params,
        networks=with_params(networks, params),
        svi_state=state,
        step_loss=step_loss,
        train_elbo=train_elbo,
        test_elbo=test_elbo,
        num_epochs=num_epochs,
        resumed_from=start,
    )
