"""Address classes of recorded callers."""

from __future__ import annotations

import ipaddress

import pytest

from imageprov.policy.network import AddressClass, classify, ipv4_network, service_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.1.2.3", AddressClass.INTERNAL),
        ("172.16.0.1", AddressClass.INTERNAL),
        ("172.31.255.254", AddressClass.INTERNAL),
        ("172.64.1.1", AddressClass.PUBLIC),
        ("172.32.0.1", AddressClass.PUBLIC),
        ("192.168.10.4", AddressClass.INTERNAL),
        ("100.64.0.1", AddressClass.INTERNAL),
        ("100.127.255.254", AddressClass.INTERNAL),
        ("100.128.0.1", AddressClass.PUBLIC),
        ("169.254.169.254", AddressClass.INTERNAL),
        ("fc00::1", AddressClass.INTERNAL),
        ("fd12:3456::1", AddressClass.INTERNAL),
        ("fe80::1", AddressClass.INTERNAL),
        ("2600:1f18::1", AddressClass.PUBLIC),
        ("::ffff:10.0.0.1", AddressClass.INTERNAL),
        ("::ffff:52.94.76.1", AddressClass.PUBLIC),
        ("8.8.8.8", AddressClass.PUBLIC),
        ("127.0.0.1", AddressClass.INTERNAL),
        ("::1", AddressClass.INTERNAL),
        ("::ffff:127.0.0.1", AddressClass.INTERNAL),
        ("::10.0.0.1", AddressClass.INTERNAL),
        ("::ffff:100.64.0.1", AddressClass.INTERNAL),
        ("::ffff:169.254.0.1", AddressClass.INTERNAL),
        ("fe80::1%eth0", AddressClass.INTERNAL),
        ("192.0.2.1", AddressClass.PUBLIC),
        ("198.51.100.7", AddressClass.PUBLIC),
        ("203.0.113.50", AddressClass.PUBLIC),
        ("2001:db8::1", AddressClass.PUBLIC),
        ("::ffff:198.51.100.7", AddressClass.PUBLIC),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", AddressClass.PUBLIC),
        ("2001:1::1", AddressClass.PUBLIC),
        ("2001:1ff::1", AddressClass.PUBLIC),
        ("2002:808:808::1", AddressClass.PUBLIC),
        ("198.18.0.1", AddressClass.PUBLIC),
        ("198.19.255.254", AddressClass.PUBLIC),
        ("240.0.0.1", AddressClass.PUBLIC),
        ("255.255.255.255", AddressClass.PUBLIC),
        ("224.0.0.1", AddressClass.PUBLIC),
        ("ff02::1", AddressClass.PUBLIC),
        ("0.0.0.0", AddressClass.PUBLIC),
        ("::", AddressClass.PUBLIC),
        ("::2", AddressClass.PUBLIC),
        ("192.0.0.8", AddressClass.PUBLIC),
        ("AWS Internal", AddressClass.HIDDEN),
        ("AWS Internal/3", AddressClass.HIDDEN),
        ("ec2.amazonaws.com", AddressClass.SERVICE),
        ("imagebuilder.amazonaws.com", AddressClass.SERVICE),
        ("prod.frontend.ecr.aws.internal", AddressClass.UNREADABLE),
        ("035.249.253.232", AddressClass.UNREADABLE),
        ("", AddressClass.MISSING),
        (None, AddressClass.MISSING),
    ],
)
def test_address_class(text, expected):
    assert classify(text).kind is expected


def test_listed_network_counts_internal():
    egress = [ipaddress.ip_network("52.94.76.0/24")]
    assert classify("52.94.76.9", egress).kind is AddressClass.INTERNAL
    assert classify("52.94.77.9", egress).kind is AddressClass.PUBLIC


def test_hidden_address_in_no_network():
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    assert not classify("AWS Internal").within(everything)
    assert not classify("ec2.amazonaws.com").within(everything)


def test_ipv6_network_membership():
    networks = [ipaddress.ip_network("2600:1f18:4000::/40")]
    assert classify("2600:1f18:4000::5").within(networks)
    assert not classify("2600:1f18:5000::5").within(networks)
    assert not classify("10.0.0.1").within(networks)


def test_service_name_from_invoked_by():
    assert service_name(classify("10.0.0.1"), "backup.amazonaws.com") == "backup.amazonaws.com"
    assert service_name(classify("ec2.amazonaws.com"), None) == "ec2.amazonaws.com"
    assert service_name(classify("10.0.0.1"), None) is None
    assert service_name(classify("AWS Internal"), "AWS Internal") is None


def test_mapped_address_compared_as_ipv4():
    caller = classify("::ffff:10.20.0.5")
    assert caller.address == ipaddress.ip_address("10.20.0.5")
    assert caller.within([ipaddress.ip_network("10.20.0.0/16")])


def test_loopback_and_unspecified_stay_ipv6():
    assert classify("::1").address == ipaddress.ip_address("::1")
    assert classify("::").address == ipaddress.ip_address("::")


def test_listed_documentation_range_internal():
    listed = [ipaddress.ip_network("198.51.100.0/24")]
    assert classify("198.51.100.7", listed).kind is AddressClass.INTERNAL
    assert classify("203.0.113.7", listed).kind is AddressClass.PUBLIC


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:192.168.1.0/120", "192.168.1.0/24"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::10.0.0.0/104", "10.0.0.0/8"),
        ("::/96", "::/96"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),
    ],
)
def test_ipv4_network_of_embedded_forms(written, expected):
    assert ipv4_network(ipaddress.ip_network(written)) == ipaddress.ip_network(expected)
