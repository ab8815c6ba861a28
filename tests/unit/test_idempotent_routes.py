"""Every route that takes an Idempotency-Key also keeps its answer.

The key is taken by `get_current_auth` (every write route with a user); the answer is
stored by `IdempotentRoute`. A router created without `route_class=IdempotentRoute` would
check keys but never store them, so retries would run again: this fails first.
"""

from app.idempotency import IdempotentRoute, _takes_the_key
from app.main import create_app
from tests.unit.test_route_modes import api_routes


def test_every_route_taking_the_key_stores_its_answer() -> None:
    routes = list(api_routes(create_app().routes))
    taking = [route for route in routes if _takes_the_key(route)]

    assert len(taking) > 20
    assert [r.path for r in taking if not isinstance(r, IdempotentRoute)] == []
    assert all(route.methods & {"POST", "PATCH", "PUT", "DELETE"} for route in taking)
