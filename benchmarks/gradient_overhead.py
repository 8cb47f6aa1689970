"""NUTS time per gradient evaluation against the cost of the gradient itself.

On the ``logreg`` and ``schools`` workloads of ``nuts_cpu.py``, one chain:

- the gradient's own cost: ``jax.grad`` of the model's potential energy, 2,000
  evaluations inside one compiled ``fori_loop`` (no dispatch overhead), per call;
- the leapfrog step's cost: NumPyro's ``velocity_verlet`` update (one gradient,
  the momentum and position updates, a diagonal mass matrix), 2,000 steps inside
  one compiled ``fori_loop``;
- NUTS's cost per gradient: two warm fits (compiled programs reused) with the same
  key, 1000 warmup draws and ``S`` or ``5 S`` draws; the same key makes the first
  ``S`` draws identical, so the time difference divided by the leapfrog steps of
  the extra ``4 S`` draws is the sampler's time per gradient evaluation.

The ratios split the sampler's time per gradient into the gradient itself, the
integrator around it, and the rest of NUTS (tree building, the U-turn checks,
the multinomial choice of the next state, adaptation, the collection of draws).
Run: ``python benchmarks/gradient_overhead.py`` (writes its
table into ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import initialize_model

import numpyro_pgm as pgm

sys.path.insert(0, str(Path(__file__).parent))
from harness import write_section  # noqa: E402
from nuts_cpu import numpyro_model, workload_data  # noqa: E402

NUM_GRADIENTS = 2000
NUM_SAMPLES = 1000
LONG = 5 * NUM_SAMPLES


def _seconds_per_iteration(compiled, x) -> float:
    """Median seconds of one of the NUM_GRADIENTS iterations of a compiled loop."""
    compiled(x).block_until_ready()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        compiled(x).block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / NUM_GRADIENTS


def gradient_seconds(model, data) -> float:
    info = initialize_model(jax.random.key(0), model, model_kwargs=data)
    flat, unravel = jax.flatten_util.ravel_pytree(info.param_info.z)
    grad = jax.grad(lambda x: info.potential_fn(unravel(x)))

    @jax.jit
    def many(x):
        def body(_, carry):
            return carry + 1e-6 * grad(carry)

        return jax.lax.fori_loop(0, NUM_GRADIENTS, body, x)

    return _seconds_per_iteration(many, flat)


def leapfrog_seconds(model, data) -> float:
    from numpyro.infer.hmc_util import euclidean_kinetic_energy, velocity_verlet

    info = initialize_model(jax.random.key(0), model, model_kwargs=data)
    flat, unravel = jax.flatten_util.ravel_pytree(info.param_info.z)
    init, update = velocity_verlet(
        lambda x: info.potential_fn(unravel(x)), euclidean_kinetic_energy
    )
    inverse_mass = jnp.ones_like(flat)

    @jax.jit
    def many(x):
        state = init(x, jnp.zeros_like(x))

        def body(_, state):
            return update(1e-3, inverse_mass, state)

        return jax.lax.fori_loop(0, NUM_GRADIENTS, body, state).z

    return _seconds_per_iteration(many, flat)


def nuts_seconds_per_gradient(model, data) -> tuple[float, float]:
    def run(num_samples):
        start = time.perf_counter()
        result = pgm.fit(
            jax.random.key(0),
            model,
            data=data,
            method="nuts",
            num_warmup=1000,
            num_samples=num_samples,
            num_chains=1,
            progress_bar=False,
            checks=False,
        )
        return time.perf_counter() - start, result.sample_stats["n_steps"]

    for num_samples in (NUM_SAMPLES, LONG):
        run(num_samples)  # compile
    short = [run(NUM_SAMPLES) for _ in range(3)]
    long = [run(LONG) for _ in range(3)]
    extra_steps = float(np.sum(long[0][1][:, NUM_SAMPLES:]))
    assert np.array_equal(long[0][1][:, :NUM_SAMPLES], short[0][1])
    delta = statistics.median(t for t, _ in long) - statistics.median(
        t for t, _ in short
    )
    return delta / extra_steps, extra_steps / (LONG - NUM_SAMPLES)


def main() -> None:
    rows = []
    for workload in ("logreg", "schools"):
        model, data = numpyro_model(workload), workload_data(workload)
        data = {k: jnp.asarray(v) for k, v in data.items()}
        per_gradient = gradient_seconds(model, data)
        per_leapfrog = leapfrog_seconds(model, data)
        per_step, steps_per_draw = nuts_seconds_per_gradient(model, data)
        rows.append(
            f"| {workload} | {per_gradient * 1e6:.3g} | {per_leapfrog * 1e6:.3g} | "
            f"{per_step * 1e6:.3g} | {per_step / per_gradient:.2f} | "
            f"{per_step / per_leapfrog:.2f} | {steps_per_draw:.1f} |"
        )
    body = (
        "One chain, warm (compiled) runs; medians of 3 (NUTS) or 5 (gradient) "
        "timings.\n\n"
        "| workload | gradient µs | leapfrog step µs | NUTS µs per gradient | "
        "NUTS / gradient | NUTS / leapfrog | leapfrog steps per draw |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    write_section(
        Path(__file__).with_name("RESULTS.md"), "NUTS overhead per gradient", body
    )
    print(body)


if __name__ == "__main__":
    main()
