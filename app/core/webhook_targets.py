"""Where a webhook may send: http(s) URLs whose host resolves to a public address only.

A target URL is resolved once (`resolve_target`); every address it resolves to must be
public (`is_forbidden_address` says which are not: loopback, RFC 1918 and ULA private,
link-local with the cloud metadata address 169.254.169.254, CGNAT, multicast, unspecified,
reserved and documentation ranges, for IPv4 and IPv6, and IPv4 hidden in IPv6: mapped,
NAT64, 6to4, Teredo). The sender then connects to exactly that address (never resolving the
name again, so a DNS answer that changes between the check and the connection, DNS
rebinding, cannot redirect it) and keeps the name for the Host header and TLS.

The numeric spellings of an IPv4 address that `inet_aton` accepts (`2130706433`,
`0x7f.1`, `0177.0.0.1`) are what the system resolver turns them into, 127.0.0.1: the check
is on the resolved address, so they are refused like the dotted form.
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to (tests pass a stub).
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Not public, beyond what `ipaddress`'s properties say: CGNAT (shared address space),
# benchmarking, IETF protocol assignments, and IPv6 discard and documentation ranges.
EXTRA_FORBIDDEN = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "100::/64",
        "2001:db8::/32",
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
ALLOWED_SCHEMES = frozenset({"http", "https"})


class TargetRefusedError(Exception):
    """The URL may not be a webhook target (its message says why, without secrets)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL checked and resolved: connect to `address`, speak to `host`."""

    scheme: str
    host: str  # as written in the URL (the Host header, TLS SNI and certificate check)
    port: int
    address: str  # the one address connected to
    path: str  # path and query, as written

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def is_forbidden_address(address: IPAddress) -> bool:
    """True for every address that is not a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_forbidden_address(embedded)
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    ):
        return True
    if any(address in network for network in EXTRA_FORBIDDEN):
        return True
    return not address.is_global


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def split_url(url: str) -> tuple[str, str, int, str]:
    """scheme, host, port and path+query of an http(s) URL; TargetRefusedError otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefusedError(f"Not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise TargetRefusedError("Only http and https URLs can be webhook targets")
    if not parts.hostname:
        raise TargetRefusedError("The URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefusedError("Credentials in the URL are not supported")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (numeric spellings included)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def resolve_target(url: str, *, resolver: Resolver, allow_private: bool) -> Target:
    """Check the URL and resolve its host once; refused unless every address is public."""
    scheme, host, port, path = split_url(url)
    try:
        addresses = await resolver(host, port)
    except OSError as error:
        raise TargetRefusedError(f"The host {host} cannot be resolved ({error})") from None
    if not addresses:
        raise TargetRefusedError(f"The host {host} resolves to no address")
    parsed = [ipaddress.ip_address(address.split("%", 1)[0]) for address in addresses]
    if not allow_private:
        for address in parsed:
            if is_forbidden_address(address):
                raise TargetRefusedError(
                    f"The host {host} resolves to a non-public address ({address})"
                )
    return Target(scheme, host, port, str(parsed[0]), path)
