"""Routes that exist only for clients inside INTERNAL_NETWORKS: /metrics, /health/detailed."""

from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address

from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from app.resources import Resources


def is_internal(host: str | None, networks: Iterable[IPv4Network | IPv6Network]) -> bool:
    """Whether a client address lies in one of the networks. Anything that is not an IP
    address ("testclient", "unknown", no client at all on a unix socket) is outside."""
    if not host:
        return False
    try:
        address = ip_address(host)
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5, as a dual-stack socket reports it
    return any(address in network for network in networks)


class InternalRoute(APIRoute):
    """A route that exists only for clients inside INTERNAL_NETWORKS.

    For anyone else the router does not match it at all, so they get what an absent path
    gets: the JSON 404, whatever the method and whatever spelling would have reached the
    route (`/metrics/`, `/metrics%2F`), counted as `<unmatched>`. The client is the ASGI
    scope's, which uvicorn's proxy headers already rewrote when the peer is one of
    FORWARDED_ALLOW_IPS. (A dependency would run only on a full match: a wrong method would
    still get a 405 listing the route's methods, which tells the route from an absent one.)
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.NONE or _client_is_internal(scope):
            return match, child_scope
        return Match.NONE, {}


def _client_is_internal(scope: Scope) -> bool:
    resources: Resources = scope["app"].state.resources
    client = scope.get("client")
    return is_internal(client[0] if client else None, resources.settings.INTERNAL_NETWORKS)
