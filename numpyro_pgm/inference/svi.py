r"""Stochastic variational inference through ``numpyro.infer.SVI``.

Training runs in compiled chunks (``lax.scan`` over ``chunk_size`` steps); between
chunks the loss is checked for NaN, the progress bar shows the ELBO, and the
plateau rule of :func:`loss_plateau` may stop the run. Each of ``num_chains``
independent restarts becomes one chain of the result, and every draw comes with its
importance log-weight :math:`\log p(x, z) - \log q(z)`, from which ``check``
computes Pareto :math:`\hat k`.
"""

import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpyro import handlers
from numpyro.infer import (
    SVI,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceMeanField_ELBO,
    autoguide,
)
from numpyro.infer.util import log_density
from numpyro.optim import optax_to_numpyro
from tqdm.auto import tqdm

from .._validation import check_guide_signature
from ._inspect import ModelInfo, enumerated, split_data
from ._posterior import _map_in_chunks
from ._support_checks import hoist_observed_checks

__all__ = ["GUIDES", "LOSSES", "SVIError", "loss_plateau", "run_svi"]

GUIDES: dict[str, type[autoguide.AutoGuide]] = {
    "normal": autoguide.AutoNormal,
    "diagonal": autoguide.AutoDiagonalNormal,
    "mvn": autoguide.AutoMultivariateNormal,
    "lowrank": autoguide.AutoLowRankMultivariateNormal,
    "delta": autoguide.AutoDelta,
    "laplace": autoguide.AutoLaplaceApproximation,
    "iaf": autoguide.AutoIAFNormal,
    "bnaf": autoguide.AutoBNAFNormal,
}
LOSSES = ("elbo", "meanfield_elbo", "enum_elbo")


class SVIError(RuntimeError):
    """SVI could not continue (for example, the loss became NaN)."""


def loss_plateau(
    losses: np.ndarray, window: int, tolerance: float = 1e-4
) -> tuple[bool, float, float]:
    r"""Whether the loss stopped improving over the last two windows.

    With :math:`A` and :math:`B` the last two windows of ``window`` steps, the
    improvement :math:`\bar A - \bar B` is compared with its noise
    :math:`\sqrt{s_A^2/w + s_B^2/w}`: the loss has plateaued when

    .. math::

        \bar A - \bar B < \max\bigl(2\sqrt{s_A^2/w + s_B^2/w},\;
        \text{tolerance}\cdot|\bar B|\bigr).

    Returns
    -------
    plateaued, improvement, noise : bool, float, float
    """
    losses = np.asarray(losses, dtype=np.float64)
    losses = losses[np.isfinite(losses)]
    if window < 2 or losses.size < 2 * window:
        return False, float("nan"), float("nan")
    older, latest = losses[-2 * window : -window], losses[-window:]
    improvement = float(older.mean() - latest.mean())
    noise = float(np.sqrt(older.var(ddof=1) / window + latest.var(ddof=1) / window))
    threshold = max(2.0 * noise, tolerance * abs(float(latest.mean())))
    return improvement < threshold, improvement, noise


def _resolve_guide(guide: Any, model: Callable, info: ModelInfo):
    if isinstance(guide, str):
        if guide not in GUIDES:
            raise ValueError(
                f"guide {guide!r} is not an AutoGuide name; use one of "
                f"{sorted(GUIDES)}, an AutoGuide instance, or a guide function with "
                "the model's signature."
            )
        # AutoGuides cover the continuous sites; summed-out discrete sites are
        # hidden from them (TraceEnum_ELBO enumerates those in the model).
        hidden = list(info.enumerable_sites)
        guided = handlers.block(model, hide=hidden) if hidden else model
        return GUIDES[guide](guided), guide
    if isinstance(guide, autoguide.AutoGuide):
        return guide, type(guide).__name__
    if callable(guide):
        check_guide_signature(model, guide)
        return guide, getattr(guide, "__name__", "custom")
    raise TypeError(
        f"guide must be an AutoGuide name ({sorted(GUIDES)}), an AutoGuide instance, "
        f"or a guide function; got {type(guide).__name__}."
    )


def _resolve_optimizer(optimizer: Any, learning_rate: float):
    if optimizer is None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate}.")
        return optax_to_numpyro(optax.adam(learning_rate))
    if isinstance(optimizer, optax.GradientTransformation):
        return optax_to_numpyro(optimizer)
    return optimizer


def _resolve_loss(loss: Any, info: ModelInfo, num_particles: int):
    if loss is None:
        loss = "enum_elbo" if info.enumerable_sites else "elbo"
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {loss!r}.")
        if loss == "enum_elbo":
            return TraceEnum_ELBO(
                num_particles=num_particles, max_plate_nesting=info.max_plate_nesting
            )
        if loss == "meanfield_elbo":
            return TraceMeanField_ELBO(num_particles=num_particles)
        return Trace_ELBO(num_particles=num_particles)
    return loss


def run_svi(
    rng_key: jax.Array,
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    *,
    guide: Any = "normal",
    num_steps: int = 10_000,
    num_samples: int = 1000,
    num_chains: int = 1,
    optimizer: Any = None,
    learning_rate: float = 1e-2,
    loss: Any = None,
    num_particles: int = 1,
    chunk_size: int | None = None,
    stop_on_plateau: bool = True,
    plateau_tolerance: float = 1e-4,
    progress_bar: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Train ``guide`` by SVI from ``num_chains`` restarts and draw from each fit."""
    for name, value in (
        ("num_steps", num_steps),
        ("num_samples", num_samples),
        ("num_chains", num_chains),
        ("num_particles", num_particles),
    ):
        if (
            not isinstance(value, int | np.integer)
            or isinstance(value, bool)
            or value < 1
        ):
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    chunk_size = int(chunk_size or min(num_steps, max(100, num_steps // 20)))
    dynamic, static = split_data(data)
    program = _svi_program(
        model,
        info,
        static,
        guide=guide,
        optimizer=optimizer,
        learning_rate=learning_rate,
        loss=loss,
        num_particles=num_particles,
        chunk_size=chunk_size,
    )
    svi, guide_name = program.svi, program.guide_name

    start = time.perf_counter()
    restart_keys = jax.random.split(rng_key, num_chains + 1)
    histories, all_params = [], []
    bar = tqdm(
        total=num_chains * num_steps,
        desc="SVI",
        disable=not progress_bar,
        leave=False,
    )
    for restart in range(num_chains):
        state = svi.init(restart_keys[restart], **data)
        history: list[np.ndarray] = []
        done = 0
        while done < num_steps:
            state, chunk_losses = program.run_chunk(state, dynamic)
            chunk_losses = np.asarray(chunk_losses)
            if done + chunk_size > num_steps:
                chunk_losses = chunk_losses[: num_steps - done]
            if not np.all(np.isfinite(chunk_losses)):
                step = done + int(np.argmin(np.isfinite(chunk_losses)))
                bar.close()
                raise SVIError(
                    f"the SVI loss became {chunk_losses[step - done]} at step {step} "
                    f"(restart {restart}); stopped. Try a smaller learning_rate (now "
                    f"{learning_rate}), a simpler guide, more particles, or check that "
                    "the model's priors and supports are valid at the initial values."
                )
            history.append(chunk_losses)
            done += chunk_losses.size
            bar.update(chunk_losses.size)
            bar.set_postfix(restart=restart, elbo=f"{-chunk_losses.mean():.4g}")
            if (
                stop_on_plateau
                and loss_plateau(
                    np.concatenate(history), chunk_size, plateau_tolerance
                )[0]
            ):
                bar.update(num_steps - done)
                break
        histories.append(np.concatenate(history))
        all_params.append(svi.get_params(state))
    bar.close()
    training = time.perf_counter() - start

    draws, log_weights = _draw(
        restart_keys[-1], program, dynamic, all_params, num_samples
    )
    longest = max(h.size for h in histories)
    losses = np.full((num_chains, longest), np.nan)
    for i, h in enumerate(histories):
        losses[i, : h.size] = h
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *all_params)
    stats = {
        "elbo": -losses,
        "log_weight": log_weights,
        "num_steps": np.array([h.size for h in histories]),
    }
    settings = {
        "guide": guide_name,
        "num_steps": num_steps,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "learning_rate": learning_rate if optimizer is None else None,
        "optimizer": "adam" if optimizer is None else repr(optimizer),
        "loss": type(svi.loss).__name__,
        "num_particles": num_particles,
        "chunk_size": chunk_size,
        "stop_on_plateau": stop_on_plateau,
        "plateau_tolerance": plateau_tolerance,
        "enumerated_sites": list(info.enumerable_sites),
    }
    timing = {"training": training, "drawing": time.perf_counter() - start - training}
    return draws, stats, {"settings": settings, "params": params, **timing}


class _SVIProgram:
    """An SVI object with its compiled training chunk and draw function.

    Built once per model, guide, optimiser, loss and static data; ``jax.jit``
    then compiles once per data shape, so a second fit compiles nothing.
    """

    def __init__(self, model, guide, guide_name, optimizer, loss, info, static, chunk):
        self.svi = SVI(hoist_observed_checks(model), guide, optimizer, loss)
        self.guide_name = guide_name
        self.static = static
        latent = frozenset(info.latent_sites)
        svi = self.svi

        def run_chunk(state, dynamic):
            def body(state, _):
                return svi.update(state, **dynamic, **static)

            return jax.lax.scan(body, state, None, length=chunk)

        if info.enumerable_sites:
            from numpyro.contrib.funsor import enum
            from numpyro.contrib.funsor import log_density as enum_log_density

            scored = enum(model, first_available_dim=-info.max_plate_nesting - 1)

            def model_log_density(kwargs, values, params):
                return enum_log_density(scored, (), kwargs, {**params, **values})[0]
        else:

            def model_log_density(kwargs, values, params):
                return log_density(model, (), kwargs, {**params, **values})[0]

        def one(key_data, params, dynamic):
            kwargs = {**dynamic, **static}
            key = jax.random.wrap_key_data(key_data)
            log_q, guide_trace = log_density(
                handlers.seed(guide, key), (), kwargs, params
            )
            values = {
                name: site["value"]
                for name, site in guide_trace.items()
                if site["type"] == "sample"
                and name in latent
                and not site["is_observed"]
            }
            if info.subsampled:
                return {"values": values, "log_weight": jnp.nan}
            log_weight = model_log_density(kwargs, values, params) - log_q
            return {"values": values, "log_weight": log_weight}

        self.run_chunk = jax.jit(run_chunk)
        self.draw = jax.jit(jax.vmap(one, in_axes=(0, None, None)))


_SVI_PROGRAMS: dict = {}


def _svi_program(
    model,
    info,
    static,
    *,
    guide,
    optimizer,
    learning_rate,
    loss,
    num_particles,
    chunk_size,
) -> _SVIProgram:
    key = (
        model,
        guide if not isinstance(guide, autoguide.AutoGuide) else id(guide),
        optimizer,
        learning_rate,
        loss,
        num_particles,
        chunk_size,
        info.enumerable_sites,
        tuple(sorted(static.items())),
    )
    try:
        program = _SVI_PROGRAMS.get(key)
    except TypeError:  # unhashable static data: build without caching
        key, program = None, None
    if program is None:
        if info.enumerable_sites:
            model = enumerated(model, info.enumerable_sites)
        guide_fn, guide_name = _resolve_guide(guide, model, info)
        program = _SVIProgram(
            model,
            guide_fn,
            guide_name,
            _resolve_optimizer(optimizer, learning_rate),
            _resolve_loss(loss, info, num_particles),
            info,
            static,
            chunk_size,
        )
        if key is not None:
            if len(_SVI_PROGRAMS) >= 64:
                _SVI_PROGRAMS.pop(next(iter(_SVI_PROGRAMS)))
            _SVI_PROGRAMS[key] = program
    return program


def _draw(rng_key, program, dynamic, all_params, num_samples):
    """Draw from each fitted guide, with log p(x, z) - log q(z) per draw."""
    draws, weights = {}, []
    keys = jax.random.split(rng_key, len(all_params))
    for key, params in zip(keys, all_params, strict=True):
        out = _map_in_chunks(
            lambda rows, p=params: program.draw(rows["key"], p, dynamic),
            {"key": jax.random.key_data(jax.random.split(key, num_samples))},
            chunk=1024,
        )
        for name, value in out["values"].items():
            draws.setdefault(name, []).append(np.asarray(value))
        weights.append(np.asarray(out["log_weight"], dtype=np.float64))
    return {k: np.stack(v) for k, v in draws.items()}, np.stack(weights)
