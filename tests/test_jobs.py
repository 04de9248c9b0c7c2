"""The job runner: newest wins, nothing stale, nothing left running."""

from __future__ import annotations

import threading
import time

import pytest

from ssxwidgets.jobs import JobRunner


def _counting(label, steps=50, delay=0.002):
    def work(cancelled):
        for i in range(steps):
            if cancelled():
                return
            time.sleep(delay)
            yield (label, i)

    return work


def test_a_new_job_cancels_the_running_one():
    """Submitting again stops the older job; only the newer one's results
    arrive after it starts."""
    seen = []
    runner = JobRunner(lambda job, result: seen.append((job, result)))
    first = runner.submit(_counting("a", steps=10_000))
    time.sleep(0.05)
    second = runner.submit(_counting("b", steps=5))
    assert runner.wait(5)
    jobs = [job for job, _ in seen]
    assert jobs == sorted(jobs), "an older result arrived after a newer one"
    assert seen[-1] == (second, ("b", 4))
    assert sum(1 for job, _ in seen if job == first) < 10_000
    runner.close()


def test_a_hundred_rapid_changes_leave_the_last_one():
    """100 submissions in a burst end with one job run to completion: the
    last, and with a single worker thread."""
    finished = []
    runner = JobRunner(
        lambda job, result: None, on_done=lambda job, seconds: finished.append(job)
    )
    before = threading.active_count()
    ids = [runner.submit(_counting(i, steps=20)) for i in range(100)]
    assert threading.active_count() <= before + 1
    assert runner.wait(10)
    assert finished == [ids[-1]]
    runner.close()


def test_close_mid_job_leaves_no_thread():
    """Closing while a job runs stops it and joins the worker thread."""
    runner = JobRunner(lambda job, result: None, name="ssx-test-close")
    runner.submit(_counting("x", steps=100_000))
    time.sleep(0.02)
    runner.close()
    names = [t.name for t in threading.enumerate()]
    assert "ssx-test-close" not in names
    with pytest.raises(RuntimeError, match="closed"):
        runner.submit(_counting("y"))


def test_errors_of_the_newest_job_are_reported():
    """An exception in the newest job reaches on_error with its id."""
    errors = []

    def failing(cancelled):
        yield 1
        raise ValueError("bad baseline")

    runner = JobRunner(
        lambda job, result: None,
        on_error=lambda job, error: errors.append((job, str(error))),
    )
    job = runner.submit(failing)
    assert runner.wait(5)
    assert errors == [(job, "bad baseline")]
    runner.close()
