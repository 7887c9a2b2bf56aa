"""API keys of ``searchkit serve``: an admin key (everything) and a search key (read only).

Keys come as ``Authorization: Bearer KEY`` and are compared in constant time
(``hmac.compare_digest``, against both keys whatever the first comparison said); they are
never logged or echoed. A server without keys is open, so it may only listen on a loopback
address unless started with ``insecure`` (:func:`check_bind`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Literal

from searchkit.errors import InvalidParameter

log = logging.getLogger("searchkit.serve.app")

Role = Literal["admin", "search"]
LOOPBACK_NAMES = ("localhost",)
MIN_KEY_CHARS = 16


class Denied(Exception):
    """A request without the key its route needs: 401 (no or a wrong key) or 403."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class Keys:
    """The server's keys; without an admin key every route is open."""

    admin: str | None = field(default=None, repr=False)
    search: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for param, key in (("api_key", self.admin), ("search_key", self.search)):
            if key is not None and len(key) < MIN_KEY_CHARS:
                raise InvalidParameter(
                    f"a key must be at least {MIN_KEY_CHARS} characters; make one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                    param=param,
                )
        if self.search is not None and self.admin is None:
            raise InvalidParameter(
                "a search key needs an admin key too (api_key=KEY), or nobody could write",
                param="search_key",
            )
        if self.search is not None and self.search == self.admin:
            raise InvalidParameter(
                "the search key must differ from the admin key", param="search_key"
            )

    @property
    def enabled(self) -> bool:
        return self.admin is not None

    def role(self, authorization: str | None) -> Role | None:
        """The role the ``Authorization`` header's key grants, None for no or a wrong key."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return None
        given_bytes = given.strip().encode()
        # both comparisons always run, so timing does not tell which key was nearly right
        is_admin = hmac.compare_digest(given_bytes, (self.admin or "").encode())
        is_search = hmac.compare_digest(given_bytes, (self.search or "").encode())
        if is_admin:
            return "admin"
        return "search" if is_search and self.search is not None else None

    def check(self, authorization: str | None, needed: Role) -> None:
        """Raise :class:`Denied` unless the header's key may use a route that needs ``needed``."""
        if not self.enabled:
            return
        role = self.role(authorization)
        if role is None:
            given = "a wrong key" if authorization else "no key"
            raise Denied(401, f"{given}: send Authorization: Bearer KEY (the search or admin key)")
        if needed == "admin" and role != "admin":
            raise Denied(403, "the search key only reads; this needs the admin key (--api-key)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, keys: Keys, *, insecure: bool = False) -> None:
    """Refuse to serve without keys on an address other machines can reach, unless
    ``insecure`` (which logs a warning)."""
    if keys.enabled or is_loopback(host):
        return
    if not insecure:
        raise InvalidParameter(
            f"refusing to listen on {host} without an API key: anyone who reaches it could "
            "change the index. Set the SEARCHKIT_API_KEY variable (or api_key=KEY), bind "
            "127.0.0.1, or pass insecure=True if a proxy in front does the authentication",
            param="host",
        )
    log.warning("searchkit serve: listening on %s with no API key (insecure)", host)
