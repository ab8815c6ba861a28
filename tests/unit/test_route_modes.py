"""Each route names its transaction mode and its identity in its signature (app/dependencies.py).

Generated from the app's routes: a GET or HEAD route reads (`ReadUnitOfWork`, `CachedUser`,
the `Read...ServiceDep` aliases), every other route writes (`WriteUnitOfWork`, `CurrentUser`,
the plain service aliases). None mixes the two: it would open two sessions.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app import dependencies
from app.main import app

READ_METHODS = frozenset({"GET", "HEAD"})
READ_ONLY = {dependencies.get_read_unit_of_work, dependencies.get_cached_auth}
WRITE_ONLY = {dependencies.get_write_unit_of_work, dependencies.get_current_auth}


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI (0.16x) keeps an included router as one entry that points at the original.
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


ROUTES = list(api_routes(app.routes))
# The read routes that use the database: if one of them stopped using the read aliases, the
# checks below would pass without it.
DATABASE_READS = {
    "/auth/me",
    "/tasks",
    "/tasks/{task_id}",
    "/tasks/{task_id}/comments",
    "/tasks/{task_id}/history",
    "/trash",
    "/notifications",
    "/admin/users",
    "/projects",
    "/projects/{project_id}",
    "/projects/{project_id}/members",
    "/projects/{project_id}/webhooks",
    "/projects/{project_id}/webhooks/{webhook_id}/deliveries",
}


def calls(dependant: Dependant) -> set[Callable[..., Any]]:
    """Every dependency callable in the route's graph, however deep."""
    found: set[Callable[..., Any]] = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            found.add(sub.call)
        found |= calls(sub)
    return found


def is_read(route: APIRoute) -> bool:
    return route.methods <= READ_METHODS


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: f"{sorted(route.methods)} {route.path}")
def test_a_route_uses_the_aliases_of_its_mode(route: APIRoute) -> None:
    found = calls(route.dependant)
    if is_read(route):
        assert found.isdisjoint(WRITE_ONLY), "a read route uses a write dependency"
    else:
        assert found.isdisjoint(READ_ONLY), "a write route uses a read dependency"


def test_the_read_routes_read_through_the_read_unit_of_work_and_the_cache() -> None:
    reading = {
        route.path for route in ROUTES if is_read(route) and calls(route.dependant) >= READ_ONLY
    }
    assert reading == DATABASE_READS


def test_every_write_route_with_a_user_reads_the_real_row() -> None:
    for route in ROUTES:
        found = calls(route.dependant)
        if not is_read(route) and dependencies.get_write_unit_of_work in found:
            authenticated = dependencies.oauth2_scheme in found
            assert not authenticated or dependencies.get_current_auth in found, route.path
