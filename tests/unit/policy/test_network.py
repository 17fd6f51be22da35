"""Address classes of recorded callers."""

from __future__ import annotations

import ipaddress

import pytest

from imageprov.policy.network import AddressClass, classify, service_name


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
