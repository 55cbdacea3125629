"""One executor interface for independent work (the block solves of a Jacobi
iteration, and later polar checks, restarts, benchmark cases).

``"inprocess"`` (the default) runs tasks one after another; ``"threads"`` uses a
thread pool (backend solvers release the GIL while they work); any object with
a ``map(fn, iterable)`` method (a :class:`concurrent.futures.Executor`, a
``dask.distributed.Client`` wrapped by :class:`FuturesExecutor`) is accepted.
"""

from __future__ import annotations

from concurrent.futures import Executor as _FuturesBase
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Iterable, Protocol, TypeVar

from .errors import InvalidInputError

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Run every task in the calling thread, in order."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return [fn(x) for x in items]

    def close(self) -> None:
        pass


class FuturesExecutor:
    """Adapt anything with ``submit`` returning futures (a concurrent.futures pool, a dask Client)."""

    def __init__(self, pool: Any, *, owned: bool = False):
        self._pool = pool
        self._owned = owned

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        futures = [self._pool.submit(fn, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            # Ctrl-C or a failure: let no task keep writing into shared state after we return
            for f in futures:
                f.cancel()
            wait(futures)
            raise

    def close(self) -> None:
        if self._owned:
            self._pool.shutdown()


def make_executor(spec: Any = None, workers: int | None = None) -> Executor:
    """Build an executor from ``None``/``"inprocess"``, ``"threads"`` or an object with ``map``."""
    if spec is None or spec == "inprocess":
        return InProcessExecutor()
    if spec == "threads":
        return FuturesExecutor(ThreadPoolExecutor(max_workers=workers), owned=True)
    if isinstance(spec, _FuturesBase):
        return FuturesExecutor(spec)
    if hasattr(spec, "map"):
        return spec
    raise InvalidInputError(
        f"executor={spec!r} is not understood: use 'inprocess' (default), 'threads', "
        "or an object with a map(fn, items) method such as concurrent.futures.ThreadPoolExecutor."
    )
