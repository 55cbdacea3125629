"""Benchmarks behind ``multiconvex bench`` and ``multiconvex report`` (installed as ``multiconvex.benchmarks``).

- :mod:`.problems`: the registry of benchmark problems (model, offline data, size, reference optimum);
- :mod:`.suites`: suites of problems × methods, expanded into cases for backends and seeds;
- :mod:`.peers`: the methods we compare with (DMCP-style rebuild loop, scikit-learn NMF, torch Adam / GD);
- :mod:`.runner`: runs cases through an executor into a resumable run directory;
- :mod:`.report`: markdown tables and PNG plots from a run directory.
"""
