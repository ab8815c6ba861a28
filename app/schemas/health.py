from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentHealth(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str


class DetailedHealth(BaseModel):
    """Overall status plus one entry per component (more are added as the system grows)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["healthy", "degraded", "unhealthy"]
    database: ComponentHealth
    cache: ComponentHealth = Field(
        description='Redis when REDIS_URL is set (`"backend": "redis"`); otherwise '
        '`{"status": "disabled", "backend": "memory"}`'
    )
    disk: ComponentHealth
    broker: ComponentHealth | None = Field(
        default=None, description="Only when a Celery broker is configured"
    )

    @classmethod
    def from_components(
        cls, status: str, components: dict[str, dict[str, Any]]
    ) -> "DetailedHealth":
        return cls.model_validate({"status": status, **components})
