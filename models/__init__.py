"""The zoo: classic generative models of the seed documents as NumPyro functions.

Installed as ``numpyro_pgm.models``; import models from there, for example
``from numpyro_pgm.models import gmm``.
"""

__all__: list[str] = []
