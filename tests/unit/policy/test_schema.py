"""Loading and validating policy files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from imageprov.errors import PolicyError
from imageprov.policy.schema import parse_policy

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


def test_date_expiry_ends_that_day():
    text = _with(exceptions=[{"image": "ami-1", "reason": "vendor", "expires": "2027-01-31"}])
    policy = parse_policy(text, "p.yaml")
    assert policy.exceptions[0].expires == datetime(2027, 2, 1, tzinfo=UTC)


def test_duration_shorthand_read():
    assert parse_policy(_with(delivery_window="90m"), "p").delivery_window == timedelta(
        minutes=90)
    assert parse_policy(_with(delivery_window=3600), "p").delivery_window == timedelta(
        hours=1)
