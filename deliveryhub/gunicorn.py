"""
gunicorn settings of a web host, as production runs it: `gunicorn -c python:deliveryhub.gunicorn deliveryhub.wsgi`.

Sync workers, two per core plus one (gunicorn's advice): a request is short CPU work and one database transaction,
so a worker waiting on a commit leaves the core to another. The application is loaded once in the master and
forked (less memory, faster restarts); database connections are opened in the workers, never in the master.
"""

import gc
import multiprocessing

from django.db import connections

from deliveryhub.settings import env_int, env_str

bind = env_str("DELIVERYHUB_WEB_BIND", "127.0.0.1:8000")  # host:port (or unix:/path) the web server listens on
workers = env_int("DELIVERYHUB_WEB_WORKERS", 2 * multiprocessing.cpu_count() + 1)  # worker processes
backlog = env_int("DELIVERYHUB_WEB_BACKLOG", 2048)  # connections waiting for a worker
timeout = env_int("DELIVERYHUB_WEB_TIMEOUT", 60)  # seconds a request may take (a 25 MB message included)
max_requests = env_int("DELIVERYHUB_WEB_MAX_REQUESTS", 10000)  # a worker is replaced after this many requests
max_requests_jitter = max_requests // 10 if max_requests else 0
preload_app = True
accesslog = env_str("DELIVERYHUB_WEB_ACCESS_LOG", None)  # "-" for stdout; off by default


def pre_fork(server, worker):
    """No database connection crosses a fork: two processes on one connection would corrupt it. What the master
    loaded (Django, the apps, their modules) is frozen out of the garbage collector's generations: a worker's
    collections then walk only what its requests made, not the whole loaded application again and again (a sixth of
    a 500-message batch's CPU), and its pages stay shared with the master's."""
    connections.close_all()
    gc.freeze()
