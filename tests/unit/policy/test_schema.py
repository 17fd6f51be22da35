"""Loading and validating policy files."""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from imageprov.errors import PolicyError
from imageprov.policy.schema import parse_policy, policy_warnings

VALID = {
    "version": 1,
    "builders": [{"name": "pipeline", "roles": ["arn:aws:iam::111122223333:role/Build"]}],
}


def _with(**changes):
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data.update(changes)
    return yaml.safe_dump(data)


def test_valid_policy_loads_with_hash():
    policy = parse_policy(yaml.safe_dump(VALID), "p.yaml")
    assert policy.builders[0].name == "pipeline"
    assert len(policy.hash) == 64
    assert policy.delivery_window == timedelta(hours=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"builders": []}, "builders: List should have at least 1 item"),
        ({"builders": [{"name": "open"}]},
         "builders[0] (open): Value error, a builder must list at least one of "
         "principals, roles or services"),
        ({"builders": [{"name": "ci", "roles": ["r"], "networks": ["10.0.0.0/33"]}]},
         "builders[0] (ci).networks[0]: Value error, invalid CIDR '10.0.0.0/33'"),
        ({"builders": [{"name": "ci", "roles": ["r"], "networks": ["10.0.0.1/8"]}]},
         "builders[0] (ci).networks[0]: Value error, invalid CIDR '10.0.0.1/8'"),
        ({"builders": [{"name": "ci", "roles": ["r"], "actions": ["delete"]}]},
         "builders[0] (ci).actions: Value error, action 'delete' creates no image"),
        ({"builders": [{"name": "ci", "roles": ["r"], "colour": "red"}]},
         "builders[0] (ci).colour: Extra inputs are not permitted"),
        ({"builders": [{"name": "a", "roles": ["r"]}, {"name": "a", "roles": ["s"]}]},
         "builders: Value error, builder name 'a' is used twice"),
        ({"exceptions": [{"image": "ami-1", "reason": "vendor"}]},
         "exceptions[0] (ami-1).expires: Field required"),
        ({"exceptions": [{"image": "ami-1", "reason": "x", "expires": "soon"}]},
         "exceptions[0] (ami-1).expires: Input should be a valid datetime"),
        ({"delivery_window": "two hours"}, "delivery_window: Input should be a valid timedelta"),
        ({"version": 2}, "version: Value error, unsupported policy version 2, expected 1"),
        ({"delivery_window": -3600},
         "delivery_window: Value error, duration must not be negative (got -3600)"),
        ({"delivery_window": "-1h"},
         "delivery_window: Value error, duration must not be negative (got '-1h')"),
        ({"digest_window": "-5m"},
         "digest_window: Value error, duration must not be negative (got '-5m')"),
        ({"delivery_window": "99999999999d"},
         "delivery_window: Value error, duration is longer than the maximum of 365d "
         "(got '99999999999d')"),
        ({"digest_window": "999999999999999999999s"},
         "digest_window: Value error, duration is longer than the maximum of 365d "
         "(got '999999999999999999999s')"),
        ({"delivery_window": "366d"},
         "delivery_window: Value error, duration is longer than the maximum of 365d"),
        ({"delivery_window": 10**12},
         "delivery_window: Value error, duration is longer than the maximum of 365d"),
        ({"delivery_window": 10**30},
         "delivery_window: Input should be a valid timedelta"),
        ({"delivery_window": True},
         "delivery_window: Value error, expected a duration such as 90s, 30m, 2h "
         "or 1d"),
        ({"exceptions": [{"image": "ami-1", "reason": "x",
                          "expires": "9999-12-31T23:59:59-05:00"}]},
         "exceptions[0] (ami-1).expires: Value error, 9999-12-31T23:59:59-05:00 is "
         "outside the supported range"),
        ({"exceptions": [{"image": "ami-1", "reason": "x",
                          "expires": "0001-01-01T00:00:00+05:00"}]},
         "exceptions[0] (ami-1).expires: Value error, 0001-01-01T00:00:00+05:00 is "
         "outside the supported range"),
        ({"exceptions": [{"image": "ami-1", "reason": "x", "expires": "9999-12-31"}]},
         "exceptions[0] (ami-1).expires: Value error, the end of 9999-12-31 in UTC is "
         "later than 9999-12-31T23:59:59Z"),
        ({"exceptions": [{"image": "ami-1", "reason": "x", "expires": 1}]},
         "exceptions[0] (ami-1).expires: Value error, expected a date such as "
         "2027-03-31"),
        ({"exceptions": [{"image": "ami-1", "reason": "x", "expires": True}]},
         "exceptions[0] (ami-1).expires: Value error, expected a date such as "
         "2027-03-31"),
        ({"exceptions": [{"image": "ami-1", "reason": "x", "expires": "2027-02-30"}]},
         "exceptions[0] (ami-1).expires: Value error, day is out of range for month "
         "(got '2027-02-30')"),
        ({"exceptions": [{"image": "ami-1", "reason": "r", "expires": "2099-01-01"},
                         {"image": "ami-1", "reason": "s", "expires": "2020-01-01"}]},
         "exceptions: Value error, exceptions[0] (ami-1) and exceptions[1] (ami-1) "
         "name the same image. Keep one exception per image"),
        ({"exceptions": [
            {"image": "ami-0a1b", "reason": "r", "expires": "2099-01-01"},
            {"image": "arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b",
             "reason": "s", "expires": "2099-01-01"}]},
         "exceptions: Value error, exceptions[0] (ami-0a1b) and exceptions[1] "
         "(arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b) name the same image"),
        ({"exceptions": [
            {"image": "reg.example/app@sha256:" + "a" * 64, "reason": "r",
             "expires": "2099-01-01"},
            {"image": "sha256:" + "a" * 64, "reason": "s", "expires": "2099-01-01"}]},
         "exceptions: Value error, exceptions[0] (reg.example/app@sha256:"),
        ({"path": "/etc/passwd"},
         "path: Extra inputs are not permitted (got '/etc/passwd')"),
        ({"hash": "abc"}, "hash: Extra inputs are not permitted (got 'abc')"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted (got 'blue')"),
    ],
)
def test_invalid_policy_names_rule_and_field(changes, message):
    with pytest.raises(PolicyError) as caught:
        parse_policy(_with(**changes), "/etc/imageprov/policy.yaml")
    assert "/etc/imageprov/policy.yaml" in str(caught.value)
    assert any(problem.startswith(message) for problem in caught.value.problems), (
        caught.value.problems)


def test_yaml_syntax_error_names_line():
    with pytest.raises(PolicyError) as caught:
        parse_policy("builders:\n  - name: [unclosed\n", "p.yaml")
    assert caught.value.problems[0].startswith("line 3 column 1: invalid YAML")


def test_repeated_key_names_line():
    text = ("version: 1\nbuilders:\n  - name: strict\n    roles: [r]\n"
            "builders:\n  - name: loose\n    roles: ['*']\n")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    problem = caught.value.problems[0]
    assert problem.startswith("line 5 column 1: invalid YAML")
    assert "found key 'builders' a second time (first on line 2)" in problem


def test_repeated_key_in_builder_rejected():
    text = "version: 1\nbuilders:\n  - name: a\n    roles: [r]\n    roles: ['*']\n"
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert "found key 'roles' a second time" in caught.value.problems[0]


def test_merge_key_may_be_overridden():
    text = ("version: 1\nbase: &base {name: a, roles: [r]}\n"
            "builders:\n  - <<: *base\n    name: b\n")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    # Only the unknown top-level key is a problem, not the merged name.
    assert caught.value.problems == ["base: Extra inputs are not permitted"]


def test_date_expiry_ends_that_day():
    text = _with(exceptions=[{"image": "ami-1", "reason": "vendor", "expires": "2027-01-31"}])
    policy = parse_policy(text, "p.yaml")
    assert policy.exceptions[0].expires == datetime(2027, 2, 1, tzinfo=UTC)


def test_duration_shorthand_read():
    assert parse_policy(_with(delivery_window="90m"), "p").delivery_window == timedelta(
        minutes=90)
    assert parse_policy(_with(delivery_window=3600), "p").delivery_window == timedelta(
        hours=1)


def test_unquoted_impossible_date_names_field():
    text = ("builders:\n  - {name: ci, roles: [r]}\nexceptions:\n"
            "  - {image: ami-1, reason: x, expires: 2027-02-30}\n"
            "  - {image: ami-2, reason: x, expires: 9999-12-31}\n")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    assert caught.value.problems == [
        "exceptions[0] (ami-1).expires: Value error, day is out of range for month "
        "(got '2027-02-30')",
        "exceptions[1] (ami-2).expires: Value error, the end of 9999-12-31 in UTC is "
        "later than 9999-12-31T23:59:59Z, the latest supported time, so give an "
        "earlier date (got 9999-12-31)",
    ]


def test_expiry_with_offset_stored_in_utc():
    text = _with(exceptions=[{"image": "ami-1", "reason": "vendor",
                              "expires": "2027-01-31T20:00:00-05:00"}])
    expires = parse_policy(text, "p.yaml").exceptions[0].expires
    assert expires == datetime(2027, 2, 1, 1, tzinfo=UTC)
    assert expires.utcoffset() == timedelta(0)


def test_latest_expiry_in_utc_accepted():
    text = _with(exceptions=[{"image": "ami-1", "reason": "vendor",
                              "expires": "9999-12-31T23:59:59Z"}])
    expires = parse_policy(text, "p.yaml").exceptions[0].expires
    assert expires == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_window_bounds_accepted():
    policy = parse_policy(_with(delivery_window=0, digest_window="365d"), "p")
    assert policy.delivery_window == timedelta(0)
    assert policy.digest_window == timedelta(days=365)


def test_distinct_images_each_excepted():
    text = _with(exceptions=[
        {"image": "arn:aws:ec2:us-east-1:111122223333:image/ami-1", "reason": "r",
         "expires": "2099-01-01"},
        {"image": "arn:aws:ec2:eu-west-1:111122223333:image/ami-1", "reason": "r",
         "expires": "2099-01-01"},
        {"image": "reg.example/a@sha256:" + "b" * 64, "reason": "r",
         "expires": "2099-01-01"},
        {"image": "reg.example/b@sha256:" + "b" * 64, "reason": "r",
         "expires": "2099-01-01"}])
    assert len(parse_policy(text, "p").exceptions) == 4


def test_path_and_hash_come_from_loading():
    policy = parse_policy(yaml.safe_dump(VALID), "/etc/imageprov/policy.yaml")
    assert policy.path == "/etc/imageprov/policy.yaml"
    assert policy.hash == hashlib.sha256(yaml.safe_dump(VALID).encode()).hexdigest()


def test_mapped_network_read_as_ipv4():
    text = _with(internal_networks=["::ffff:10.0.0.0/104", "2001:db8::/32"])
    networks = parse_policy(text, "p").internal_networks
    assert networks == [ipaddress.ip_network("10.0.0.0/8"),
                        ipaddress.ip_network("2001:db8::/32")]


def test_policy_warnings_name_field():
    text = _with(
        internal_networks=["0.0.0.0/0", "10.0.0.0/8", "::/0"],
        builders=[{"name": "pipeline", "roles": ["arn:aws:iam::1:role/Build"]},
                  {"name": "anyone", "principals": ["arn:aws:iam::*", "*"]},
                  {"name": "any-role", "roles": ["**"], "services": ["*"]}])
    assert policy_warnings(parse_policy(text, "p")) == [
        "internal_networks[0]: 0.0.0.0/0 makes every IPv4 address internal, so no IPv4 "
        "caller is flagged external-network",
        "internal_networks[2]: ::/0 makes every IPv6 address internal, so no IPv6 "
        "caller is flagged external-network",
        "builders[1] (anyone).principals[1]: pattern '*' matches every principal, "
        "so the builder approves any caller that meets its other criteria",
        "builders[2] (any-role).roles[0]: pattern '**' matches every role, so the "
        "builder approves any caller that meets its other criteria",
        "builders[2] (any-role).services[0]: pattern '*' matches every service, so the "
        "builder approves any caller that meets its other criteria",
    ]


def test_narrow_policy_has_no_warnings():
    assert policy_warnings(parse_policy(yaml.safe_dump(VALID), "p")) == []


def test_policy_warnings_for_halves_and_single_character_wildcards():
    text = _with(
        internal_networks=["0.0.0.0/1", "128.0.0.0/1", "8000::/1", "10.0.0.0/8"],
        builders=[{"name": "anyone", "principals": ["?*"]}])
    warnings = policy_warnings(parse_policy(text, "p"))
    assert warnings[:3] == [
        "internal_networks[0]: 0.0.0.0/1 makes 50% of IPv4 addresses internal",
        "internal_networks[1]: 128.0.0.0/1 makes 50% of IPv4 addresses internal",
        "internal_networks[2]: 8000::/1 makes 50% of IPv6 addresses internal",
    ]
    assert warnings[3].startswith("builders[0] (anyone).principals[0]: pattern '?*'")
    assert len(warnings) == 4


def test_azure_exception_in_any_case_meets_the_stored_id():
    image = ("/subscriptions/0000-AAAA/resourceGroups/Images/providers/"
             "Microsoft.Compute/images/Golden")
    text = _with(exceptions=[{"image": image, "reason": "vendor", "expires": "2099-01-01"}])
    (exception,) = parse_policy(text, "p").exceptions
    assert exception.image == image.lower()


def test_azure_exceptions_differing_in_case_are_duplicates():
    image = "/subscriptions/0000/resourceGroups/Images/providers/Microsoft.Compute/images/g"
    text = _with(exceptions=[
        {"image": image, "reason": "a", "expires": "2099-01-01"},
        {"image": image.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"),
         "reason": "b", "expires": "2099-01-01"}])
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p")
    assert "name the same image" in str(caught.value)


@pytest.mark.parametrize(("changes", "message"), [
    ({"builders": [{"name": "a\x00b", "roles": ["r"]}]},
     "builders[0] (a\x00b).name: Value error, contains a NUL character"),
    ({"builders": [{"name": "n" * 201, "roles": ["r"]}]},
     "builders[0] (" + "n" * 201 + ").name: String should have at most 200 characters"),
    ({"builders": [{"name": "ci", "roles": ["r\x00"]}]},
     "builders[0] (ci).roles: Value error, contains a NUL character"),
    ({"exceptions": [{"image": "ami-1", "reason": "vendor\x00", "expires": "2099-01-01"}]},
     "exceptions[0] (ami-1).reason: Value error, contains a NUL character"),
])
def test_text_a_verdict_cannot_store_rejected(changes, message):
    # Rule names and reasons are stored with verdicts: a NUL, or a name longer than
    # the rule column, would fail every evaluation on PostgreSQL.
    with pytest.raises(PolicyError) as caught:
        parse_policy(_with(**changes), "p.yaml")
    assert any(problem.startswith(message) for problem in caught.value.problems), (
        caught.value.problems)


def test_rule_name_at_limit_accepted():
    policy = parse_policy(_with(builders=[{"name": "n" * 200, "roles": ["r"]}]), "p.yaml")
    assert policy.builders[0].name == "n" * 200
