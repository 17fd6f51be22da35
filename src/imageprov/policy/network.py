"""Classify the caller address an audit record gives.

Records do not always hold an address. CloudTrail writes a service's DNS name
(`ec2.amazonaws.com`) when a service called on a principal's behalf, and
`AWS Internal` when it hides the address: console sessions through a proxy and some
calls made for a user. Neither is an external network, and neither proves that a
call came from an approved network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from enum import StrEnum

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressClass(StrEnum):
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

    An address is internal when it is not globally routable (RFC 1918, shared address
    space 100.64.0.0/10, unique local fc00::/7, link-local, loopback) or lies in one
    of the `internal` networks; otherwise it is public.
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
    if not address.is_global or caller.within(internal or []):
        return Caller(text, AddressClass.INTERNAL, address)
    return caller


@lru_cache(maxsize=65536)
def _address(value: str) -> Address | None:
    """Return the address `value` spells, IPv4 for an IPv4-mapped one, or None.

    Builders call from a few addresses, so most lookups are answered from the cache.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def service_name(caller: Caller, invoked_by: str | None) -> str | None:
    """Return the AWS service that made a call on a principal's behalf, if one did."""
    if invoked_by and invoked_by.endswith(".amazonaws.com"):
        return invoked_by
    if caller.kind is AddressClass.SERVICE and caller.text:
        return caller.text.strip()
    return None
