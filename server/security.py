"""Password and API-token hashing.

Passwords use scrypt (werkzeug's default, a memory-hard KDF). API tokens are
long random strings, so a plain SHA-256 is enough to store them (no dictionary
to attack) and lets the API find a token with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

TOKEN_PREFIX = "fp_"


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def verify_password(stored_hash: str, password: str) -> bool:
    return check_password_hash(stored_hash, password)


def new_token() -> str:
    """A new API token (shown once; only its hash is stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
