"""The policy file: approved builders, networks and exceptions, validated by pydantic.

A policy is validated whole when it loads, before any cloud is called, and every
problem is reported with the file, the rule and the field.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from imageprov.errors import PolicyError
from imageprov.model import EventEffect
from imageprov.policy.network import ipv4_network
from imageprov.yaml_loader import UniqueKeyLoader

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_DURATION = re.compile(r"^\s*(-?\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# Windows are added to image creation times, so a bound keeps that sum within the
# range of datetime. A year is far longer than any log delivery delay they cover.
_MAX_WINDOW = timedelta(days=365)


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 30m, 2h or 1d, or a number "
                         "of seconds")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            try:
                return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
            except OverflowError:
                raise ValueError(f"duration is longer than the maximum of "
                                 f"{_MAX_WINDOW.days}d") from None
    return value


def _window(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("duration must not be negative")
    if value > _MAX_WINDOW:
        raise ValueError(f"duration is longer than the maximum of {_MAX_WINDOW.days}d")
    return value


def _network(value: Any) -> Network:
    if not isinstance(value, str):
        raise ValueError(f"expected a CIDR string such as 10.0.0.0/8, got {value!r}")
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"invalid CIDR {value!r}: {error}") from None
    return ipv4_network(network)


def _expiry(value: Any) -> Any:
    # A bare date expires at the end of that day in UTC.
    if isinstance(value, date) and not isinstance(value, datetime):
        start = datetime(value.year, value.month, value.day, tzinfo=UTC)
        try:
            return start + timedelta(days=1)
        except OverflowError:
            raise ValueError(f"the end of {value.isoformat()} in UTC is later than "
                             "9999-12-31T23:59:59Z, the latest supported time, so "
                             "give an earlier date") from None
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return _expiry(date.fromisoformat(value))
    if not isinstance(value, (str, datetime)):
        # pydantic would read a number as seconds since 1970, which no one writes
        # for an expiry.
        raise ValueError(f"expected a date such as 2027-03-31 or a time such as "
                         f"2027-03-31T18:00:00Z, got {value!r}")
    return value


def _in_utc(value: datetime) -> datetime:
    # A time without an offset is read as UTC. Any other time is converted once
    # here, so that comparing and printing it later cannot overflow.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the supported range of "
                         "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z once "
                         "converted to UTC") from None


Duration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_window)]
Cidr = Annotated[Network, BeforeValidator(_network)]
Expiry = Annotated[datetime, BeforeValidator(_expiry), AfterValidator(_in_utc)]
Pattern = Annotated[str, Field(min_length=1)]
# A verdict stores the name of the rule that decided it, in a column of 256
# characters, after a prefix such as `builder:`.
MAX_RULE_NAME = 200
RuleName = Annotated[str, Field(min_length=1, max_length=MAX_RULE_NAME)]

_CREATING = [effect.value for effect in EventEffect if effect.creates]


def _without_nul(value: Any) -> Any:
    """Reject text that contains a NUL character, which PostgreSQL text cannot
    store: names and reasons end up in verdicts."""
    texts = value if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise ValueError("contains a NUL character (U+0000), which the database "
                         "cannot store: remove it")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return _without_nul(value)


class Builder(_Strict):
    """One approved builder: who may create images, and from where.

    Every listed criterion must hold. Patterns are shell-style globs (`*`, `?`).

        - name: golden-ami-pipeline
          roles: ["arn:aws:iam::111122223333:role/build/ImageBuild"]
          accounts: ["111122223333"]
          networks: ["10.20.0.0/16"]
          user_agents: ["*Packer/*"]
    """

    name: RuleName
    principals: list[Pattern] = Field(default_factory=list)
    roles: list[Pattern] = Field(default_factory=list)
    services: list[Pattern] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)
    networks: list[Cidr] = Field(default_factory=list)
    user_agents: list[Pattern] = Field(default_factory=list)
    actions: list[EventEffect] = Field(default_factory=lambda: [EventEffect(e) for e in _CREATING])
    platforms: list[Literal["aws", "azure", "gcp", "oci"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_an_identity(self) -> Builder:
        # Without an identity criterion a builder would approve every caller in its
        # accounts and networks, which is the mistake an attacker hopes for.
        if not (self.principals or self.roles or self.services):
            raise ValueError(
                "a builder must list at least one of principals, roles or services"
            )
        return self

    @field_validator("accounts")
    @classmethod
    def _account_ids(cls, accounts: list[str]) -> list[str]:
        for account in accounts:
            if not account.strip():
                raise ValueError("an account id must not be empty")
        return accounts

    @field_validator("actions")
    @classmethod
    def _creating_actions(cls, actions: list[EventEffect]) -> list[EventEffect]:
        if not actions:
            raise ValueError(f"list at least one action of {', '.join(_CREATING)}")
        for action in actions:
            if not action.creates:
                raise ValueError(
                    f"action {action.value!r} creates no image; use {', '.join(_CREATING)}"
                )
        return actions


class ImageException(_Strict):
    """An image judged `excepted` until the exception expires.

        - image: arn:aws:ec2:eu-west-1:111122223333:image/ami-0123456789abcdef0
          reason: vendor appliance imported by hand, ticket SEC-142
          expires: 2027-03-31
    """

    image: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: Expiry

    @field_validator("image")
    @classmethod
    def _azure_ids_in_lower_case(cls, value: str) -> str:
        # Azure resource ids are stored lower-cased, since Azure compares them
        # without case; an exception in any case must meet them.
        return value.lower() if value.lower().startswith("/subscriptions/") else value


class SigningKey(_Strict):
    """A public key whose signatures and attestations count as evidence.

    ECDSA P-256, Ed25519 and RSA (2048 bits or more) keys are read, in PEM.

        - name: release-signing
          public_key: |
            -----BEGIN PUBLIC KEY-----
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...
            -----END PUBLIC KEY-----
    """

    name: RuleName
    public_key: str = Field(min_length=1)

    @field_validator("public_key")
    @classmethod
    def _readable(cls, public_key: str) -> str:
        from imageprov.policy.signatures import load_public_key

        load_public_key(public_key)
        return public_key


class ProvenanceRule(_Strict):
    """The SLSA provenance an image must carry, signed by a listed key.

    `builders` are globs on `builder.id` (`runDetails.builder.id` in SLSA v1);
    `source_repositories` are globs on the source repository the provenance names.
    Either list may be empty; `signed_by` defaults to every key of the policy.
    """

    builders: list[Pattern] = Field(default_factory=list)
    source_repositories: list[Pattern] = Field(default_factory=list)
    signed_by: list[str] = Field(default_factory=list)


class RegistryRule(_Strict):
    """Evidence required of the images of some repositories.

    `repositories` are globs on `registry/repository`. An image must carry a valid
    signature by one of the `signed_by` keys, and SLSA provenance that meets
    `provenance`, where given. Every rule that matches an image applies.

        - name: team-images
          repositories: ["registry.example:5000/team/*"]
          signed_by: [release-signing]
          provenance:
            builders: ["https://ci.example/builders/image@v1"]
            source_repositories: ["https://git.example/team/*"]
    """

    name: RuleName
    repositories: list[Pattern] = Field(min_length=1)
    signed_by: list[str] = Field(default_factory=list)
    provenance: ProvenanceRule | None = None

    @model_validator(mode="after")
    def _requires_something(self) -> RegistryRule:
        if not self.signed_by and self.provenance is None:
            raise ValueError("a registry rule must require signed_by, provenance or both")
        return self


_AMI_ARN = re.compile(r"^arn:[^:]+:ec2:[^:]*:[^:]*:image/(ami-[0-9a-f]+)$")
_DIGEST_REF = re.compile(r"^.+@(sha256:[0-9a-f]{64})$")


def _same_image(first: str, second: str) -> bool:
    """Return whether two exception names can match one image.

    An image is matched by its ref, its native id or its digest, so an AMI's ARN
    and its id name one image, and so do a digest and a reference to it.
    """
    return first == second or first in _aliases(second) or second in _aliases(first)


def _aliases(name: str) -> set[str]:
    aliases: set[str] = set()
    for pattern in (_AMI_ARN, _DIGEST_REF):
        match = pattern.match(name)
        if match:
            aliases.add(match.group(1))
    return aliases


class Policy(_Strict):
    """A whole policy file.

        require_validated_logs: true
        digest_window: 2h
    """

    version: int = 1
    delivery_window: Duration = timedelta(hours=1)
    internal_networks: list[Cidr] = Field(default_factory=list)
    share_targets: list[str] = Field(default_factory=list)
    builders: list[Builder] = Field(min_length=1)
    exceptions: list[ImageException] = Field(default_factory=list)
    keys: list[SigningKey] = Field(default_factory=list)
    registries: list[RegistryRule] = Field(default_factory=list)
    # Approve only AWS events read from a log file that a signed CloudTrail digest
    # lists with the same hash; other platforms have no digests to require. An
    # event younger than `digest_window` is `pending` meanwhile, since CloudTrail
    # writes a digest an hour after the files it lists. A file whose digest check
    # failed never approves, whatever this is set to.
    require_validated_logs: bool = False
    digest_window: Duration = timedelta(hours=2)

    # Set by parse_policy, not by the file. Private attributes are not fields, so a
    # file that names them is rejected like any unknown key.
    _path: str = PrivateAttr(default="")
    _hash: str = PrivateAttr(default="")

    @property
    def path(self) -> str:
        """The file the policy was read from."""
        return self._path

    @property
    def hash(self) -> str:
        """The SHA-256 of the policy text, in hex."""
        return self._hash

    @field_validator("version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version != 1:
            raise ValueError(f"unsupported policy version {version}, expected 1")
        return version

    @field_validator("builders")
    @classmethod
    def _unique_names(cls, builders: list[Builder]) -> list[Builder]:
        seen: set[str] = set()
        for builder in builders:
            if builder.name in seen:
                raise ValueError(f"builder name {builder.name!r} is used twice")
            seen.add(builder.name)
        return builders

    @field_validator("exceptions")
    @classmethod
    def _one_exception_per_image(
        cls, exceptions: list[ImageException]
    ) -> list[ImageException]:
        # With two exceptions for one image, which one applies would depend on
        # their order and on which has expired.
        problems = [
            f"exceptions[{first}] ({exceptions[first].image}) and "
            f"exceptions[{second}] ({exceptions[second].image}) name the same image"
            for second in range(len(exceptions)) for first in range(second)
            if _same_image(exceptions[first].image, exceptions[second].image)
        ]
        if problems:
            raise ValueError(". ".join(problems) + ". Keep one exception per image")
        return exceptions

    @model_validator(mode="after")
    def _known_keys(self) -> Policy:
        names = [key.name for key in self.keys]
        if len(names) != len(set(names)):
            raise ValueError("a key name is used twice in keys")
        for rule in self.registries:
            wanted = list(rule.signed_by)
            if rule.provenance is not None:
                wanted += rule.provenance.signed_by
            unknown = sorted(set(wanted) - set(names))
            if unknown:
                raise ValueError(f"registry rule {rule.name!r} names keys that keys does "
                                 f"not list: {', '.join(unknown)}")
            if rule.provenance is not None and not names:
                raise ValueError(f"registry rule {rule.name!r} requires provenance, "
                                 "which only counts when signed by a listed key")
        return self


class _PolicyLoader(UniqueKeyLoader):
    """A safe YAML loader that keeps a timestamp it cannot build as its text, and
    rejects a repeated key.

    PyYAML raises on an impossible date (2027-02-30) or offset (-25:00) while it
    loads the file, before any field is known. Kept as text, the value reaches
    validation, whose error names the rule and the field.
    """


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_PolicyLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def policy_warnings(policy: Policy) -> list[str]:
    """List the valid settings that approve or trust every caller.

    Each warning names the rule and the field. The settings still judge as written.
    """
    warnings = []
    for index, network in enumerate(policy.internal_networks):
        family = f"IPv{network.version}"
        if network.prefixlen == 0:
            warnings.append(f"internal_networks[{index}]: {network} makes every "
                            f"{family} address internal, so no {family} caller is "
                            "flagged external-network")
        elif network.prefixlen <= 4:
            # Split halves such as 0.0.0.0/1 and 128.0.0.0/1 cover everything too.
            share = 2 ** -network.prefixlen
            warnings.append(f"internal_networks[{index}]: {network} makes "
                            f"{share:.0%} of {family} addresses internal")
    for index, builder in enumerate(policy.builders):
        for field, noun in (("principals", "principal"), ("roles", "role"),
                            ("services", "service")):
            for position, pattern in enumerate(getattr(builder, field)):
                # `?` needs one character, which every name has.
                if "*" in pattern and set(pattern) <= {"*", "?"}:
                    warnings.append(
                        f"builders[{index}] ({builder.name}).{field}[{position}]: "
                        f"pattern {pattern!r} matches every {noun}, so the builder "
                        "approves any caller that meets its other criteria")
    return warnings


def _where(data: Any, location: tuple[Any, ...]) -> str:
    """Name the rule and field of a pydantic error location in the policy's terms."""
    parts: list[str] = []
    node = data
    for step in location:
        if isinstance(step, int):
            label = f"[{step}]"
            if isinstance(node, list) and step < len(node):
                node = node[step]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label += f" ({node['name']})"
                elif isinstance(node, dict) and isinstance(node.get("image"), str):
                    label += f" ({node['image']})"
            parts.append(label)
        else:
            node = node.get(step) if isinstance(node, dict) else None
            parts.append(("." if parts else "") + str(step))
    return "".join(parts) or "(top level)"


def _shown(value: Any) -> str:
    # YAML reads an unquoted date as a date, which the file spells in ISO form.
    if isinstance(value, date):
        return value.isoformat()
    return repr(value)


def parse_policy(text: str, path: str) -> Policy:
    """Validate a policy's YAML text.

    Raises:
        PolicyError: the YAML is invalid or a rule breaks the schema; the message
            lists every problem with its rule and field.
    """
    try:
        data = yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise PolicyError(path, [f"{where}invalid YAML: {error}"]) from None
    except ValueError as error:
        raise PolicyError(path, [f"invalid value: {error}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(path, ["(top level): expected a mapping of policy settings"])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{_where(data, tuple(item['loc']))}: {item['msg']}"
            + (f" (got {_shown(item['input'])})" if item["type"] != "missing"
               and not isinstance(item["input"], dict | list) else "")
            for item in error.errors()
        ]
        raise PolicyError(path, problems) from None
    policy._path = path
    policy._hash = hashlib.sha256(text.encode()).hexdigest()
    return policy


def load_policy(path: str | Path) -> tuple[Policy, str]:
    """Read and validate a policy file; return the policy and its text.

    Raises:
        PolicyError: the file cannot be read or is invalid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(str(path), [f"cannot read the file: {error}"]) from None
    return parse_policy(text, str(path)), text
