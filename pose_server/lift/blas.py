"""numpy's BLAS held to one thread while the lifters compute: their products are small, and BLAS threads woken
beside the server's inference threads fight them for the cores (OpenBLAS threads took a learned depth prior's call
from 0.25 ms to 5-35 ms, and the learned lifter's frame from 1.7 to 4.6 ms, inside the server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads"]


@lru_cache(maxsize=1)
def _numpy_blas() -> tuple:
    """numpy's own BLAS (other BLAS libraries in the process, e.g. torch's MKL, belong to inference)."""
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    return tuple([lib for lib in libs if "numpy" in lib.filepath] or libs)


@contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Hold numpy's BLAS/LAPACK to ``n`` threads: the lifter's small products must not wake BLAS threads that fight
    the server's inference threads for the cores. (threadpoolctl's own ``limit`` queried every library of the process
    each time: 0.1 ms a frame inside the server.)"""
    libs = _numpy_blas()
    before = [lib.get_num_threads() for lib in libs]
    for lib, k in zip(libs, before, strict=True):
        if k != n:
            lib.set_num_threads(n)
    try:
        yield
    finally:
        for lib, k in zip(libs, before, strict=True):
            if k != n:
                lib.set_num_threads(k)
