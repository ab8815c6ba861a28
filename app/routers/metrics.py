from fastapi import APIRouter, Response

from app.core.metrics import render_metrics
from app.routers.internal import InternalRoute

# Left out of the OpenAPI schema: it is for Prometheus, not for API clients. It exists only
# for INTERNAL_NETWORKS (InternalRoute): anyone else gets the 404 of an absent path.
router = APIRouter(tags=["operations"], include_in_schema=False, route_class=InternalRoute)

METRICS_PATH = "/metrics"


@router.get(METRICS_PATH)
async def metrics() -> Response:
    """Prometheus text format: every worker's samples when several serve (multiprocess mode)."""
    body, content_type = render_metrics()
    return Response(content=body, media_type=content_type)
