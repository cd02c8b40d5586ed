"""Model calls on small frames run on one OpenMP/BLAS thread; large training frames keep
the library's default."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from retrainer.threads import SMALL_ROWS, model_threads


def _openmp_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}


def test_small_frames_get_one_thread_and_large_ones_the_default() -> None:
    import sklearn.ensemble  # noqa: F401 - loads OpenMP, so threadpoolctl can see it

    with threadpool_limits(limits=2):  # the default here (the tests run with one)
        assert _openmp_threads() == {2}
        with model_threads(100):
            assert _openmp_threads() == {1}
        with model_threads():
            assert _openmp_threads() == {1}
        assert _openmp_threads() == {2}  # restored on the way out
        with model_threads(SMALL_ROWS):
            assert _openmp_threads() == {2}
