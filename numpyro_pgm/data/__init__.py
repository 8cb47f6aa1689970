"""Data files shipped with numpyro_pgm; read them with :mod:`numpyro_pgm.datasets`."""
