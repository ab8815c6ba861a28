# syntax=docker/dockerfile:1
# Task Manager API image: one image for every role (api, worker, beat), chosen by the command.
#   docker build -t task-manager-api .
#   docker run --env-file prod.env -p 127.0.0.1:8000:8000 task-manager-api          # serve
#   docker run --env-file prod.env task-manager-api worker                          # Celery
# compose.yaml runs the whole topology; docs/deployment.md explains it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# --- builder: the locked dependencies in a virtual environment ------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Requirements first: this layer is rebuilt only when requirements.txt changes. Every pinned
# package ships a wheel, so no compiler is needed (add build-essential here, never below).
COPY requirements.txt ./
RUN pip install -r requirements.txt
# The `task-manager` command. Editable on purpose: the code is run from /app, where the CLI
# finds deploy/gunicorn.conf.py, alembic.ini and migrations/ next to app/.
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-deps -e .

# --- web: the web app and the docs pages' Swagger UI and ReDoc (web/ -> web/dist) ----------
FROM ${NODE_IMAGE} AS web
WORKDIR /web
# The lock file first: `npm ci` is rebuilt only when the packages change.
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/index.html web/vite.config.ts web/tsconfig.json ./
COPY web/src ./src
RUN npm run build

# --- runtime: slim, no build tools, non-root ----------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    WEB_DIR=/app/web/dist \
    LOG_FILE=
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY pyproject.toml alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY deploy ./deploy
# Served at / (and /docs, /redoc) by the API itself: WEB_DIR.
COPY --from=web /web/dist ./web/dist
# Compiled once here, as the code is read-only at run time (and owned by root: the app user
# can run it, not change it).
RUN python -m compileall -q app migrations

USER app:app
EXPOSE 8000

# Liveness of whatever the container runs: GET /health (urllib) for the API, a Celery ping
# for worker and beat (compose.yaml states each explicitly).
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]

# `serve` runs `task-manager migrate`, then `task-manager serve --workers $WEB_CONCURRENCY`.
ENTRYPOINT ["/bin/sh", "/app/deploy/docker-entrypoint.sh"]
CMD ["serve"]
