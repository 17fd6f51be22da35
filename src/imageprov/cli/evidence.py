"""The `keys`, `ledger` and `evidence` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console

from imageprov.cli._common import _database, _fail, _ledger_key, _open_store
from imageprov.cli.render import safe
from imageprov.errors import ImageprovError
from imageprov.ledger import Problem, verify_ledger
from imageprov.ledger.bundle import export_bundle, read_bundle, verify_bundle
from imageprov.ledger.keys import create_key, key_id, load_public_key, parse_public_key
from imageprov.sources.fields import shown
from imageprov.store import Store

keys_app = typer.Typer(no_args_is_help=True, help="Keys that sign the verdict ledger.")
ledger_app = typer.Typer(no_args_is_help=True, help="The tamper-evident verdict ledger.")
evidence_app = typer.Typer(no_args_is_help=True,
                           help="Evidence bundles that can be checked offline.")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

PublicKeyOption = Annotated[
    Path | None,
    typer.Option("--public-key", help="Ed25519 public key (PEM) the signatures must "
                 "verify with; a private key file gives its public half."),
]


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems[:50]:
        out.print(f"  {safe(str(problem))}", soft_wrap=True)
    if len(problems) > 50:
        out.print(f"  ... and {len(problems) - 50} more problems")


@keys_app.command("create")
def keys_create(
    path: Annotated[Path, typer.Argument(help="Where to write the private key (PEM); "
                                              "the public key goes to PATH.pub.")],
) -> None:
    """Create an Ed25519 key pair for signing the ledger head."""
    try:
        private, public = create_key(path)
        fingerprint = key_id(load_public_key(public))
    except ImageprovError as error:
        raise _fail(error) from error
    out.print(f"private key {safe(str(private))} (mode 0600), "
              f"public key {safe(str(public))}")
    out.print(f"key id {fingerprint}")
    out.print(f"set `ledger_key: {safe(str(private))}` in the configuration to sign "
              "each cycle")


def _verifying_key(store: Store, public_key: Path | None,
                   config: Path | None) -> Ed25519PublicKey:
    path = public_key or _ledger_key(config)
    if path is not None:
        return load_public_key(path)
    head = store.latest_head()
    if head is None:
        raise ImageprovError("the ledger has no signed head and no key was given; "
                             "pass --public-key or --config with ledger_key")
    err.print("warning: no key given, so the heads are checked against the key stored "
              "in the database, which anyone who can edit the database can replace; "
              f"compare key id {safe(head.key_id)} with your own record")
    return parse_public_key(head.public_key, f"ledger head {head.id}")


@ledger_app.command("verify")
def ledger_verify(
    public_key: PublicKeyOption = None,
    database: Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration file.")] = None,
) -> None:
    """Check every ledger entry, signed head and verdict row; exit 1 on a mismatch."""
    store = _open_store(_database(database, config), existing=True)
    try:
        key = _verifying_key(store, public_key, config)
        report = verify_ledger(store, key)
    except ImageprovError as error:
        raise _fail(error) from error
    finally:
        store.close()
    out.print(f"{report.entries} entries, {report.heads} signed heads (newest signs entry "
              f"{report.signed_seq}), {report.verdict_rows} verdict rows, key id "
              f"{key_id(key)}")
    if report.last_seq > report.signed_seq:
        out.print(f"entries {report.signed_seq + 1} to {report.last_seq} are not signed yet")
    if report.ok:
        out.print("ledger verified")
        return
    out.print(f"ledger verification FAILED at {safe(str(report.problems[0].where))}:")
    _print_problems(report.problems)
    raise typer.Exit(code=1)


@ledger_app.command("rebuild")
def ledger_rebuild(
    database: Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration file.")] = None,
) -> None:
    """Replace every verdict row with the verdicts the ledger records."""
    store = _open_store(_database(database, config), existing=True)
    try:
        count = store.rebuild_verdicts()
    finally:
        store.close()
    out.print(f"{count} verdict rows rebuilt from the ledger")


@evidence_app.command("export")
def evidence_export(
    images: Annotated[list[str], typer.Argument(help="Image ARNs, ids, references or "
                                                     "digests.")],
    bundle: Annotated[Path, typer.Option("--out", help="Bundle file to write (JSON).")],
    database: Annotated[str | None, typer.Option("--database", help="SQLAlchemy URL.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Configuration file.")] = None,
) -> None:
    """Write a bundle that proves the verdicts of IMAGE... with no database."""
    store = _open_store(_database(database, config), existing=True)
    try:
        refs: list[str] = []
        for text in images:
            found = store.find_images(text)
            if not found:
                raise ImageprovError(f"no image {shown(text, 120)} in {store.display_url}")
            refs.extend(image.ref for image in found)
        counts = export_bundle(store, refs, bundle)
    except ImageprovError as error:
        raise _fail(error) from error
    finally:
        store.close()
    out.print(f"{safe(str(bundle))}: {counts['images']} images, "
              f"{counts['entries']} ledger entries "
              f"in a chain of {counts['chain']}, {counts['events']} creation events, "
              f"{counts['policies']} policies")


@evidence_app.command("verify")
def evidence_verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle file from `evidence export`.")],
    public_key: PublicKeyOption = None,
) -> None:
    """Check a bundle offline: signature, chain, verdicts, events and policies."""
    try:
        content = read_bundle(bundle)
        pinned = load_public_key(public_key) if public_key else None
    except ImageprovError as error:
        raise _fail(error) from error
    report = verify_bundle(content, pinned)
    # The head and every problem quote the bundle, which anyone can write.
    out.print(f"{safe(str(bundle))}: {len(report.images)} images, "
              f"{report.entries} ledger entries, "
              f"head signs entry {safe(str(report.head_seq))}, key id {report.key_id}")
    if pinned is None:
        out.print("the signature was checked with the key inside the bundle; compare the "
                  "key id with the operator's published key or pass --public-key")
    if report.ok:
        out.print("bundle verified")
        return
    out.print(f"bundle verification FAILED at {safe(str(report.problems[0].where))}:")
    _print_problems(report.problems)
    raise typer.Exit(code=1)
