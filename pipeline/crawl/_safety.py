"""Network safety: which URLs the crawler may fetch.

A URL is refused when its scheme is not http(s), when its host is outside a configured domain allowlist, or when
the host resolves to a loopback, private, link-local, shared, multicast, reserved or unspecified address (IPv4 and
IPv6, including IPv4-mapped IPv6) that no ``allowed_private_networks`` CIDR covers. Every refusal is an UnsafeURL
whose message is the reason an analyst reads ("host resolves to a private address").

`UrlPolicy.check` is called for every request yt-dlp makes (see ``_ytdlp``): the page, the feed, the media URL,
subtitles, and each redirect hop before it is followed. `UrlPolicy.vet_connection` is called again when a socket
is opened (direct connections, not through a configured proxy), and the socket connects to the address it checked,
so DNS rebinding between the check and the connection does not get through.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .._exceptions import UnsafeURL
from .._settings import Settings

__all__ = ["UrlPolicy", "Resolver", "address_problem"]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]
ALLOWED_SCHEMES = ("http", "https")
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not "private" to Python


def _system_resolver(host: str) -> list[str]:
    """The addresses of ``host`` in the order the system prefers them (duplicates dropped)."""
    infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: IPAddress) -> str | None:
    """Why an address is not public (``"a private"``, ``"a loopback"`` …), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_problem(address.ipv4_mapped)
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local"
    if address.is_unspecified:
        return "an unspecified"
    if address.is_multicast:
        return "a multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT)"
    if address.is_private:
        return "a private"
    if address.is_reserved or not address.is_global:
        return "a reserved"
    return None


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, including legacy IPv4 forms resolvers accept (2130706433, 0x7f.1)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host)))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class UrlPolicy:
    """Decides whether a URL may be fetched. Built from Settings with `from_settings`."""

    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    domain_allowlist: tuple[str, ...] = ()
    resolver: Resolver = field(default=_system_resolver, compare=False, repr=False)
    #: resolves at connection time (`vet_connection`): what the socket really connects to
    connect_resolver: Resolver = field(default=_system_resolver, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver | None = None) -> UrlPolicy:
        return cls(
            allowed_networks=tuple(ipaddress.ip_network(c, strict=False) for c in settings.allowed_private_networks),
            domain_allowlist=tuple(settings.domain_allowlist),
            resolver=resolver or _system_resolver,
        )

    def _network_allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a.version == n.version and a in n for a in candidates for n in self.allowed_networks)

    def _domain_allowed(self, host: str) -> bool:
        if not self.domain_allowlist:
            return True
        return any(host == d or host.endswith("." + d) for d in self.domain_allowlist)

    def check(self, url: str) -> str:
        """Return the URL's host when it may be fetched; raise UnsafeURL with the reason otherwise."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as exc:
            raise UnsafeURL(f"malformed URL ({exc})", url=url) from exc
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise UnsafeURL(f"scheme {scheme + '://' if scheme else '(none)'} is not allowed (only http and https)",
                            url=url)
        if not host:
            raise UnsafeURL("URL has no host", url=url)
        host = host.rstrip(".").lower()
        if parts.username or parts.password:
            raise UnsafeURL("URL carries credentials", url=url)
        if not self._domain_allowed(host):
            raise UnsafeURL(f"host {host} is not in the domain allowlist", url=url)
        self._check_addresses(self._addresses(host, self.resolver, url), url)
        return host

    @staticmethod
    def _addresses(host: str, resolver: Resolver, where: str) -> list[IPAddress]:
        """``host`` as a literal address, or what ``resolver`` answers for it; UnsafeURL when it does not resolve."""
        literal = _literal_address(host.rstrip(".").lower())
        if literal is not None:
            return [literal]
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host)]
        except (OSError, UnicodeError) as exc:
            raise UnsafeURL(f"host {host} does not resolve ({exc})", url=where) from exc
        if not addresses:
            raise UnsafeURL(f"host {host} does not resolve", url=where)
        return addresses

    def _check_addresses(self, addresses: Iterable[IPAddress], url: str) -> None:
        for address in addresses:
            problem = address_problem(address)
            if problem and not self._network_allowed(address):
                raise UnsafeURL(f"host resolves to {problem} address", url=url)

    def vet_connection(self, host: str, port: int | None) -> list[str]:
        """The addresses to connect to for ``host``, resolved now and checked; UnsafeURL if any answer is refused.

        Called when a socket is opened, so a name that resolved to a public address during `check` and to a
        private one a moment later (DNS rebinding) is still refused, and the socket goes to the address checked.
        """
        where = f"{host}:{port}" if port else host
        addresses = self._addresses(host, self.connect_resolver, where)
        self._check_addresses(addresses, where)
        return [str(a) for a in addresses]

    def is_allowed(self, url: str) -> bool:
        try:
            self.check(url)
        except UnsafeURL:
            return False
        return True
