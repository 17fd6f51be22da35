"""The `explain` view: everything behind one image's verdict."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from imageprov.cli.render import clipped, safe
from imageprov.correlate import Correlator
from imageprov.model import DISPLACED_TAG, FAMILY_TAG, HEADS_FAMILY_TAG, Image
from imageprov.errors import ImageprovError
from imageprov.policy.network import Network, classify
from imageprov.policy.schema import parse_policy
from imageprov.store import Store


def _internal_networks(store: Store, policy_hash: str) -> list[Network]:
    """Return the extra internal networks of the policy that gave the verdict, so that
    addresses are classed as that judgement classed them."""
    text = store.policy_text(policy_hash)
    if text is None:
        return []
    try:
        return parse_policy(text, f"policy {policy_hash[:12]}").internal_networks
    except ImageprovError:
        # A policy stored by an older release that this one no longer accepts.
        return []


def show(console: Console, store: Store, image: Image) -> None:
    console.rule(safe(image.ref))
    console.print(safe(f"kind {image.kind.value}, account {image.account}, region {image.region}, "
                  f"created {image.created.isoformat() if image.created else 'unknown'}, "
                  f"state {image.state or '-'}, names {', '.join(image.names) or '-'}"),
                  highlight=False)
    _show_family(console, image)
    history = store.verdict_history(image.ref)
    if not history:
        console.print("no verdict yet: run `imageprov scan`")
        return
    current = history[-1]
    console.print(f"[bold]{current.status.value}[/] flags "
                  f"{', '.join(f.value for f in current.flags) or 'none'}; rule "
                  f"{safe(current.rule or '-')}; policy {current.policy_hash[:12]}",
                  highlight=False)
    console.print(f"reason: {safe(current.reason)}", highlight=False)

    # The same join that judged the image: events naming its id, and an import
    # joined by name when none does.
    events = list(Correlator(store.events()).attribute(image).history)
    for event in events:
        if event.event_id == current.event_id and event.source_image:
            console.print(safe(f"copy of {event.source_image} in "
                                 f"{event.source_region or image.region}, copied by "
                                 f"{event.principal.id}"), highlight=False)
    if image.source_image:
        console.print(safe(f"inventory names the source image {image.source_image} in "
                             f"{image.source_region or image.region}"), highlight=False)
    internal = _internal_networks(store, current.policy_hash)
    if events:
        table = Table(title="events naming this image")
        for name in ("time", "action", "actor", "issuer", "address", "user agent",
                     "result", "record", "digest"):
            table.add_column(name, overflow="fold")
        for event in events:
            caller = classify(event.source_ip, internal)
            mark = " (decided)" if event.event_id == current.event_id else ""
            cells = [event.time.isoformat(), event.action + mark, event.principal.id,
                     event.principal.issuer or "-",
                     f"{event.source_ip or '-'} [{caller.kind.value}]",
                     clipped(event.user_agent or "-"), event.error_code or "ok",
                     f"{event.origin.location} #{event.origin.index}",
                     event.log_validation.value]
            table.add_row(*(safe(cell) for cell in cells))
        console.print(table)
    elsewhere = [e for e in store.events() if image.registry and e.registry
                 and e.target == image.digest
                 and (e.registry, e.repository) != (image.registry, image.repository)]
    if elsewhere:
        table = Table(title="the same digest in other registries and repositories")
        for name in ("time", "where", "tag", "action", "actor", "address", "result"):
            table.add_column(name, overflow="fold")
        for event in elsewhere:
            table.add_row(*(safe(cell) for cell in (
                event.time.isoformat(), f"{event.registry}/{event.repository}",
                event.tag or "-", event.action, event.principal.id,
                event.source_ip or "-", event.error_code or "ok")))
        console.print(table)
    for tag in image.names if image.registry else ():
        moves = store.tag_history(image.registry or "", image.repository or "", tag)
        if moves:
            table = Table(title=f"history of tag {safe(tag)}")
            for name in ("time", "digest", "pushed by", "event", "result"):
                table.add_column(name, overflow="fold", no_wrap=name == "digest")
            for move in moves:
                table.add_row(*(safe(cell) for cell in (
                    move.time.isoformat(), move.digest or "-", move.actor, move.event_id,
                    move.error_code or "ok")))
            console.print(table)
    table = Table(title="verdict history")
    for name in ("decided", "status", "flags", "rule", "policy"):
        table.add_column(name)
    for verdict in history:
        table.add_row(verdict.decided_at.isoformat(), verdict.status.value,
                      ", ".join(f.value for f in verdict.flags), safe(verdict.rule or "-"),
                      verdict.policy_hash[:12])
    console.print(table)


def _show_family(console: Console, image: Image) -> None:
    family = image.tags.get(FAMILY_TAG)
    heads = image.tags.get(HEADS_FAMILY_TAG)
    if not family and not heads:
        return
    text = f"image family {family or '-'}"
    if heads:
        text += (f"; heads watched family {heads} now, so new VMs of the family boot it; "
                 f"displaced {image.tags.get(DISPLACED_TAG) or 'no image in the inventory'}")
    console.print(safe(text), highlight=False)
