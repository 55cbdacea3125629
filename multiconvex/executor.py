"""One executor interface for independent work (the block solves of a Jacobi
iteration, polar checks, restarts, benchmark cases).

- ``"inprocess"`` (the default) runs tasks one after another in the caller;
- ``"threads"`` uses a thread pool (backend solvers release the GIL while they work);
- ``"processes"`` a local process pool (``workers`` processes, BLAS/OpenMP pinned
  to ``threads_per_worker`` threads in each worker's initializer);
- ``"dask"`` a ``dask.distributed`` ``LocalCluster`` (``workers`` worker processes),
  or, with ``address="tcp://host:8786"``, the existing cluster behind that scheduler;
- any object with ``map(fn, iterable)``, a :class:`concurrent.futures.Executor` or a
  ``dask.distributed.Client``.

Tasks and their arguments must be picklable for ``"processes"`` and ``"dask"``
(module-level functions and plain data). Every executor also offers
``as_completed(fn, items)``, which yields ``(index, result)`` as tasks finish, so
long sweeps can record results and show progress while they run.

Examples
--------
>>> from multiconvex.executor import make_executor
>>> with make_executor("threads", workers=2) as ex:
...     ex.map(abs, [-1, 2, -3])
[1, 2, 3]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor as _FuturesBase
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures import as_completed as _futures_as_completed
from typing import Any, Protocol, TypeVar

from .errors import InvalidInputError, SolverUnavailableError

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("multiconvex")

#: Environment variables that bound the threads of BLAS / OpenMP / MKL / torch in a worker.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                   "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS", "RAYON_NUM_THREADS")

KINDS = ("inprocess", "threads", "processes", "dask")


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]: ...

    def close(self) -> None: ...


class _Base:
    """Context-manager manners and a default ``as_completed`` built on ``map``."""

    kind = "custom"
    workers = 1

    def as_completed(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        for i, item in enumerate(items):
            yield i, fn(item)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return self.kind


class InProcessExecutor(_Base):
    """Run every task in the calling thread, in order."""

    kind = "inprocess"

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return [fn(x) for x in items]


class FuturesExecutor(_Base):
    """Adapt anything with ``submit`` returning concurrent futures (a thread or process pool)."""

    def __init__(self, pool: Any, *, owned: bool = False, kind: str = "futures", workers: int = 1):
        self._pool = pool
        self._owned = owned
        self.kind = kind
        self.workers = workers

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        if self.kind == "processes":
            _check_shippable(fn)
        futures = [self._pool.submit(fn, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            # Ctrl-C or a failure: let no task keep writing into shared state after we return
            for f in futures:
                f.cancel()
            wait(futures)
            raise

    def as_completed(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        if self.kind == "processes":
            _check_shippable(fn)
        index = {self._pool.submit(fn, x): i for i, x in enumerate(items)}
        try:
            for f in _futures_as_completed(index):
                yield index[f], f.result()
        finally:  # an exception, Ctrl-C or the consumer stopping early: drop what has not started
            for f in index:
                f.cancel()

    def close(self) -> None:
        if self._owned:
            self._pool.shutdown(cancel_futures=True)

    def describe(self) -> str:
        return f"{self.kind} ({self.workers} workers)"


class DaskExecutor(_Base):
    """Tasks on a ``dask.distributed`` cluster through a ``Client``.

    Parameters
    ----------
    client : dask.distributed.Client
    cluster : optional
        A cluster this executor started (a ``LocalCluster``) and closes with it.
    """

    kind = "dask"

    def __init__(self, client: Any, cluster: Any = None):
        self.client = client
        self._cluster = cluster
        try:
            self.workers = max(1, len(client.scheduler_info().get("workers", {})))
        except Exception:  # noqa: BLE001 - informational only
            self.workers = 1

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        _check_shippable(fn)
        futures = self.client.map(fn, list(items), pure=False)
        try:
            return self.client.gather(futures)
        except BaseException:
            self.client.cancel(futures)
            raise

    def as_completed(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
        from distributed import as_completed

        _check_shippable(fn)
        futures = self.client.map(fn, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for f in as_completed(futures):
                yield index[f.key], f.result()
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        if self._cluster is not None:  # we started it: stop it; an existing cluster is left running
            self.client.close()
            self._cluster.close()
        else:
            self.client.close()

    def describe(self) -> str:
        where = "LocalCluster" if self._cluster is not None else self.client.scheduler.address
        return f"dask ({where}, {self.workers} workers)"


def _check_shippable(fn: Callable) -> None:
    """Refuse tasks that only make sense in the caller's memory: block solves of a standard form.

    Blocks compiled to subproblem values travel as plain data (``StandardForm.ship``) and never
    get here. A block on the cvxpy path reads and writes a compiled cvxpy problem (parameter
    values set by the driver, warm starts, solver caches); on another process it would run on a
    stale copy and give different iterates.
    """
    from .standard_form import StandardForm

    if isinstance(getattr(fn, "__self__", None), StandardForm):
        raise InvalidInputError(
            "Jacobi block solves cannot run on a process pool or a Dask cluster here: some blocks keep a "
            "modelling-layer sub-problem held by this process (a cvxpy block outside the compiled class — "
            "Result.info['cvxpy_path_reasons'] says why —, a Pyomo-only sub-solver, a logistic or softmax "
            "network block). Use executor='threads' (backends release the GIL), and use processes / Dask for "
            "whole runs (benchmark cases, restarts)."
        )


def pin_threads(threads: int = 1) -> None:
    """Limit BLAS/OpenMP (and torch) threads in this process to ``threads``.

    Called in every worker's initializer so ``N`` workers on ``N`` cores do not
    oversubscribe them. Environment variables cover libraries loaded later;
    ``threadpoolctl`` covers those already loaded.
    """
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    import sys

    if "torch" in sys.modules:
        try:
            sys.modules["torch"].set_num_threads(threads)
        except RuntimeError:  # pragma: no cover - torch refuses after its pool started
            pass


class _PinThreadsPlugin:
    """Dask worker plugin: pin threads on every worker, including workers that join later."""

    name = "multiconvex-pin-threads"

    def __init__(self, threads: int):
        self.threads = threads

    def setup(self, worker: Any) -> None:
        pin_threads(self.threads)


def _process_pool(workers: int, threads_per_worker: int) -> ProcessPoolExecutor:
    import multiprocessing as mp

    # spawn: no fork of a process that already runs torch / BLAS thread pools
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=pin_threads, initargs=(threads_per_worker,))


def _dask(workers: int | None, threads_per_worker: int, address: str | None) -> DaskExecutor:
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise SolverUnavailableError(
            "Dask execution needs dask.distributed: pip install 'multiconvex[distributed]' "
            "(or pip install 'dask[distributed]')."
        ) from exc
    from distributed.diagnostics.plugin import WorkerPlugin

    # importing distributed sets its logger to INFO (a dozen lines per cluster start); keep it to warnings
    logging.getLogger("distributed").setLevel(logging.WARNING)

    plugin_cls = type("PinThreads", (_PinThreadsPlugin, WorkerPlugin), {})
    env = {var: str(threads_per_worker) for var in THREAD_ENV_VARS}
    if address:
        try:
            client = Client(address, timeout="20s")
        except OSError as exc:
            raise SolverUnavailableError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from exc
        except ValueError as exc:  # not an address at all (e.g. no port): a usage error, not an internal one
            raise InvalidInputError(f"scheduler address {address!r} is not valid ({exc}): give one like "
                                    "'tcp://host:8786'.") from exc
        client.register_plugin(plugin_cls(threads_per_worker))
        return DaskExecutor(client)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.WARNING)
    client = Client(cluster)
    client.register_plugin(plugin_cls(threads_per_worker))
    return DaskExecutor(client, cluster)


def make_executor(spec: Any = None, workers: int | None = None, *, address: str | None = None,
                  threads_per_worker: int = 1) -> Any:
    """Build an executor.

    Parameters
    ----------
    spec : None, "inprocess", "threads", "processes", "dask", or an object
        ``None``/``"inprocess"``: run in the caller. ``"threads"``/``"processes"``:
        a local pool of ``workers``. ``"dask"``: a ``LocalCluster`` of ``workers``
        processes, or the cluster at ``address``. An object with ``map`` (a
        ``concurrent.futures`` pool, a ``dask.distributed.Client``) is wrapped or used.
    workers : int, optional
        Pool size (default: the number of CPUs).
    address : str, optional
        Scheduler address of an existing Dask cluster (implies ``"dask"``).
    threads_per_worker : int
        BLAS/OpenMP threads each worker process may use (``"processes"`` and ``"dask"``).

    Returns
    -------
    An executor with ``map``, ``as_completed``, ``close`` (and usable in ``with``).
    """
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise InvalidInputError(f"workers={workers!r}: give a positive integer.")
    if address is not None:
        spec = "dask"
    if spec is None or spec == "inprocess":
        return InProcessExecutor()
    n = int(workers or os.cpu_count() or 1)
    if spec == "threads":
        return FuturesExecutor(ThreadPoolExecutor(max_workers=n), owned=True, kind="threads", workers=n)
    if spec == "processes":
        return FuturesExecutor(_process_pool(n, threads_per_worker), owned=True, kind="processes", workers=n)
    if spec == "dask":
        return _dask(workers, threads_per_worker, address)
    if hasattr(spec, "gather") and hasattr(spec, "submit") and hasattr(spec, "scheduler_info"):
        return DaskExecutor(spec)  # a dask.distributed.Client
    if isinstance(spec, _FuturesBase):
        return FuturesExecutor(spec)
    if hasattr(spec, "map"):
        return spec
    raise InvalidInputError(
        f"executor={spec!r} is not understood: use 'inprocess' (default), 'threads', 'processes', 'dask', "
        "or an object with a map(fn, items) method such as concurrent.futures.ThreadPoolExecutor."
    )


def iter_completed(executor: Any, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[int, R]]:
    """``(index, result)`` as tasks finish, for any executor (falls back to ``map``)."""
    if hasattr(executor, "as_completed"):
        yield from executor.as_completed(fn, items)
    else:
        yield from enumerate(executor.map(fn, list(items)))
