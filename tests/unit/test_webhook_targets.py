"""The webhook address filter (app/core/webhook_targets.py): which targets are refused.

Addresses are checked after resolution, on what the sender will connect to: the table below
covers every range of the issue in IPv4 and IPv6 (and IPv4 inside IPv6); the URL spellings of
127.0.0.1 go through the system resolver (numeric, so no DNS is asked); a DNS name that
resolves to a private address goes through a stub resolver.
"""

import ipaddress

import pytest

from app.core.webhook_targets import (
    Target,
    TargetRefusedError,
    is_forbidden_address,
    resolve_target,
    system_resolver,
)

FORBIDDEN = {
    "loopback v4": "127.0.0.1",
    "loopback v4, elsewhere in 127/8": "127.255.0.9",
    "loopback v6": "::1",
    "RFC 1918 10/8": "10.1.2.3",
    "RFC 1918 172.16/12": "172.31.255.254",
    "RFC 1918 192.168/16": "192.168.1.1",
    "ULA fc00::/7": "fd12:3456::1",
    "ULA fc00::/7 (fc)": "fc00::1",
    "link-local v4": "169.254.1.1",
    "cloud metadata": "169.254.169.254",
    "link-local v6": "fe80::1",
    "site-local v6 (deprecated)": "fec0::1",
    "CGNAT 100.64/10": "100.64.0.1",
    "CGNAT, top": "100.127.255.254",
    "multicast v4": "224.0.0.1",
    "multicast v4, global scope": "233.252.0.1",
    "multicast v6": "ff02::1",
    "multicast v6, global scope": "ff0e::1",
    "unspecified v4": "0.0.0.0",  # noqa: S104 (an address refused, not bound to)
    "this network 0/8": "0.1.2.3",
    "unspecified v6": "::",
    "reserved 240/4": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "benchmarking 198.18/15": "198.18.0.1",
    "documentation v4": "192.0.2.1",
    "documentation v6": "2001:db8::1",
    "IETF protocol assignments": "192.0.0.8",
    "discard-only v6": "100::1",
    "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped private": "::ffff:10.0.0.1",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
    "NAT64 of loopback": "64:ff9b::7f00:1",
    "6to4 of loopback": "2002:7f00:1::",
    "6to4 of private": "2002:c0a8:101::",
}
PUBLIC = {
    "public v4": "93.184.215.14",
    "public v4 (DNS)": "8.8.8.8",
    "just outside CGNAT": "100.128.0.1",
    "just outside 172.16/12": "172.32.0.1",
    "public v6": "2606:4700:4700::1111",
    "IPv4-mapped public": "::ffff:8.8.8.8",
    "NAT64 of public": "64:ff9b::808:808",
}


@pytest.mark.parametrize("address", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC.values(), ids=PUBLIC.keys())
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/hook",
    "http://2130706433/hook",  # decimal
    "http://017700000001/hook",  # octal, one number
    "http://0177.0.0.1/hook",  # octal first part
    "http://0x7f.0.0.1/hook",  # hex first part
    "http://0x7f000001/hook",  # hex, one number
    "http://127.1/hook",  # short form
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "https://localhost:8443/hook",
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
async def test_every_spelling_of_loopback_is_refused(url: str) -> None:
    with pytest.raises(TargetRefusedError, match="non-public address"):
        await resolve_target(url, resolver=system_resolver, allow_private=False)


@pytest.mark.parametrize("url", ["http://2130706433/x", "http://0x7f.1/x", "http://[::1]:81/x"])
async def test_allowing_private_targets_lets_them_through(url: str) -> None:
    target = await resolve_target(url, resolver=system_resolver, allow_private=True)
    assert ipaddress.ip_address(target.address).is_loopback


class StubResolver:
    """DNS answers of our choosing (records the names asked, to prove a single lookup)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:  # noqa: ARG002
        self.asked.append(host)
        if host not in self.answers:
            raise OSError("Name or service not known")
        return self.answers[host]


class TestResolveTarget:
    async def test_a_name_resolving_to_a_private_address_is_refused(self) -> None:
        resolver = StubResolver({"hooks.example.com": ["10.0.0.7"]})
        with pytest.raises(TargetRefusedError, match=r"non-public address \(10\.0\.0\.7\)"):
            await resolve_target(
                "https://hooks.example.com/x", resolver=resolver, allow_private=False
            )

    async def test_one_private_address_among_public_ones_is_enough_to_refuse(self) -> None:
        resolver = StubResolver({"mixed.example.com": ["93.184.215.14", "::1"]})
        with pytest.raises(TargetRefusedError):
            await resolve_target(
                "https://mixed.example.com/", resolver=resolver, allow_private=False
            )

    async def test_a_public_name_resolves_once_to_the_address_connected_to(self) -> None:
        resolver = StubResolver({"hooks.example.com": ["93.184.215.14", "93.184.215.15"]})
        target = await resolve_target(
            "https://hooks.example.com:8443/in?token=a", resolver=resolver, allow_private=False
        )
        assert resolver.asked == ["hooks.example.com"]
        assert target == Target("https", "hooks.example.com", 8443, "93.184.215.14", "/in?token=a")
        assert target.connect_url == "https://93.184.215.14:8443/in?token=a"
        assert target.host_header == "hooks.example.com:8443"

    async def test_the_default_port_is_left_out_of_the_host_header(self) -> None:
        resolver = StubResolver({"hooks.example.com": ["2606:4700::1"]})
        target = await resolve_target(
            "https://hooks.example.com", resolver=resolver, allow_private=False
        )
        assert target.connect_url == "https://[2606:4700::1]:443/"
        assert target.host_header == "hooks.example.com"

    async def test_an_unknown_name_is_refused(self) -> None:
        with pytest.raises(TargetRefusedError, match="cannot be resolved"):
            await resolve_target(
                "https://nowhere.example/", resolver=StubResolver({}), allow_private=False
            )

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("ftp://93.184.215.14/x", "Only http and https"),
            ("file:///etc/passwd", "Only http and https"),
            ("gopher://93.184.215.14/", "Only http and https"),
            ("http:///no-host", "no host"),
            ("http://user:pw@93.184.215.14/", "Credentials"),
            ("http://93.184.215.14:99999/", "Not a valid URL"),
        ],
    )
    async def test_other_urls_are_refused(self, url: str, reason: str) -> None:
        with pytest.raises(TargetRefusedError, match=reason):
            await resolve_target(url, resolver=system_resolver, allow_private=True)
