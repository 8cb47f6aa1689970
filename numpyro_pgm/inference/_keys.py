"""Random keys for the steps of a fit, derived only when a step needs one.

Each eager ``jax.random`` operation compiles a small XLA program of its own (about
0.05 s on a CPU, every process), and most fits need no key after sampling: keys
for summed-out discrete sites, deterministic sites and predictive groups are made
only when there are such sites or groups. Inside a traced function (the abstract
trace of the model) a derived key costs nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass

import jax

__all__ = ["FoldedKey", "KeyLike", "resolve_key"]


@dataclass(frozen=True)
class FoldedKey:
    """The key ``jax.random.fold_in(base, index)``, computed on first use."""

    base: jax.Array
    index: int

    def __call__(self) -> jax.Array:
        return jax.random.fold_in(self.base, self.index)


KeyLike = jax.Array | Callable[[], jax.Array]


def resolve_key(key: KeyLike) -> jax.Array:
    """Return ``key`` itself, or the key a :class:`FoldedKey` stands for."""
    return key() if callable(key) else key
