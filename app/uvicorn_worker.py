"""The gunicorn worker class of deploy/gunicorn.conf.py: uvicorn-worker without a banner.

`Server: uvicorn` would tell every client what to attack; the app's own settings drive the
rest (proxy headers are trusted only from FORWARDED_ALLOW_IPS, as uvicorn does by default).
"""

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker as _UvicornWorker


class UvicornWorker(_UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **_UvicornWorker.CONFIG_KWARGS,
        "server_header": False,
    }
