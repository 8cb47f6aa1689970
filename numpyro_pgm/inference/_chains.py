"""Run MCMC chains with one compiled program per model, settings and data shapes.

NumPyro's ``MCMC`` builds a new ``pmap``/``jit`` target on every ``run``, so every
fit compiles its sampler again (and, with sequential chains, once per chain). Here a
chain program is built once per *cache key* (the model, the kernel settings, the
static data and the array shapes) and reused: a second fit of the same model on data
of the same shapes compiles nothing. The program drives any NumPyro
``MCMCKernel`` through its ``init``/``sample``/``postprocess_fn`` interface, so
NUTS, HMC and the Gibbs kernels all run through it.

- ``"parallel"``: ``pmap`` over devices, one chain per device.
- ``"vectorized"``: the kernel's ``init``/``sample`` ``vmap``-ed over chains inside
  one loop.
- ``"sequential"``: one jitted chain, called once per chain (compiled once).

Progress bars are ``tqdm`` bars fed by ``io_callback`` from inside the compiled loop.
"""

import threading
from collections.abc import Callable, Hashable, Mapping
from operator import attrgetter
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback
from tqdm.auto import tqdm

from ._inspect import split_data

__all__ = ["ChainProgram", "chain_program", "run_chains"]

_PROGRAMS: dict[Hashable, "ChainProgram"] = {}
_MAX_PROGRAMS = 64
_BARS: dict[int, Any] = {}
_BARS_LOCK = threading.Lock()
_NUM_UPDATES = 20


def _tick(chain: np.ndarray, increment: np.ndarray) -> None:
    with _BARS_LOCK:
        for index in np.atleast_1d(chain):
            bar = _BARS.get(int(index))
            if bar is not None:
                bar.update(int(increment))


class ChainProgram:
    """A compiled chain runner for one model, kernel setting and data layout."""

    def __init__(
        self,
        make_kernel: Callable[[Mapping[str, Any]], Any],
        static: Mapping[str, Any],
        *,
        num_warmup: int,
        num_samples: int,
        thinning: int,
        fields: tuple[str, ...],
        chain_method: str,
        progress_bar: bool,
        initial_params: Callable | None = None,
    ) -> None:
        self.make_kernel = make_kernel
        # initial_params(kwargs, values) -> the kernel's init_params, from the
        # constrained starting values of one chain (inside the traced program).
        self.initial_params = initial_params
        self.static = dict(static)
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.thinning = thinning
        self.fields = fields
        self.chain_method = chain_method
        self.progress_bar = progress_bar
        total = num_warmup + num_samples
        self.rate = max(1, total // _NUM_UPDATES)
        # Keys enter as host key data (uint32) with their implementation as a
        # static argument: a device key array would be resliced per device by a
        # small compiled program of its own on every process's first run.
        if chain_method == "parallel":
            self._compiled = jax.pmap(self._one_chain, static_broadcasted_argnums=4)
        elif chain_method == "vectorized":
            self._compiled = jax.jit(self._vectorized_chains, static_argnums=4)
        else:
            self._compiled = jax.jit(self._one_chain, static_argnums=4)

    # -- the traced programs ---------------------------------------------------------
    def _progress(self, step, chain):
        if not self.progress_bar:
            return
        jax.lax.cond(
            (step + 1) % self.rate == 0,
            lambda: io_callback(_tick, None, chain, self.rate, ordered=False),
            lambda: None,
        )

    def _loop(self, kernel, state, kwargs, chain, sample, postprocess):
        """Warmup and sampling in one loop, so the kernel's step is compiled once.

        Two loops (warmup, then draws) would each hold a copy of the NUTS step and
        double the compile time; as in NumPyro's ``fori_collect``, draws are written
        into buffers from step ``num_warmup`` on.
        """
        fields = [attrgetter(f) for f in self.fields]

        def record(state):
            z = getattr(state, kernel.sample_field)
            return postprocess(z), [get(state) for get in fields]

        buffers = jax.tree.map(
            lambda s: jnp.zeros((self.num_samples, *s.shape), s.dtype),
            jax.eval_shape(record, state),
        )

        def step(i, carry):
            state, buffers = carry
            state = sample(state)
            self._progress(i, chain)
            index = i - self.num_warmup
            buffers = jax.lax.cond(
                index >= 0,
                lambda b: jax.tree.map(
                    lambda buffer, value: buffer.at[index].set(value), b, record(state)
                ),
                lambda b: b,
                buffers,
            )
            return state, buffers

        total = self.num_warmup + self.num_samples
        _, (draws, stats) = jax.lax.fori_loop(0, total, step, (state, buffers))
        keep = slice(self.num_samples % self.thinning, None, self.thinning)
        draws = jax.tree.map(lambda x: x[keep], draws)
        stats = [s[keep] for s in stats]
        return draws, stats

    def _init_params(self, kwargs, values):
        if values is None:
            return None
        if self.initial_params is None:
            return values
        return self.initial_params(kwargs, values)

    def _one_chain(self, key_data, dynamic, chain, values, key_impl):
        rng_key = _wrap_key(key_data, key_impl)
        kwargs = {**dynamic, **self.static}
        kernel = self.make_kernel(kwargs)
        init = self._init_params(kwargs, values)
        state = kernel.init(rng_key, self.num_warmup, init, (), kwargs)
        postprocess = kernel.postprocess_fn((), kwargs)
        return self._loop(
            kernel,
            state,
            kwargs,
            chain,
            lambda s: kernel.sample(s, (), kwargs),
            postprocess,
        )

    def _vectorized_chains(self, key_data, dynamic, chain, values, key_impl):
        rng_keys = _wrap_key(key_data, key_impl)
        kwargs = {**dynamic, **self.static}
        kernel = self.make_kernel(kwargs)
        state = jax.vmap(
            lambda k, v: kernel.init(
                k, self.num_warmup, self._init_params(kwargs, v), (), kwargs
            )
        )(rng_keys, values)
        postprocess = jax.vmap(kernel.postprocess_fn((), kwargs))
        draws, stats = self._loop(
            kernel,
            state,
            kwargs,
            chain,
            jax.vmap(lambda s: kernel.sample(s, (), kwargs)),
            postprocess,
        )
        # (draw, chain, ...) -> (chain, draw, ...)
        swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        return jax.tree.map(swap, draws), [swap(s) for s in stats]

    # -- the driver -------------------------------------------------------------------
    def run(
        self,
        rng_key: jax.Array,
        dynamic: Mapping[str, Any],
        num_chains: int,
        init_values: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Run ``num_chains`` chains; draws and fields shaped ``(chain, draw, ...)``.

        ``init_values`` are the chains' starting values, one per chain (a leading
        chain axis), passed to the kernel's ``initial_params``; ``None`` lets the
        kernel initialise itself.
        """
        keys, impl = _host_key_data(jax.random.split(rng_key, num_chains))
        values = None if init_values is None else dict(init_values)
        total = self.num_warmup + self.num_samples
        bars = self._open_bars(num_chains, total)
        try:
            if self.chain_method == "parallel":
                # Replicated on the host (NumPy views, no compiled program per
                # array); pmap's in_axes=None for a dict of arrays next to other
                # arguments mis-assigns axes in this JAX version.
                replicated = {
                    k: np.broadcast_to(np.asarray(v), (num_chains, *np.shape(v)))
                    for k, v in dynamic.items()
                }
                chains = np.arange(num_chains)
                draws, stats = self._compiled(keys, replicated, chains, values, impl)
            elif self.chain_method == "vectorized":
                draws, stats = self._compiled(keys, dynamic, np.int32(0), values, impl)
            else:
                outputs = [
                    self._compiled(
                        keys[i], dynamic, np.int32(i), _chain(values, i), impl
                    )
                    for i in range(num_chains)
                ]
                draws = jax.tree.map(
                    lambda *xs: jnp.stack(xs), *[o[0] for o in outputs]
                )
                stats = [jnp.stack(xs) for xs in zip(*[o[1] for o in outputs])]
            draws = jax.tree.map(np.asarray, draws)
            stats = {f: np.asarray(s) for f, s in zip(self.fields, stats, strict=True)}
        finally:
            self._close_bars(bars)
        return draws, stats

    def _open_bars(self, num_chains: int, total: int) -> list:
        if not self.progress_bar:
            return []
        count = 1 if self.chain_method == "vectorized" else num_chains
        bars = [
            tqdm(total=total, desc=f"chain {i}" if count > 1 else "chains", position=i)
            for i in range(count)
        ]
        with _BARS_LOCK:
            _BARS.clear()
            _BARS.update(dict(enumerate(bars)))
        return bars

    def _close_bars(self, bars: list) -> None:
        with _BARS_LOCK:
            _BARS.clear()
        for bar in bars:
            bar.close()


def _host_key_data(keys: jax.Array) -> tuple[np.ndarray, Any]:
    """Keys as host uint32 data, and the implementation of typed keys (or None)."""
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(keys)), jax.random.key_impl(keys)
    return np.asarray(keys), None


def _wrap_key(key_data: jax.Array, impl: Any) -> jax.Array:
    """Inverse of :func:`_host_key_data`, inside the traced program."""
    return key_data if impl is None else jax.random.wrap_key_data(key_data, impl=impl)


def _chain(values: Mapping[str, np.ndarray] | None, index: int):
    return None if values is None else {k: v[index] for k, v in values.items()}


def _hashable(value: Any) -> Hashable:
    hash(value)
    return value


def chain_program(
    key: tuple,
    make_kernel: Callable,
    static: Mapping[str, Any],
    initial_params: Callable | None = None,
    **settings: Any,
) -> ChainProgram:
    """Return the cached program for ``key``, building it on first use.

    ``make_kernel`` and ``initial_params`` must depend on nothing but what
    ``key`` describes: a cached program keeps those of its first build.
    """
    try:
        cache_key = (_hashable(key), tuple(sorted(settings.items())))
        program = _PROGRAMS.get(cache_key)
    except TypeError:  # unhashable static data or options: no caching
        return ChainProgram(
            make_kernel, static, initial_params=initial_params, **settings
        )
    if program is None:
        if len(_PROGRAMS) >= _MAX_PROGRAMS:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        program = ChainProgram(
            make_kernel, static, initial_params=initial_params, **settings
        )
        _PROGRAMS[cache_key] = program
    return program


def run_chains(
    rng_key: jax.Array,
    *,
    key: tuple,
    make_kernel: Callable,
    data: Mapping[str, Any],
    num_chains: int,
    init_values: Mapping[str, np.ndarray] | None = None,
    initial_params: Callable | None = None,
    **settings: Any,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split ``data`` into arrays and static values, and run the cached program."""
    dynamic, static = split_data(data)
    program = chain_program(
        (key, tuple(sorted(static.items(), key=lambda kv: kv[0]))),
        make_kernel,
        static,
        initial_params,
        **settings,
    )
    return program.run(rng_key, dynamic, num_chains, init_values)
