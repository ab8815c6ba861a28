#!/bin/sh
# The image's entry point (Dockerfile). The first argument picks the role:
#   serve (default)  migrate the database (unless MIGRATE_ON_START=false), then
#                    task-manager serve: gunicorn with WEB_CONCURRENCY uvicorn workers
#   worker, beat, migrate, create-admin
#                    that task-manager command, with the remaining arguments
#   anything else    run as given (`docker compose run --rm api sh`)
# Every role execs, so the server (not this shell) is PID 1 and gets the stop signal.
set -eu

role="${1:-serve}"
[ "$#" -gt 0 ] && shift

case "$role" in
  serve)
    if [ "${MIGRATE_ON_START:-true}" = "true" ]; then
      task-manager migrate
    fi
    exec task-manager serve --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
      --workers "${WEB_CONCURRENCY:-2}" "$@"
    ;;
  beat)
    # /app is read-only for the app user; a --schedule-file given here wins (the last one does).
    exec task-manager beat --schedule-file "${BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}" "$@"
    ;;
  worker | migrate | create-admin)
    exec task-manager "$role" "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
