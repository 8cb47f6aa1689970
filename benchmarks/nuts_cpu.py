"""NUTS on a CPU, end to end: ``fit`` against NumPyro, PyMC and nutpie.

Three reference workloads, 4 chains x (1000 warmup + 1000 draws), each variant in a
fresh process (so compilation counts, as users experience it), variants interleaved
within each repeat, repeat ``r`` drawing with seed ``r`` in every variant (so the
medians average over seeds, not over identical runs), medians over repeats:

- ``logreg``: Bayesian logistic regression on scikit-learn's Wisconsin breast-cancer
  data (569 x 30, standardised), w ~ N(0, 1), intercept ~ N(0, 5);
- ``schools``: eight schools, non-centred: mu ~ N(0, 5), tau ~ HalfCauchy(5),
  theta_tilde ~ N(0, 1);
- ``mixture``: a 1-D mixture, K = 3, N = 1000 simulated points (numpy seed 0),
  assignments marginalised, w ~ Dirichlet(1), ordered means with N(0, 10) density,
  sigmas ~ HalfNormal(2).

Variants: ``numpyro-default`` (``MCMC(NUTS(model))`` as a user writes it: one CPU
device, so chains run one after another), ``numpyro-4-devices`` (the same with 4
virtual host devices set by hand), ``pgm`` (``numpyro_pgm.fit(method="nuts")``
with its defaults, on a first run ever: its persistent compilation cache starts
empty), ``pgm-warm`` (the same again, its cache filled by the ``pgm`` run of the
same repeat: every later run of the same model and data shapes), and, when a
peer environment is given with ``--peer-python`` (a Python with ``pymc`` and
``nutpie``), ``pymc`` (``pm.sample()`` defaults) and ``nutpie``
(``nutpie.sample(nutpie.compile_pymc_model(model))``). Where BlackJAX is installed
(the ``bench`` extra), ``blackjax`` runs its NUTS as its documentation does: one
jitted chain (Stan's window adaptation, 1000 steps, then 1000 draws in a ``scan``)
on the NumPyro model's log density, called once per chain and so compiled once,
from NumPyro's ``init_to_uniform`` starting points. On ``logreg``,
``pgm-laplace`` and ``pgm-svi`` time ``fit(method="laplace")`` and
``fit(method="svi")`` (AutoNormal, up to 10,000 steps with the plateau rule)
against ``fit(method="nuts")``, on a first run ever and again with the cache that
run filled (``pgm-laplace-warm``, ``pgm-svi-warm``).

Metrics: total seconds, compile seconds (JAX: the XLA backend-compile time reported
by ``jax.monitoring``; nutpie: ``compile_pymc_model``; PyMC: not separated), the
minimum bulk ESS over parameters (arviz-stats), and min-ESS per second with and
without compilation. Ratios are to ``numpyro-default`` in the same run.

Run: ``python benchmarks/nuts_cpu.py --repeats 3 --peer-python PYTHON``
(writes the tables into ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOADS = ("logreg", "schools", "mixture")
JAX_VARIANTS = ("numpyro-default", "numpyro-4-devices", "pgm", "pgm-warm")
OPTIONAL_VARIANTS = {"blackjax": "blackjax"}  # variant: the module it needs
PEER_VARIANTS = ("pymc", "nutpie")
ROOT = Path(__file__).resolve().parents[1]
SCHOOL_Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
SCHOOL_SIGMA = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]


# -- data (numpy only, so the peer environment needs no numpyro_pgm) ----------------
def workload_data(workload: str) -> dict:
    import numpy as np

    if workload == "logreg":
        path = ROOT / "numpyro_pgm" / "data" / "breast_cancer.csv.gz"
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", skiprows=1)
        X, y = table[:, :30], table[:, 30].astype(np.int32)
        X = (X - X.mean(0)) / X.std(0)
        return {"X": X.astype(np.float32), "y": y}
    if workload == "schools":
        return {
            "y": np.array(SCHOOL_Y, np.float32),
            "sigma": np.array(SCHOOL_SIGMA, np.float32),
        }
    rng = np.random.default_rng(0)
    component = rng.choice(3, size=1000, p=[0.3, 0.5, 0.2])
    x = np.array([-3.0, 0.0, 4.0])[component] + np.array([0.8, 1.0, 0.6])[
        component
    ] * rng.normal(size=1000)
    return {"x": x.astype(np.float32)}


# -- NumPyro models -------------------------------------------------------------------
def numpyro_model(workload: str):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def logreg(X, y=None):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        b = numpyro.sample("b", dist.Normal(0.0, 5.0))
        with numpyro.plate("point", X.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=X @ w + b), obs=y)

    def schools(sigma, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        with numpyro.plate("school", sigma.shape[0]):
            theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
            numpyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)

    def mixture(x=None):
        weights = numpyro.sample("w", dist.Dirichlet(jnp.ones(3)))
        means = numpyro.sample(
            "mu",
            dist.ImproperUniform(dist.constraints.ordered_vector, (), event_shape=(3,)),
        )
        numpyro.factor("mu_prior", dist.Normal(0.0, 10.0).log_prob(means).sum())
        sigmas = numpyro.sample("sigma", dist.HalfNormal(2.0).expand([3]).to_event(1))
        with numpyro.plate("point", x.shape[0]):
            numpyro.sample(
                "x",
                dist.MixtureSameFamily(
                    dist.Categorical(weights), dist.Normal(means, sigmas)
                ),
                obs=x,
            )

    return {"logreg": logreg, "schools": schools, "mixture": mixture}[workload]


# -- PyMC models ----------------------------------------------------------------------
def pymc_model(workload: str, data: dict):
    import numpy as np
    import pymc as pm

    with pm.Model() as model:
        if workload == "logreg":
            w = pm.Normal("w", 0.0, 1.0, shape=data["X"].shape[1])
            b = pm.Normal("b", 0.0, 5.0)
            pm.Bernoulli("y", logit_p=data["X"] @ w + b, observed=data["y"])
        elif workload == "schools":
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            theta_tilde = pm.Normal("theta_tilde", 0.0, 1.0, shape=8)
            pm.Normal("y", mu + tau * theta_tilde, data["sigma"], observed=data["y"])
        else:
            w = pm.Dirichlet("w", np.ones(3))
            mu = pm.Normal(
                "mu",
                0.0,
                10.0,
                shape=3,
                transform=pm.distributions.transforms.ordered,
                initval=np.array([-1.0, 0.0, 1.0]),
            )
            sigma = pm.HalfNormal("sigma", 2.0, shape=3)
            pm.NormalMixture("x", w=w, mu=mu, sigma=sigma, observed=data["x"])
    return model


# -- one measured run -----------------------------------------------------------------
def _min_ess(groups: dict) -> float:
    import numpy as np
    from arviz_stats.base import array_stats

    smallest = np.inf
    for array in groups.values():
        array = np.asarray(array, dtype=np.float64)
        flat = array.reshape(array.shape[0], array.shape[1], -1)
        ess = array_stats.ess(np.moveaxis(flat, -1, 0), 1, 2, method="bulk")
        smallest = min(smallest, float(np.min(ess)))
    return smallest


def run_jax(workload: str, variant: str, seed: int) -> dict:
    if variant == "numpyro-default":
        os.environ["NUMPYRO_PGM_HOST_DEVICES"] = "0"
    elif variant == "numpyro-4-devices":
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    start = time.perf_counter()
    if variant.startswith("pgm"):
        # As the README asks: import numpyro_pgm before JAX starts its backend, so
        # that it can set up one virtual CPU device per chain.
        import numpyro_pgm  # noqa: F401
    import jax

    compile_seconds = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, secs, **kw: (
            compile_seconds.append(secs) if "backend_compile" in name else None
        )
    )
    data = workload_data(workload)
    model = numpyro_model(workload)
    key = jax.random.key(seed)
    if variant.startswith(("pgm-laplace", "pgm-svi")):
        import numpyro_pgm as pgm

        method = variant.removeprefix("pgm-").removesuffix("-warm")
        options = {"progress_bar": False} if method == "svi" else {}
        pgm.fit(key, model, data=data, method=method, checks=False, **options)
        total = time.perf_counter() - start
        return {"seconds": total, "compile_seconds": sum(compile_seconds)}
    if variant == "blackjax":
        samples = _blackjax_chains(model, data, key)
    elif variant.startswith("numpyro"):
        from numpyro.infer import MCMC, NUTS

        mcmc = MCMC(
            NUTS(model),
            num_warmup=1000,
            num_samples=1000,
            num_chains=4,
            progress_bar=False,
        )
        mcmc.run(key, **data)
        samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
    else:
        import numpyro_pgm as pgm

        result = pgm.fit(key, model, data=data, method="nuts", progress_bar=False)
        samples = dict(result.samples)
    total = time.perf_counter() - start
    latent = {"logreg": ("w", "b"), "schools": ("mu", "tau", "theta_tilde")}.get(
        workload, ("w", "mu", "sigma")
    )
    return _record(total, sum(compile_seconds), {k: samples[k] for k in latent})


def _blackjax_chains(model, data: dict, key, num_chains: int = 4) -> dict:
    """4 BlackJAX NUTS chains of one jitted function; constrained draws by chain."""
    import blackjax
    import jax
    from numpyro.infer.util import initialize_model

    @jax.jit
    def one_chain(chain_key):
        init_key, warmup_key, sample_key = jax.random.split(chain_key, 3)
        # NumPyro's init_to_uniform start and log density, inside the program.
        info, potential_fn, postprocess_fn, _ = initialize_model(
            init_key, model, model_kwargs=data
        )
        adaptation = blackjax.window_adaptation(
            blackjax.nuts, lambda z: -potential_fn(z), target_acceptance_rate=0.8
        )
        (state, parameters), _ = adaptation.run(warmup_key, info.z, num_steps=1000)
        step = blackjax.nuts(lambda z: -potential_fn(z), **parameters).step

        def draw(state, step_key):
            state, _ = step(step_key, state)
            return state, state.position

        _, positions = jax.lax.scan(draw, state, jax.random.split(sample_key, 1000))
        return jax.vmap(postprocess_fn)(positions)

    chains = [one_chain(k) for k in jax.random.split(key, num_chains)]
    return jax.device_get(jax.tree.map(lambda *xs: jax.numpy.stack(xs), *chains))


def run_peer(workload: str, variant: str, seed: int) -> dict:
    start = time.perf_counter()
    import pymc as pm

    data = workload_data(workload)
    model = pymc_model(workload, data)
    if variant == "pymc":
        with model:
            trace = pm.sample(
                draws=1000, tune=1000, chains=4, random_seed=seed, progressbar=False
            )
        compile_seconds = float("nan")
    else:
        import nutpie

        compile_start = time.perf_counter()
        compiled = nutpie.compile_pymc_model(model)
        compile_seconds = time.perf_counter() - compile_start
        trace = nutpie.sample(
            compiled, draws=1000, tune=1000, chains=4, seed=seed, progress_bar=False
        )
    total = time.perf_counter() - start
    posterior = trace.posterior
    names = [n for n in posterior.data_vars if not n.endswith("__")]
    return _record(total, compile_seconds, {n: posterior[n].values for n in names})


def _record(total: float, compile_seconds: float, samples: dict) -> dict:
    import math

    ess = _min_ess(samples)
    sampling = total - compile_seconds if not math.isnan(compile_seconds) else total
    return {
        "seconds": total,
        "compile_seconds": compile_seconds,
        "min_ess": ess,
        "ess_per_second": ess / total,
        "ess_per_second_no_compile": ess / sampling,
    }


# -- the driver -----------------------------------------------------------------------
def _run_variant(
    workload: str, variant: str, seed: int, peer_python: str | None, cache: Path
) -> dict:
    python = peer_python if variant in PEER_VARIANTS else sys.executable
    # numpyro_pgm's compilation cache: `pgm` and its Laplace/SVI rows start from an
    # empty folder (a first run ever); `pgm-warm` (`pgm-svi-warm`, ...) reuses the
    # folder the run just before it filled (every later run). The NumPyro and peer
    # variants run without one, as their defaults do.
    if not variant.endswith("-warm"):
        shutil.rmtree(cache, ignore_errors=True)
    completed = subprocess.run(
        [python, __file__, "--single", workload, variant, str(seed)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "NUMPYRO_PGM_CACHE_DIR": str(cache)},
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _table(workload: str, rows: dict) -> str:
    from harness import markdown_table

    columns = [
        ("seconds", "total s", ".1f"),
        ("compile_seconds", "compile s", ".1f"),
        ("min_ess", "min ESS", ".0f"),
        ("ess_per_second", "min-ESS/s", ".0f"),
        ("ess_per_second_no_compile", "min-ESS/s without compile", ".0f"),
    ]
    table = markdown_table(
        {v: row for v, row in rows.items() if "min_ess" in row},  # not Laplace, SVI
        columns,
        baseline="numpyro-default",
        ratio_of=[c[0] for c in columns if c[0] != "min_ess"],
    )
    text = f"### {workload}\n\n{table}"
    for variant, label in (
        ("pgm-laplace", 'fit(method="laplace")'),
        ("pgm-svi", 'fit(method="svi", guide="normal")'),
    ):
        if variant in rows:
            first = rows[variant]["seconds"]
            warm = rows[f"{variant}-warm"]["seconds"]
            text += (
                f"\n\n`{label}` (1000 draws): {first:.1f} s on a first run, "
                f"{first / rows['pgm']['seconds']:.2f} x the time of "
                f'`fit(method="nuts")`; {warm:.1f} s with a warm cache, '
                f"{warm / rows['pgm-warm']['seconds']:.2f} x."
            )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", nargs=3, metavar=("WORKLOAD", "VARIANT", "SEED"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--peer-python", default=None)
    parser.add_argument(
        "--results", type=Path, default=Path(__file__).with_name("RESULTS.md")
    )
    args = parser.parse_args()
    if args.single:
        workload, variant, seed = args.single
        runner = run_peer if variant in PEER_VARIANTS else run_jax
        print(json.dumps(runner(workload, variant, int(seed))))
        return

    import statistics

    sys.path.insert(0, str(Path(__file__).parent))
    from harness import write_section

    optional = tuple(
        v for v, module in OPTIONAL_VARIANTS.items() if importlib.util.find_spec(module)
    )
    variants = JAX_VARIANTS + optional + (PEER_VARIANTS if args.peer_python else ())

    def variants_of(workload: str) -> tuple[str, ...]:
        extra = ("pgm-laplace", "pgm-laplace-warm", "pgm-svi", "pgm-svi-warm")
        extra = extra if workload == "logreg" else ()
        return variants + extra

    runs = {(w, v): [] for w in args.workloads for v in variants_of(w)}
    cache = Path(tempfile.mkdtemp(prefix="nuts-cpu-cache-"))
    for repeat in range(args.repeats):
        for workload in args.workloads:
            for variant in variants_of(workload):
                record = _run_variant(
                    workload, variant, repeat, args.peer_python, cache
                )
                runs[(workload, variant)].append(record)
                print(repeat, workload, variant, record, file=sys.stderr)
    tables = []
    for workload in args.workloads:
        rows = {
            v: {
                k: statistics.median(r[k] for r in runs[(workload, v)])
                for k in runs[(workload, v)][0]
            }
            for v in variants_of(workload)
        }
        tables.append(_table(workload, rows))
    shutil.rmtree(cache, ignore_errors=True)
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[0]
    body = (
        "4 chains x (1000 warmup + 1000 draws); fresh process per run; medians of "
        f"{args.repeats} interleaved repeats (repeat r uses seed r in every variant) "
        "on this project's 2-core CPU machine "
        f"(load average {load} at the end); "
        "ratios to `numpyro-default` (of times: below 1 is faster; of min-ESS/s: "
        "above 1 is faster). Compile time is XLA's backend compile (JAX) or "
        "`compile_pymc_model` (nutpie); `nan` where it is not separable (PyMC). "
        "`pgm` starts with an empty compilation cache (a first run ever), "
        "`pgm-warm` with the cache its `pgm` run filled (any later run of the "
        "same model and data shapes; its compile column is the time to load the "
        "programs); NumPyro and the peers run without one, as by default. "
        "`blackjax` is BlackJAX's NUTS with Stan's window adaptation as its "
        "documentation writes it, one jitted chain called once per chain (compiled "
        "once), on the NumPyro model's log density.\n\n"
        "Reproduce: `python benchmarks/nuts_cpu.py --repeats 3 --peer-python "
        ".peers-venv/bin/python` (the peer venv: `python3.12 -m venv .peers-venv && "
        ".peers-venv/bin/pip install pymc nutpie`).\n\n" + "\n\n".join(tables)
    )
    write_section(
        args.results, "NUTS on a CPU: fit against NumPyro, PyMC, nutpie", body
    )
    print(body)


if __name__ == "__main__":
    main()
