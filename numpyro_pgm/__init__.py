"""numpyro_pgm: classic probabilistic generative models on NumPyro."""

__all__: list[str] = []
