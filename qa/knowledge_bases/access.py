"""API keys scoped to knowledge bases: a keys file of sha256 hashes, each allowed to read, or read and write, the
knowledge bases it names. The admin key (QA_API_KEY) is not in it: it may do everything.

The file (QA_KEYS_FILE) is JSON; `qa kb key` adds an entry and prints the key once::

    {"keys": [{"name": "hr", "sha256": "<hex of sha256(key)>", "read": ["policies"], "write": ["hr-files"]}]}

Keys themselves are never stored or logged; only their hashes are, and `name` labels them in logs.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from qa.errors import InvalidKnowledgeBaseError
from qa.knowledge_bases.registry import check_name


def hash_key(key: str) -> str:
    """The sha256 hex digest a keys file stores for `key`."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new random key (32 bytes of randomness)."""
    return "zhqa-" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Access:
    """What one caller may do. `admin`: everything (the admin key, or a server without keys)."""

    name: str
    admin: bool = False
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()

    def can_read(self, kb: str) -> bool:
        return self.admin or kb in self.read or kb in self.write

    def can_write(self, kb: str) -> bool:
        return self.admin or kb in self.write


ADMIN = Access("admin", admin=True)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One line of the keys file."""

    name: str
    sha256: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "read": list(self.read), "write": list(self.write)}

    @classmethod
    def from_dict(cls, data: dict) -> KeyEntry:
        digest = str(data["sha256"]).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"key {data.get('name')!r}: sha256 must be 64 hex digits")
        return cls(str(data.get("name", "")), digest, tuple(check_name(n) for n in data.get("read", ())),
                   tuple(check_name(n) for n in data.get("write", ())))

    def access(self) -> Access:
        return Access(self.name or self.sha256[:8], False, frozenset(self.read), frozenset(self.write))


class KeyStore:
    """The keys file, read again whenever it changes (one stat per lookup)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, Access] = {}

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_mtime_ns, info.st_size

    def entries(self) -> list[KeyEntry]:
        """The entries of the file (none when it does not exist).

        Raises:
            InvalidKnowledgeBaseError: the file is not a valid keys file (the message says where).
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise InvalidKnowledgeBaseError(f"cannot read the keys file {self.path}: {e}") from e
        try:
            return [KeyEntry.from_dict(item) for item in data.get("keys", [])]
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise InvalidKnowledgeBaseError(f"invalid keys file {self.path}: {e}") from e

    def lookup(self, key: str) -> Access | None:
        """The access of `key`, or None when the file does not list it."""
        stamp = self._stat()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._by_hash = {e.sha256: e.access() for e in self.entries()}
                    self._stamp = stamp
        return self._by_hash.get(hash_key(key))

    def add(self, entry: KeyEntry) -> None:
        """Append an entry (written to a temporary file and renamed over the old one)."""
        with self._lock:
            entries = [e for e in self.entries() if e.name != entry.name or not entry.name] + [entry]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
            tmp.write_text(json.dumps({"keys": [e.to_dict() for e in entries]}, ensure_ascii=False, indent=2),
                           encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
