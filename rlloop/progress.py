"""Progress bars for long commands (``tqdm``), shown only when stderr is a terminal: in logs,
pipes, CI and notebooks' captured output they print nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ["bar", "each"]

T = TypeVar("T")


def bar(total: int | None, description: str, *, unit: str = "it") -> Any:
    """A progress bar of ``total`` steps (None: a counter); ``update(n)``, ``close()``, or
    use it as a context manager. Disabled unless stderr is a terminal; it leaves no line
    behind when done."""
    return tqdm(total=total, desc=description, unit=unit, leave=False, file=sys.stderr, disable=None,
                dynamic_ncols=True)  # fmt: skip


def each(items: Iterable[T], description: str, *, unit: str = "it", total: int | None = None) -> Iterator[T]:
    """``items`` with a progress bar (see :func:`bar`)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, description, unit=unit) as progress:
        for item in items:
            yield item
            progress.update(1)
