"""Gunicorn settings for `task-manager serve --workers N` and production.

gunicorn -c deploy/gunicorn.conf.py app.main:app
Every value can be overridden from the environment (WEB_CONCURRENCY, HOST, PORT, ...).
"""

import os

# The maintained uvicorn-worker package (uvicorn.workers.UvicornWorker is deprecated),
# subclassed in app/uvicorn_worker.py only to drop the Server header.
worker_class = "app.uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
bind = os.environ.get(
    "GUNICORN_BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
)

# A worker silent for this long is killed and replaced; graceful_timeout bounds shutdown.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))

# Logging is configured by the app itself (request ids, JSON in production); gunicorn's
# own error log goes to stderr. No access log here: uvicorn's access logger already writes
# one line per request through the app's handlers.
errorlog = "-"
accesslog = None

# gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default: two instances on
# one host would take over each other's. Off unless a per-instance path is given.
control_socket_path = os.environ.get("GUNICORN_CONTROL_SOCKET")
if control_socket_path:
    control_socket = control_socket_path
else:
    control_socket_disable = True

# Without Redis each worker would keep its own identity cache, and a deactivation handled by
# one worker could not reach the others' copies: several workers without REDIS_URL run with
# the cache off (an explicit AUTH_CACHE_TTL_SECONDS still wins).
if workers > 1 and not os.environ.get("REDIS_URL"):
    os.environ.setdefault("AUTH_CACHE_TTL_SECONDS", "0")
