"""Running the data pipeline's many small torch ops without torch's intra-op thread team.

Per-frame ops (resize passes, normalisation, crop copies) are small. With OpenMP, every op above torch's grain
size starts a team of ``torch.get_num_threads()`` threads; when the cores are busy (other processes, the decoder)
each op then waits for descheduled team members, which made these ops about 10x slower on a loaded 2-core machine.
The pipeline therefore runs them in its own worker threads whose OpenMP thread count is 1, and gets its
parallelism from decoding and writing frames in different threads instead.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["one_ahead", "run_serially", "serial_torch_in_this_thread"]

T = TypeVar("T")
A = TypeVar("A")


@functools.lru_cache(maxsize=1)
def _omp_set_num_threads() -> Callable[[int], object] | None:
    try:
        fn = ctypes.CDLL(None).omp_set_num_threads  # torch's OpenMP runtime, already loaded with torch
    except (OSError, AttributeError, TypeError):  # no OpenMP build, or no global symbol lookup (Windows)
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = None
    return fn


def serial_torch_in_this_thread() -> None:
    """Make torch's CPU ops called from this thread run on this thread alone (no intra-op thread team).

    Meant for worker threads this package starts: OpenMP keeps the thread count per thread, so every other thread
    (and ``torch.get_num_threads()`` there) keeps its setting. Does nothing where torch does not use OpenMP.
    """
    torch.get_num_threads()  # torch sets up this thread's OpenMP count on first use; do that before overriding it
    fn = _omp_set_num_threads()
    if fn is not None:
        fn(1)


def run_serially(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """``fn(*args, **kwargs)`` in a short-lived worker thread with serial torch ops; returns or raises as ``fn`` does.

    Where the calling thread's torch already runs serially (``torch.get_num_threads() == 1``, e.g. in DataLoader
    workers), ``fn`` simply runs here.
    """
    if torch.get_num_threads() == 1:
        return fn(*args, **kwargs)
    result: list[T] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            serial_torch_in_this_thread()
            result.append(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            error.append(exc)

    worker = threading.Thread(target=work, name="slowonly-zoo-serial", daemon=True)
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]


def one_ahead(fn: Callable[[A], T], items: Iterable[A]) -> Iterator[tuple[A, Callable[[], T]]]:
    """``(item, result)`` per item, where ``result()`` returns ``fn(item)`` (or raises what it raised), with
    ``fn`` of the *next* item already running in a worker thread with serial torch ops while the caller works on
    this one: e.g. decoding the next video while the model runs on the current one. At most two results are held
    at once; closing the iterator early waits for the one in flight and drops it."""
    with ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="slowonly-zoo-prefetch", initializer=serial_torch_in_this_thread
    ) as pool:
        pending: tuple[A, Future[T]] | None = None
        for item in items:
            upcoming = (item, pool.submit(fn, item))
            if pending is not None:
                yield pending[0], pending[1].result
            pending = upcoming
        if pending is not None:
            yield pending[0], pending[1].result
