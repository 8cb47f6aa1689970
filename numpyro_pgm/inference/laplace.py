r"""The Laplace approximation and the MAP estimate, on the unconstrained space.

Seed 003 (Probabilistic Generative Models), section 3.3: with
:math:`\hat u = \arg\min_u U(u)`, where :math:`U(u) = -\log p(x, T(u)) -
\log|\det J_T(u)|` is NumPyro's potential on the unconstrained space, and
:math:`H = \nabla^2 U(\hat u)`,

.. math::

    q(u) = \mathcal N(u \mid \hat u, H^{-1}), \qquad
    \log p(x) \approx -U(\hat u) + \frac{d}{2}\log 2\pi - \frac12 \log\det H.

Draws of :math:`u` are pushed through the constraining transforms :math:`T`. The
mode is found by damped Newton (``optimizer="newton"``: the exact Hessian, needed at
the mode anyway, so few iterations) or by L-BFGS (``"lbfgs"``: optax, zoom line
search); ``"auto"`` picks Newton up to 500 unconstrained dimensions and L-BFGS
above. Both run in float64 when ``jax_enable_x64`` is on.
"""

import math
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import initialize_model

from ._inspect import ModelInfo, enumerated, split_data
from ._support_checks import hoist_observed_checks
from .mcmc import MSG_NOT_ENUMERABLE

__all__ = ["LaplaceError", "run_laplace", "run_map", "OPTIMIZERS", "HESSIAN_REPAIRS"]

OPTIMIZERS = ("auto", "lbfgs", "newton")
NEWTON_MAX_DIMENSION = 500
HESSIAN_REPAIRS = (None, "eigenvalue_floor")

MSG_NOT_PD = (
    "The Hessian of the negative log posterior at the mode is not positive "
    "definite (smallest eigenvalue {smallest:.3g}, mostly along {sites}), so the "
    "Laplace approximation is not a Gaussian. The optimiser may have stopped at a "
    "saddle point, or the posterior may be improper or flat in that direction. "
    "Ways out: give those sites proper, informative priors; use method='nuts'; or "
    "pass hessian_repair='eigenvalue_floor' to floor the eigenvalues at "
    "eigenvalue_floor={floor:g}, which makes the approximation very wide along "
    "those directions: inspect the draws."
)


class LaplaceError(ValueError):
    """The Laplace approximation does not exist at the mode found."""


def _check_enumerable(info: ModelInfo) -> None:
    not_enumerable = [s for s in info.discrete_sites if s not in info.enumerable_sites]
    if not_enumerable:
        raise ValueError(
            MSG_NOT_ENUMERABLE.format(
                method="Laplace", sites=not_enumerable, first=not_enumerable[0]
            )
        )


def _setup(rng_key, model, kwargs):
    """Build the flat unconstrained potential, its start, and the maps back."""
    model_info = initialize_model(
        rng_key, hoist_observed_checks(model), model_kwargs=kwargs
    )
    init_flat, unravel = ravel_pytree(model_info.param_info.z)

    def potential(flat: jax.Array) -> jax.Array:
        return model_info.potential_fn(unravel(flat))

    return potential, init_flat, unravel, model_info.postprocess_fn


class _ModeProgram:
    """The compiled mode search and draw evaluation for one model and data layout.

    ``find`` runs, in one XLA program, the model's initialisation, the optimiser,
    and the gradient (and Hessian) at the mode; ``evaluate`` gives the log density
    and the constrained values of a batch of flat draws. Both are built once per
    cache key (model, static data, settings) and reused, so a second fit on data of
    the same shapes compiles nothing.
    """

    def __init__(self, model, static, optimizer, max_iterations, tolerance, hessian):
        self.model = model
        self.static = dict(static)
        self.minimise = _minimise_lbfgs if optimizer == "lbfgs" else _minimise_newton
        self.max_iterations = max_iterations
        self.tolerance = tolerance
        self.hessian = hessian
        self.find = jax.jit(self._find)
        self.evaluate = jax.jit(self._evaluate)

    def _find(self, rng_key, dynamic):
        potential, init, _, _ = _setup(rng_key, self.model, {**dynamic, **self.static})
        mode, iterations, converged = self.minimise(
            potential, init, self.max_iterations, self.tolerance
        )
        found = {
            "mode": mode,
            "value": potential(mode),
            "grad_norm": jnp.max(jnp.abs(jax.grad(potential)(mode))),
            "iterations": iterations,
            "converged": converged,
        }
        if self.hessian:
            found["hessian"] = jax.hessian(potential)(mode)
        return found

    def _evaluate(self, rng_key, dynamic, flat_draws):
        potential, _, unravel, postprocess = _setup(
            rng_key, self.model, {**dynamic, **self.static}
        )
        log_density = -jax.vmap(potential)(flat_draws)
        values = jax.vmap(lambda flat: postprocess(unravel(flat)))(flat_draws)
        return log_density, values


_PROGRAMS: dict[Hashable, _ModeProgram] = {}
_MAX_PROGRAMS = 32


def _program(model, info, data, rng_key, optimizer, max_iterations, tolerance, hessian):
    """Return the cached program for this model, data layout and settings.

    ``optimizer="auto"`` is resolved here from the unconstrained dimension (found by
    abstract evaluation, so nothing is compiled for it).
    """
    original, model = model, enumerated(model, info.enumerable_sites)
    dynamic, static = split_data(data)
    if optimizer == "auto":
        init_shape = jax.eval_shape(
            lambda key, arrays: _setup(key, model, {**arrays, **static})[1],
            rng_key,
            dynamic,
        )
        size = math.prod(init_shape.shape)
        optimizer = "newton" if size <= NEWTON_MAX_DIMENSION else "lbfgs"
    settings = (optimizer, max_iterations, tolerance, hessian)
    try:
        key = (
            original,
            info.enumerable_sites,
            tuple(sorted(static.items(), key=lambda kv: kv[0])),
            settings,
        )
        hash(key)
    except TypeError:  # unhashable static data: build without caching
        return _ModeProgram(model, static, *settings), dynamic, optimizer
    program = _PROGRAMS.get(key)
    if program is None:
        if len(_PROGRAMS) >= _MAX_PROGRAMS:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        program = _PROGRAMS[key] = _ModeProgram(model, static, *settings)
    return program, dynamic, optimizer


def _minimise_lbfgs(potential, init, max_iterations, tolerance):
    """L-BFGS (optax, zoom line search) to a small gradient or the rounding floor.

    As for Newton, the search also stops when two iterations in a row lower the
    potential by less than its own rounding error (which happens first in float32
    on large data sets, where the gradient's rounding error exceeds ``tolerance``).
    """
    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(potential)
    eps = jnp.finfo(init.dtype).eps

    def step(carry):
        params, state, _, iteration, stalled = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(
            grad, state, params, value=value, grad=grad, value_fn=potential
        )
        params = optax.apply_updates(params, updates)
        grad_norm = jnp.max(jnp.abs(optax.tree_utils.tree_get(state, "grad")))
        new_value = optax.tree_utils.tree_get(state, "value")
        rounding = 64 * eps * jnp.maximum(1.0, jnp.abs(value))
        below_rounding = (iteration > 0) & (jnp.abs(value - new_value) <= rounding)
        stalled = jnp.where(below_rounding, stalled + 1, 0)
        return params, state, grad_norm, iteration + 1, stalled

    def keep_going(carry):
        _, _, grad_norm, iteration, stalled = carry
        return (iteration < max_iterations) & (grad_norm > tolerance) & (stalled < 2)

    carry = (
        init,
        solver.init(init),
        jnp.asarray(jnp.inf, init.dtype),
        0,
        0,
    )
    params, _, grad_norm, iterations, stalled = jax.lax.while_loop(
        keep_going, step, carry
    )
    return params, iterations, (grad_norm <= tolerance) | (stalled >= 2)


def _minimise_newton(potential, init, max_iterations, tolerance):
    r"""Damped Newton; stops when the gradient is small or the rounding floor is hit.

    With :math:`\lambda^2 = g^\top H^{-1} g` the Newton decrement, no step can
    lower the potential by more than about :math:`\\lambda^2 / 2`; once that is
    below the rounding error of the potential itself (which happens first in
    float32 on large data sets), the mode is as good as the arithmetic allows.
    """
    grad_fn, hess_fn = jax.grad(potential), jax.hessian(potential)
    eps = jnp.finfo(init.dtype).eps

    def step(carry):
        params, _, iteration, _ = carry
        grad, hess = grad_fn(params), hess_fn(params)
        eigenvalues, vectors = jnp.linalg.eigh(hess)
        # Damped Newton: a positive-definite model of the curvature, then halving.
        damping = jnp.maximum(jnp.abs(eigenvalues), 1e-8)
        direction = -vectors @ ((vectors.T @ grad) / damping)
        value = potential(params)
        rounding = 64 * eps * jnp.maximum(1.0, jnp.abs(value))
        floor_reached = -(grad @ direction) / 2 <= rounding

        def shrink(state):
            scale, _ = state
            return scale / 2.0, potential(params + scale / 2.0 * direction)

        def too_high(state):
            scale, new_value = state
            return (scale > 1e-10) & ~(new_value <= value + rounding)

        scale, _ = jax.lax.while_loop(
            too_high,
            shrink,
            (jnp.asarray(1.0, init.dtype), potential(params + direction)),
        )
        params = params + scale * direction
        grad_norm = jnp.max(jnp.abs(grad_fn(params)))
        return params, grad_norm, iteration + 1, floor_reached

    def keep_going(carry):
        _, grad_norm, iteration, floor_reached = carry
        return (iteration < max_iterations) & (grad_norm > tolerance) & ~floor_reached

    carry = (init, jnp.max(jnp.abs(grad_fn(init))), 0, jnp.asarray(False))
    params, grad_norm, iterations, floor_reached = jax.lax.while_loop(
        keep_going, step, carry
    )
    return params, iterations, (grad_norm <= tolerance) | floor_reached


def _find_mode(
    rng_key, model, data, info, *, optimizer, max_iterations, tolerance, hessian
):
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}.")
    _check_enumerable(info)
    program, dynamic, optimizer = _program(
        model, info, data, rng_key, optimizer, max_iterations, tolerance, hessian
    )
    found = jax.device_get(program.find(rng_key, dynamic))
    if not np.isfinite(found["value"]) or not np.all(np.isfinite(found["mode"])):
        raise ValueError(
            "the optimiser reached a non-finite log density; check the model's "
            "priors and supports, or try optimizer='newton' or method='nuts'."
        )
    found["optimizer"] = optimizer
    return program, dynamic, found


def _site_names(rng_key, model, info, data, size: int) -> list[str]:
    """Name the site of each flat unconstrained coordinate (for error messages)."""
    model = enumerated(model, info.enumerable_sites)
    _, _, unravel, _ = _setup(rng_key, model, dict(data))
    names = []
    for i in range(size):
        basis = jnp.zeros(size).at[i].set(1.0)
        names.append(next(k for k, v in unravel(basis).items() if jnp.any(v != 0)))
    return names


def _constrained(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[None] for k, v in values.items()}


def run_laplace(
    rng_key: jax.Array,
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    *,
    num_samples: int = 1000,
    optimizer: str = "auto",
    max_iterations: int = 1000,
    tolerance: float = 1e-5,
    hessian_repair: str | None = None,
    eigenvalue_floor: float = 1e-6,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Fit the Laplace approximation and draw ``num_samples`` from it."""
    if hessian_repair not in HESSIAN_REPAIRS:
        raise ValueError(
            f"hessian_repair must be one of {HESSIAN_REPAIRS}; got {hessian_repair!r}."
        )
    start = time.perf_counter()
    init_key, draw_key = jax.random.split(rng_key)
    program, dynamic, found = _find_mode(
        init_key,
        model,
        data,
        info,
        optimizer=optimizer,
        max_iterations=max_iterations,
        tolerance=tolerance,
        hessian=True,
    )
    mode = found["mode"]
    eigenvalues, vectors = np.linalg.eigh(np.asarray(found["hessian"], np.float64))
    # Numerically singular counts as not positive definite: the smallest eigenvalue
    # must exceed the rounding error of the largest.
    resolution = mode.size * np.finfo(mode.dtype).eps * abs(eigenvalues[-1])
    if not np.all(np.isfinite(eigenvalues)) or eigenvalues[0] <= resolution:
        if hessian_repair is None:
            names = _site_names(init_key, model, info, data, mode.size)
            weight = (
                np.abs(vectors[:, 0]) ** 2 if np.all(np.isfinite(vectors)) else None
            )
            top = (
                sorted({names[i] for i in np.argsort(weight)[::-1][:3]})
                if weight is not None
                else names
            )
            raise LaplaceError(
                MSG_NOT_PD.format(
                    smallest=eigenvalues[0], sites=top, floor=eigenvalue_floor
                )
            )
        eigenvalues = np.maximum(np.nan_to_num(eigenvalues, nan=0.0), eigenvalue_floor)
    dimension = mode.size
    log_evidence = (
        -float(found["value"])
        + 0.5 * dimension * np.log(2.0 * np.pi)
        - 0.5 * np.sum(np.log(eigenvalues))
    )
    noise = np.asarray(
        jax.random.normal(draw_key, (num_samples, dimension), dtype=mode.dtype)
    )
    scaled = (noise / np.sqrt(eigenvalues)) @ vectors.T
    flat_draws = np.concatenate([mode[None], mode + scaled]).astype(mode.dtype)
    log_density, values = jax.device_get(
        program.evaluate(init_key, dynamic, flat_draws)
    )
    log_p = np.asarray(log_density[1:], dtype=np.float64)
    log_q = (
        -0.5 * np.sum(noise.astype(np.float64) ** 2, axis=1)
        - 0.5 * dimension * np.log(2.0 * np.pi)
        + 0.5 * np.sum(np.log(eigenvalues))
    )
    samples = _constrained({k: v[1:] for k, v in values.items()})
    modes = _constrained({k: v[:1] for k, v in values.items()})
    stats = {
        "lp": log_p[None],
        "log_weight": (log_p - log_q)[None],
        "log_evidence": np.array([log_evidence]),
        "hessian_condition_number": np.array([eigenvalues[-1] / eigenvalues[0]]),
        "grad_norm": np.array([float(found["grad_norm"])]),
        "num_iterations": np.array([int(found["iterations"])]),
    }
    stats.update({f"{k}_mode": v[:, 0] for k, v in modes.items()})
    settings = {
        "num_samples": num_samples,
        "optimizer": found["optimizer"],
        "max_iterations": max_iterations,
        "tolerance": tolerance,
        "hessian_repair": hessian_repair,
        "eigenvalue_floor": eigenvalue_floor,
        "enumerated_sites": list(info.enumerable_sites),
        "converged": bool(found["converged"]),
    }
    return (
        samples,
        stats,
        {"settings": settings, "optimization": time.perf_counter() - start},
    )


def run_map(
    rng_key: jax.Array,
    model: Callable,
    data: Mapping[str, Any],
    info: ModelInfo,
    *,
    optimizer: str = "auto",
    max_iterations: int = 1000,
    tolerance: float = 1e-5,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Find the posterior mode (on the unconstrained space); one draw, one chain."""
    start = time.perf_counter()
    init_key, _ = jax.random.split(rng_key)
    program, dynamic, found = _find_mode(
        init_key,
        model,
        data,
        info,
        optimizer=optimizer,
        max_iterations=max_iterations,
        tolerance=tolerance,
        hessian=False,
    )
    _, values = jax.device_get(program.evaluate(init_key, dynamic, found["mode"][None]))
    samples = _constrained(values)
    stats = {
        "lp": np.array([[-float(found["value"])]]),
        "grad_norm": np.array([float(found["grad_norm"])]),
        "num_iterations": np.array([int(found["iterations"])]),
    }
    settings = {
        "optimizer": found["optimizer"],
        "max_iterations": max_iterations,
        "tolerance": tolerance,
        "enumerated_sites": list(info.enumerable_sites),
        "converged": bool(found["converged"]),
    }
    return (
        samples,
        stats,
        {"settings": settings, "optimization": time.perf_counter() - start},
    )
