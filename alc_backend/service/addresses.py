"""Comparing the addresses a backend is known by."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def same_address(first: str, second: str) -> bool:
    """Whether two URLs name the same service: scheme, port (the scheme's default when none), path
    (without a trailing ``/``) and host equal, loopback names (``localhost``, ``127.x.y.z``, ``::1``)
    counting as one host. ``http://localhost:9090`` and ``http://127.0.0.1:9090/`` are the same.
    """
    a, b = urlsplit(first.strip()), urlsplit(second.strip())
    try:
        ports = (a.port, b.port)
    except ValueError:
        return False
    defaults = {"http": 80, "https": 443}
    if a.scheme.lower() != b.scheme.lower():
        return False
    if (ports[0] or defaults.get(a.scheme.lower())) != (ports[1] or defaults.get(b.scheme.lower())):
        return False
    if a.path.rstrip("/") != b.path.rstrip("/"):
        return False
    hosts = ((a.hostname or "").lower(), (b.hostname or "").lower())
    return hosts[0] == hosts[1] or (is_loopback(hosts[0]) and is_loopback(hosts[1]))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
