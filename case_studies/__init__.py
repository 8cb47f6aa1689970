"""Case studies: one runnable module per model on real data.

Installed as ``numpyro_pgm.case_studies``; each module has ``main(argv=None)`` and
runs as ``python -m numpyro_pgm.case_studies.<name>`` or from a checkout as
``python case_studies/<name>.py``.
"""
