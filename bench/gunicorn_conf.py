"""gunicorn settings of the bench: the production shape of README "Production", on loopback.

`gunicorn -c bench/gunicorn_conf.py wsgi:app` (bench/run.py adds `--no-control-socket`).
"""

import multiprocessing
import os

bind = os.environ.get("BENCH_BIND", "127.0.0.1:8765")
worker_class = "gevent"  # holds the display's SSE streams without starving the API (NOTES.md)
workers = int(os.environ.get("BENCH_WORKERS") or 2 * multiprocessing.cpu_count())
worker_connections = 1000
backlog = 2048
keepalive = 75
timeout = 60
graceful_timeout = 5
accesslog = None  # the app logs requests itself (LOG_LEVEL=WARNING keeps that quiet)
loglevel = "warning"
