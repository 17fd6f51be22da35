"""Ed25519 keys that sign the ledger head, and the signed statement itself."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from imageprov.errors import LedgerKeyError
from imageprov.store.ledger import sha256_hex


def create_key(path: Path) -> tuple[Path, Path]:
    """Write a new private key to `path` (mode 0600) and its public key to `path.pub`.

    Raises:
        LedgerKeyError: either file exists already; neither is overwritten.
    """
    public_path = path.with_name(path.name + ".pub")
    for target in (path, public_path):
        if target.exists():
            raise LedgerKeyError(f"{target} exists; choose another path or remove it first")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_text(public_pem(key.public_key()))
    return path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key in PEM.

    Raises:
        LedgerKeyError: the file cannot be read or contains another kind of key.
    """
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise LedgerKeyError(f"cannot read the ledger key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError(f"{path} is not an Ed25519 private key")
    return key


def parse_public_key(text: str, origin: str) -> Ed25519PublicKey:
    """Read an Ed25519 public key from PEM text.

    Raises:
        LedgerKeyError: the text is not an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError) as error:
        raise LedgerKeyError(f"cannot read the public key in {origin}: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerKeyError(f"the public key in {origin} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a public key file, or take the public half of a private key file."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise LedgerKeyError(f"cannot read the key {path}: {error}") from None
    if "PRIVATE KEY" in text:
        return load_private_key(path).public_key()
    return parse_public_key(text, str(path))


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """Return the fingerprint of a public key: the SHA-256 of its raw 32 bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)


def head_message(seq: int, entry_hash: str, signed_at: str, fingerprint: str) -> bytes:
    """Return the bytes a head signature covers."""
    return f"imageprov ledger head\n{seq}\n{entry_hash}\n{signed_at}\n{fingerprint}".encode()


def sign_head(key: Ed25519PrivateKey, seq: int, entry_hash: str,
              signed_at: str) -> str:
    fingerprint = key_id(key.public_key())
    return key.sign(head_message(seq, entry_hash, signed_at, fingerprint)).hex()


def head_signature_valid(key: Ed25519PublicKey, seq: int, entry_hash: str,
                         signed_at: str, signature: str) -> bool:
    try:
        key.verify(bytes.fromhex(signature),
                   head_message(seq, entry_hash, signed_at, key_id(key)))
    except (InvalidSignature, ValueError):
        return False
    return True
