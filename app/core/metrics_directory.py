"""The directory where the processes of one server write their Prometheus samples.

Apart from app/core/metrics.py on purpose: it must be prepared before prometheus_client is
imported (the library reads PROMETHEUS_MULTIPROC_DIR once, at import), so this module
imports nothing of it. Used by deploy/gunicorn.conf.py (the API's workers) and by
`task-manager worker` (the Celery pool's processes).
"""

import os
import shutil
import tempfile
from pathlib import Path

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Set by whoever created a temporary directory, so the server removes it when it stops.
TEMPORARY_MARKER_VARIABLE = "TASK_MANAGER_METRICS_DIR_IS_TEMPORARY"


def prepare_multiprocess_directory() -> Path:
    """A fresh, empty directory in PROMETHEUS_MULTIPROC_DIR (old files would add a past run's
    counts): the operator's, emptied of prometheus_client's files, or a new temporary one
    (then marked, see `remove_if_temporary`)."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not directory:
        path = Path(tempfile.mkdtemp(prefix="task-manager-metrics-"))
        os.environ[MULTIPROCESS_DIR_VARIABLE] = str(path)
        os.environ[TEMPORARY_MARKER_VARIABLE] = "1"
        return path
    os.environ.pop(TEMPORARY_MARKER_VARIABLE, None)  # the operator's: never removed
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # prometheus_client's files only
        stale.unlink()
    return path


def remove_if_temporary() -> None:
    """At server exit: remove the directory `prepare_multiprocess_directory` created."""
    directory = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if directory and os.environ.get(TEMPORARY_MARKER_VARIABLE) == "1":
        shutil.rmtree(directory, ignore_errors=True)
