"""Classify the caller address an audit record gives.

Records do not always hold an address. CloudTrail writes a service's DNS name
(`ec2.amazonaws.com`) when a service called on a principal's behalf, and
`AWS Internal` when it hides the address: console sessions through a proxy and some
calls made for a user. Neither is an external network, and neither proves that a
call came from an approved network.

An address is internal only when it lies in one of the ranges of `INTERNAL_NETWORKS`
or in a network the policy lists. Every other address is public, whether or not it
is globally routable: documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32), benchmarking (198.18.0.0/15), reserved (240.0.0.0/4), multicast,
the unspecified addresses 0.0.0.0 and ::, Teredo (2001::/32), 6to4 (2002::/16) and
the rest of 2001::/23. A forged or mangled record can carry any of them, so none
passes as internal unless the policy lists it in `internal_networks`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from enum import StrEnum

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

INTERNAL_NETWORKS: tuple[Network, ...] = tuple(ipaddress.ip_network(text) for text in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private (RFC 1918)
    "100.64.0.0/10",  # shared address space of carrier-grade NAT (RFC 6598)
    "127.0.0.0/8", "::1/128",  # loopback
    "169.254.0.0/16", "fe80::/10",  # link-local
    "fc00::/7",  # unique local (RFC 4193)
))


class AddressClass(StrEnum):
    """The class of a recorded caller address; only `PUBLIC` is an external network."""

    INTERNAL = "internal"
    PUBLIC = "public"
    SERVICE = "service"
    HIDDEN = "hidden"
    UNREADABLE = "unreadable"
    MISSING = "missing"


@dataclass(frozen=True)
class Caller:
    """A caller address as recorded, with its class and, where it is one, the address."""

    text: str | None
    kind: AddressClass
    address: Address | None = None

    def within(self, networks: list[Network]) -> bool:
        """Return whether the address lies in one of `networks`; never for a non-address."""
        if self.address is None:
            return False
        return any(self.address in network for network in networks
                   if network.version == self.address.version)


def classify(text: str | None, internal: list[Network] | None = None) -> Caller:
    """Classify a recorded caller address.

    An address is internal when it lies in one of `INTERNAL_NETWORKS` or in one of
    the `internal` networks, and public otherwise. An IPv4-mapped (`::ffff:10.0.0.1`)
    or IPv4-compatible (`::10.0.0.1`) address is classed as the IPv4 address it holds.
    """
    if text is None or not text.strip():
        return Caller(text, AddressClass.MISSING)
    value = text.strip()
    if value == "AWS Internal" or value.startswith("AWS Internal/"):
        return Caller(text, AddressClass.HIDDEN)
    address = _address(value)
    if address is None:
        if value.endswith(".amazonaws.com") or value.endswith(".amazonaws.com.cn"):
            return Caller(text, AddressClass.SERVICE)
        # Other hostnames (prod.frontend.ecr.aws.internal) and values an anonymiser
        # mangled (leading zeros in an octet) are not addresses this code can place.
        return Caller(text, AddressClass.UNREADABLE)
    caller = Caller(text, AddressClass.PUBLIC, address)
    if _internal_by_default(address) or caller.within(internal or []):
        return Caller(text, AddressClass.INTERNAL, address)
    return caller


def ipv4_network(network: Network) -> Network:
    """Return the IPv4 network that an IPv4-mapped or -compatible network spells.

    Addresses are compared in their IPv4 form, so a policy network written as
    `::ffff:10.0.0.0/104` must become `10.0.0.0/8` to match them. Any other network
    is returned unchanged.
    """
    if network.version != 6 or network.prefixlen < 96:
        return network
    base = network.network_address
    if base.ipv4_mapped is not None:
        return ipaddress.IPv4Network((base.ipv4_mapped, network.prefixlen - 96))
    # Only compatible addresses whose first octet is not 0 are read as IPv4, so a
    # compatible network converts only when its prefix fixes that octet.
    if int(base) >> 32 == 0 and int(base) >> 24 != 0 and network.prefixlen >= 104:
        return ipaddress.IPv4Network((int(base), network.prefixlen - 96))
    return network


@lru_cache(maxsize=65536)
def _internal_by_default(address: Address) -> bool:
    return any(address in network for network in INTERNAL_NETWORKS
               if network.version == address.version)


@lru_cache(maxsize=65536)
def _address(value: str) -> Address | None:
    """Return the address `value` spells, in IPv4 form where it embeds one, or None.

    Builders call from a few addresses, so most lookups are answered from the cache.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return embedded
    return address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address of an IPv4-mapped or IPv4-compatible IPv6 address.

    The compatible form (`::a.b.c.d`, deprecated by RFC 4291) is read only where
    `a` is not 0, so that `::`, `::1` and the other addresses of ::/104 stay IPv6.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    value = int(address)
    if value >> 32 == 0 and value >> 24 != 0:
        return ipaddress.IPv4Address(value)
    return None


def service_name(caller: Caller, invoked_by: str | None) -> str | None:
    """Return the AWS service that made a call on a principal's behalf, if one did."""
    if invoked_by and invoked_by.endswith(".amazonaws.com"):
        return invoked_by
    if caller.kind is AddressClass.SERVICE and caller.text:
        return caller.text.strip()
    return None
