"""Check HTTP basic auth credentials against bcrypt hashes, paying bcrypt once per distinct credential.

bcrypt is slow on purpose (about 70 ms at cost 10), far too slow to pay on every scrape. Each verdict
is cached under an HMAC of the user, the hash and the presented password, keyed by a random secret of
this process, so the cache holds no password and no reusable digest of one. The cache is a bounded
LRU: a client spraying wrong passwords only ever evicts its own entries' neighbours.

bcrypt runs in a worker thread, one check at a time (as exporter-toolkit does), so a flood of new
credentials cannot take every core or block the event loop; requests that arrive together with the
same new credentials wait for one check and share its verdict. An unknown user is checked against a
dummy hash of the same cost, so timing does not tell which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt
import structlog

CACHE_SIZE = 1024

log = structlog.get_logger("exporter.serve.security")


class BasicAuth:
    """The users of a web config and the verdicts reached so far."""

    def __init__(self, users: Mapping[str, str], cache_size: int = CACHE_SIZE) -> None:
        self._users = {name.encode(): hashed.encode() for name, hashed in users.items()}
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._cache_size = cache_size
        self._key = secrets.token_bytes(32)
        self._lock = asyncio.Lock()
        self._dummy: bytes | None = None
        self.bcrypt_runs = 0
        """How many times bcrypt ran (the cache's misses)."""

    @property
    def enabled(self) -> bool:
        """True when the config names users, so requests need credentials."""
        return bool(self._users)

    async def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a known user's password."""
        credentials = parse_basic(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        key = self._cache_key(user, hashed, password)
        verdict = self._cache.get(key)
        if verdict is None:
            return await self._verify(key, hashed, password)
        self._cache.move_to_end(key)
        return verdict

    def _cache_key(self, user: bytes, hashed: bytes | None, password: bytes) -> bytes:
        message = b"".join(len(part).to_bytes(4, "big") + part for part in (user, hashed or b"", password))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _remember(self, key: bytes, verdict: bool) -> None:
        self._cache[key] = verdict
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _verify(self, key: bytes, hashed: bytes | None, password: bytes) -> bool:
        """Run bcrypt, one check at a time; requests that waited for the same credentials reuse its verdict."""
        async with self._lock:
            verdict = self._cache.get(key)
            if verdict is None:
                self.bcrypt_runs += 1
                log.debug("credentials_checking", known_user=hashed is not None)
                verdict = await asyncio.to_thread(self._compare, hashed, password) and hashed is not None
                self._remember(key, verdict)
            return verdict

    def _compare(self, hashed: bytes | None, password: bytes) -> bool:
        try:
            return bcrypt.checkpw(password, hashed if hashed is not None else self._dummy_hash())
        except ValueError:  # a malformed hash cannot match; the loader refuses them anyway
            return False

    def _dummy_hash(self) -> bytes:
        if self._dummy is None:
            costs = [int(h.split(b"$")[2]) for h in self._users.values()] or [10]
            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=max(costs)))
        return self._dummy


def parse_basic(authorization: str | None) -> tuple[bytes, bytes] | None:
    """The user and password of a ``Basic`` header, as bytes; ``None`` for anything else."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None
