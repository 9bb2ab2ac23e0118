"""The periodic background jobs (workflow rules, webhook deliveries) and their scheduler.

Apps register their jobs here in AppConfig.ready(); `leakmap serve` (leakmap/web/server.py)
starts the scheduler in the gunicorn master. This module imports nothing of leakmap, so any
app can register a job without importing the web server.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# Periodic background jobs (workflow rules, webhook deliveries): name, interval in seconds, job.
# Apps register them in AppConfig.ready(); the scheduler, started by `leakmap serve`, runs them
# outside any request thread, and each job takes its own database lock so that several servers
# never do the same work twice.
PERIODIC_JOBS: list[tuple[str, int, Callable[[], None]]] = []


def register_periodic(name: str, every_seconds: int, job: Callable[[], None]) -> None:
    if any(existing == name for existing, _, _ in PERIODIC_JOBS):
        return
    PERIODIC_JOBS.append((name, every_seconds, job))


# Held while a job runs. Once the scheduler starts, a fork (gunicorn spawning or respawning a
# worker) waits for it: a child forked mid-job would inherit the job's open database socket, and
# the child tearing down its copy could end the master's session under the running job.
job_lock = threading.RLock()
_fork_guard_installed = False


def _install_fork_guard() -> None:
    global _fork_guard_installed
    if not _fork_guard_installed:
        os.register_at_fork(
            before=job_lock.acquire,
            after_in_parent=job_lock.release,
            after_in_child=job_lock.release,
        )
        _fork_guard_installed = True


def run_job(name: str, job: Callable[[], None]) -> bool:
    """Run one job in its own database connection; an error is logged, never raised, so one
    failing job cannot stop the scheduler or the others. Returns whether it succeeded."""
    from django.db import close_old_connections, connections

    with job_lock:
        close_old_connections()
        try:
            job()
            return True
        except Exception:
            log.exception("periodic job %s failed", name)
            return False
        finally:
            # Close this thread's connections after every run: the next run opens a fresh one,
            # and no connection is open in the master when gunicorn forks a worker.
            connections.close_all()


class Scheduler:
    """Runs every PERIODIC_JOBS entry every N seconds in one daemon thread of the gunicorn
    master, so no job ever runs in a request thread. Jobs run one after another; a job that
    overruns its interval delays the next run instead of piling up."""

    def __init__(self, jobs: list[tuple[str, int, Callable[[], None]]] | None = None):
        self.jobs = list(PERIODIC_JOBS if jobs is None else jobs)
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        if not self.jobs:
            return self
        _install_fork_guard()
        self.thread = threading.Thread(target=self._loop, name="leakmap-scheduler", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _loop(self) -> None:
        # First run one interval after start: a restart loop never hammers the database.
        now = time.monotonic()
        due = {name: now + every for name, every, _ in self.jobs}
        while not self.stop_event.is_set():
            name, every, job = min(self.jobs, key=lambda j: due[j[0]])
            wait = due[name] - time.monotonic()
            if wait > 0 and self.stop_event.wait(wait):
                return
            run_job(name, job)
            due[name] = time.monotonic() + every


_scheduler: Scheduler | None = None


def start_scheduler() -> None:
    global _scheduler
    if _scheduler is None:
        _scheduler = Scheduler().start()
        for name, every, _ in _scheduler.jobs:
            log.info("periodic job %s every %ss", name, every)
