"""Runs gunicorn in-process so that `leakmap serve` and `leakmap demo` need no extra config."""

from __future__ import annotations

from collections.abc import Callable

from gunicorn.app.base import BaseApplication

from leakmap.config import jobs

# Callables run once in the gunicorn master when it is ready (background schedulers register
# here; they run in the master, never in a request thread). The periodic jobs' scheduler
# (leakmap/config/jobs.py) is one.
ON_READY: list[Callable[[], None]] = [jobs.start_scheduler]


class LeakmapServer(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self):
        from leakmap.config.wsgi import application

        return application


def _when_ready(server) -> None:
    for hook in ON_READY:
        hook()


def run_server(*, host: str, port: int, workers: int) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 60,
        "accesslog": "-",
        "errorlog": "-",
        "when_ready": _when_ready,
        # The app is imported per worker, after fork, so database connections are never shared.
        "preload_app": False,
    }
    LeakmapServer(options).run()
