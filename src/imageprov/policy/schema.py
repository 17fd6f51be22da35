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
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from imageprov.errors import PolicyError
from imageprov.model import EventEffect
from imageprov.policy.network import ipv4_network

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
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
        return datetime(value.year, value.month, value.day, tzinfo=UTC) + timedelta(days=1)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return _expiry(date.fromisoformat(value))
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Cidr = Annotated[Network, BeforeValidator(_network)]
Expiry = Annotated[datetime, BeforeValidator(_expiry)]
Pattern = Annotated[str, Field(min_length=1)]

_CREATING = [effect.value for effect in EventEffect if effect.creates]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Builder(_Strict):
    """One approved builder: who may create images, and from where.

    Every listed criterion must hold. Patterns are shell-style globs (`*`, `?`).

        - name: golden-ami-pipeline
          roles: ["arn:aws:iam::111122223333:role/build/ImageBuild"]
          accounts: ["111122223333"]
          networks: ["10.20.0.0/16"]
          user_agents: ["*Packer/*"]
    """

    name: str = Field(min_length=1)
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

    @field_validator("expires")
    @classmethod
    def _aware(cls, expires: datetime) -> datetime:
        return expires if expires.tzinfo else expires.replace(tzinfo=UTC)


class SigningKey(_Strict):
    """A public key whose signatures and attestations count as evidence.

    ECDSA P-256, Ed25519 and RSA (2048 bits or more) keys are read, in PEM.

        - name: release-signing
          public_key: |
            -----BEGIN PUBLIC KEY-----
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...
            -----END PUBLIC KEY-----
    """

    name: str = Field(min_length=1)
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

    name: str = Field(min_length=1)
    repositories: list[Pattern] = Field(min_length=1)
    signed_by: list[str] = Field(default_factory=list)
    provenance: ProvenanceRule | None = None

    @model_validator(mode="after")
    def _requires_something(self) -> RegistryRule:
        if not self.signed_by and self.provenance is None:
            raise ValueError("a registry rule must require signed_by, provenance or both")
        return self


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

    # Set by load_policy, not by the file.
    path: str = ""
    hash: str = ""

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


def parse_policy(text: str, path: str) -> Policy:
    """Validate a policy's YAML text.

    Raises:
        PolicyError: the YAML is invalid or a rule breaks the schema; the message
            lists every problem with its rule and field.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise PolicyError(path, [f"{where}invalid YAML: {error}"]) from None
    except ValueError as error:
        # YAML reads 2027-02-30 as a date and fails while building it.
        raise PolicyError(path, [f"invalid value: {error}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(path, ["(top level): expected a mapping of policy settings"])
    data.pop("path", None)
    data.pop("hash", None)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{_where(data, tuple(item['loc']))}: {item['msg']}"
            + (f" (got {item['input']!r})" if item["type"] != "missing"
               and not isinstance(item["input"], dict | list) else "")
            for item in error.errors()
        ]
        raise PolicyError(path, problems) from None
    digest = hashlib.sha256(text.encode()).hexdigest()
    return policy.model_copy(update={"path": path, "hash": digest})


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
