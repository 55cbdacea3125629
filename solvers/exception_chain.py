"""The chain of causes of an exception, for backends that recognise their native errors inside it."""

from __future__ import annotations

__all__ = ["exception_chain"]


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and its ``__cause__``/``__context__`` ancestors."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen
