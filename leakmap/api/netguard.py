"""Outgoing HTTP requests to addresses that users type in, without reaching inside the network.

An admin types a webhook URL (and, later, a chat-bot URL); the server then sends requests there
from inside the network, where loopback services, the intranet and the cloud's metadata service
answer. This module is the one place that decides which addresses such requests may reach, and
the one client that sends them:

- `refusal(address)` is the policy: why an address may not be reached, or None;
- `check_url(url)` is for save time: scheme, host, literal addresses in every spelling the
  resolver accepts (``2130706433``, ``0177.0.0.1``, ``::ffff:127.0.0.1``) and, when DNS answers,
  every address the name resolves to;
- `post(url, ...)` is for send time: it resolves the host once, checks every address, then
  connects to one of those very addresses while the request still carries the original Host
  header (and, for https, the SNI name and certificate check), so a DNS answer that changes
  between check and connect (rebinding) cannot move the request inside. It never follows a
  redirect: a 3xx is returned to the caller like any other status.

`allow_private` lets loopback and intranet receivers through for self-hosters who run them;
even then link-local addresses (169.254.0.0/16, fe80::/10), the cloud metadata services,
multicast, unspecified and reserved addresses stay refused: nothing legitimate listens there.
Requests go straight to the receiver, never through HTTP(S)_PROXY.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = {"http": 80, "https": 443}

# The kinds of address that may be refused; allow_private lets the first two through.
LOOPBACK = "loopback"
PRIVATE = "private"
LINK_LOCAL = "link-local"
METADATA = "metadata"
MULTICAST = "multicast"
RESERVED = "reserved"
UNSPECIFIED = "unspecified"
ALLOWED_WHEN_PRIVATE_ALLOWED = {LOOPBACK, PRIVATE}

# Cloud instance-metadata services outside link-local space: Alibaba Cloud (in the shared
# 100.64.0.0/10 space), Oracle Cloud's old address, and AWS's IPv6 endpoint (in fc00::/7).
# They hand out the server's credentials, so no setting lets a request reach them.
METADATA_ADDRESSES = {
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("192.0.0.192"),
    ipaddress.ip_address("fd00:ec2::254"),
}

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # Linux connects 0.0.0.0 to the host itself
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


KIND_TEXT = {
    LOOPBACK: gettext_lazy("a loopback address"),
    PRIVATE: gettext_lazy("a private (non-public) address"),
    LINK_LOCAL: gettext_lazy("a link-local address"),
    METADATA: gettext_lazy("a cloud metadata service address"),
    MULTICAST: gettext_lazy("a multicast address"),
    RESERVED: gettext_lazy("a reserved address"),
    UNSPECIFIED: gettext_lazy("an unspecified address"),
}


class Refused(ValueError):
    """The URL may not be requested. `kind` is "scheme", "host" or one of the address kinds.

    str() is English for logs; `message()` is the translated sentence for the user."""

    def __init__(self, kind: str, *, host: str = "", address: str = "", detail: str = ""):
        self.kind = kind
        self.host = host
        self.address = address
        self.detail = detail
        with translation.override("en"):
            super().__init__(str(self.message()))

    def message(self) -> str:
        if self.kind == "scheme":
            return _("Only http and https URLs are allowed, not “%(scheme)s”.") % {
                "scheme": self.detail
            }
        if self.kind == "host":
            return _("The URL has no usable host name or port (%(detail)s).") % {
                "detail": self.detail
            }
        if self.host and self.host != self.address:
            return _(
                "%(host)s resolves to %(address)s, %(kind)s; only public addresses are allowed."
            ) % {"host": self.host, "address": self.address, "kind": KIND_TEXT[self.kind]}
        return _("%(address)s is %(kind)s; only public addresses are allowed.") % {
            "address": self.address,
            "kind": KIND_TEXT[self.kind],
        }


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as in the URL, lower-cased, without brackets
    port: int
    path: str  # path and query, as sent on the request line

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    location: str  # the Location header of a redirect, which is not followed


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv6 address carries and reaches (mapped, 6to4, NAT64, or the
    deprecated IPv4-compatible form)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> str | None:
    """The kind of a non-public address, or None for a public (globally routable) one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return classify(embedded)
        if address.scope_id:  # fe80::1%eth0: the zone does not change what the address is
            address = ipaddress.IPv6Address(str(address).partition("%")[0])
    if address.is_unspecified or address in _THIS_NETWORK:
        return UNSPECIFIED
    if address in METADATA_ADDRESSES:
        return METADATA
    if address.is_link_local:
        return LINK_LOCAL
    if address.is_multicast:
        return MULTICAST
    if address.is_loopback:
        return LOOPBACK
    if address.is_reserved:
        return RESERVED
    if not address.is_global:
        # RFC 1918 and fc00::/7, shared 100.64.0.0/10, documentation and benchmark ranges.
        return PRIVATE
    return None


def refusal(address: IPAddress | str, *, allow_private: bool) -> str | None:
    """The policy: the kind of address that makes `address` unreachable, or None if allowed."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address)
    kind = classify(address)
    if kind is None or (allow_private and kind in ALLOWED_WHEN_PRIVATE_ALLOWED):
        return None
    return kind


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`host` read as inet_aton reads it: one to four parts, each decimal, 0x-hex or 0-octal,
    the last filling the remaining bytes (``2130706433``, ``0x7f.1``, ``0177.0.0.1``)."""
    if not host.isascii():
        return None
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part[1:], 8))
            else:
                values.append(int(part, 10) if part.isdigit() else -1)
        except ValueError:
            return None
    if any(v < 0 for v in values):
        return None
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for i, value in enumerate(leading):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """The address that `host` spells, in any form the resolver accepts, or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return _legacy_ipv4(host)


def parse(url: str) -> Target:
    """Scheme and host checks that need no resolver."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Refused("host", detail=str(exc)) from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise Refused("scheme", detail=scheme)
    host = parts.hostname or ""
    if not host.rstrip("."):
        raise Refused("host", detail="the URL has no host name")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port or SCHEMES[scheme], path=path)


def _check(host: str, addresses: list[IPAddress], *, allow_private: bool) -> None:
    for address in addresses:
        kind = refusal(address, allow_private=allow_private)
        if kind:
            spelled = host if _is_plain_literal(host) else str(address)
            raise Refused(kind, host=host, address=spelled)


def _is_plain_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(target: Target, *, allow_private: bool) -> list[IPAddress]:
    """Every address the host resolves to, each one checked; Refused if any is not allowed
    (a name with one inside address is refused whole: a resolver may pick any of them).
    Raises OSError (socket.gaierror) when the name does not resolve."""
    name = target.host.rstrip(".")  # "localhost." is localhost
    literal = literal_address(name)
    if literal is not None:
        _check(target.host, [literal], allow_private=allow_private)
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: these names mean this host, whatever DNS says.
        _check(target.host, [ipaddress.ip_address("127.0.0.1")], allow_private=allow_private)
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except ValueError as exc:  # a label IDNA cannot encode, a NUL in the name
        raise Refused("host", detail=str(exc)) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    _check(target.host, addresses, allow_private=allow_private)
    if not addresses:
        raise socket.gaierror(f"{target.host} has no address")
    return addresses


def check_url(url: str, *, allow_private: bool) -> Target:
    """Save-time check: raises Refused for a bad scheme or host, a literal inside address, or a
    name that resolves inside. A name that does not resolve now passes: DNS may not be set up
    yet, and every send checks again."""
    target = parse(url)
    try:
        resolve(target, allow_private=allow_private)
    except OSError:
        pass
    return target


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one given address that still names the URL's host in the Host
    header, the TLS SNI and the certificate check."""

    def __init__(
        self,
        target: Target,
        address: IPAddress,
        *,
        timeout: float,
        tls_context: ssl.SSLContext | None,
    ):
        self.default_port = SCHEMES[target.scheme]  # so Host omits the port when it is default
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = address
        self.tls_context = tls_context

    def connect(self) -> None:
        sock = socket.create_connection((self.address.compressed, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls_context is not None:
                sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout: float,
    tls_context: ssl.SSLContext | None = None,
) -> Reply:
    """POST `body` to `url` after the address checks; returns whatever status the receiver
    answers, redirects included. Raises Refused, OSError (DNS, connect, TLS, timeout) or
    http.client.HTTPException (a malformed answer)."""
    target = parse(url)
    addresses = resolve(target, allow_private=allow_private)
    if target.tls and tls_context is None:
        tls_context = ssl.create_default_context()
    last_error: OSError | None = None
    for address in addresses:
        connection = _PinnedConnection(
            target,
            address,
            timeout=timeout,
            tls_context=tls_context if target.tls else None,
        )
        try:
            connection.connect()
        except OSError as exc:  # try the host's next address, as a resolver-driven client does
            last_error = exc
            connection.close()
            continue
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(
                status=response.status,
                reason=response.reason,
                location=response.getheader("Location") or "",
            )
        finally:
            connection.close()
    raise last_error or OSError(f"{target.host}: no address to connect to")
