from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.dependencies import HealthServiceDep
from app.routers.internal import InternalRoute
from app.routers.responses import error_responses
from app.schemas.health import DetailedHealth, Liveness

router = APIRouter(prefix="/health", tags=["operations"])
# Readiness names the components and their state: it exists only for INTERNAL_NETWORKS.
internal_router = APIRouter(prefix="/health", tags=["operations"], route_class=InternalRoute)


@router.get("", response_model=Liveness)
async def liveness() -> Liveness:
    """Liveness: the process answers. Touches nothing else."""
    return Liveness()


@internal_router.get(
    "/detailed",
    response_model=DetailedHealth,
    response_model_exclude_none=True,
    responses={
        **error_responses(404, s404="The client is outside INTERNAL_NETWORKS"),
        503: {"model": DetailedHealth, "description": "The database is unreachable"},
    },
)
async def readiness(
    health: HealthServiceDep,
) -> DetailedHealth | JSONResponse:
    """Readiness: every component with its status; 503 when the database is unreachable."""
    report = await health.check()
    body = DetailedHealth.from_components(report.status, report.components)
    if not report.healthy:
        return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=503)
    return body
