"""numpy's BLAS held to one thread inside ``blas_threads`` and given back after, even when the body raises."""

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from pose_server.lift.blas import blas_threads


def _numpy_blas_threads() -> list[int]:
    infos = [i for i in threadpool_info() if i["user_api"] == "blas"]
    own = [i for i in infos if "numpy" in i["filepath"]] or infos
    return [i["num_threads"] for i in own]


def test_holds_and_restores() -> None:
    with threadpool_limits(2, user_api="blas"):  # more than one to begin with, whatever the environment set
        before = _numpy_blas_threads()
        assert before and all(n == 2 for n in before), before
        with blas_threads(1):
            assert _numpy_blas_threads() == [1] * len(before)
        assert _numpy_blas_threads() == before


def test_restores_after_an_error() -> None:
    with threadpool_limits(2, user_api="blas"):
        with pytest.raises(RuntimeError), blas_threads(1):
            raise RuntimeError("boom")
        assert _numpy_blas_threads() == [2] * len(_numpy_blas_threads())
