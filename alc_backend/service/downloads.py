"""Reading the files a task names, within the operator's rules.

Whoever can create tasks writes their data, so every file a task names is hostile until
checked (docs/queue-and-webhooks.md, *Allowed sources*):

- a **local path** is read only below one of :attr:`SourceRules.local_roots`; with none (the
  default) every local path is refused, with the same message whether the file exists or not;
- a **URL** on Label Studio's own host, or relative to it (``/data/local-files/?d=…``,
  ``/data/upload/…``), is fetched with the backend's credentials; a URL on another host only
  when that host is listed in :attr:`SourceRules.hosts`, and without credentials;
- an address that is private, loopback, link-local or otherwise not public is refused unless
  listed itself, as an address or a network (``10.0.0.0/8``); Label Studio's own host is the
  operator's setting and is exempt;
- each **redirect** is checked by the same rules (at most :data:`MAX_REDIRECTS`);
- a download stops at :attr:`SourceRules.max_bytes` and at :attr:`SourceRules.deadline_s`
  for the whole transfer, redirects included;
- messages name the reference, the rule and the HTTP status, never what the remote sent.

A failure to reach Label Studio itself raises
:class:`~alc_backend.labelstudio.client.LabelStudioUnavailable`, so the job is retried and no
task is blamed; every other failure is a :class:`~alc_backend.service.sources.TaskDataError`
of that task alone.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from alc_backend.labelstudio.client import LabelStudioClient, LabelStudioUnavailable
from alc_backend.service.sources import TaskDataError

MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
LABEL_STUDIO_PATHS = ("/data/", "/tasks/", "/storage-data/", "/api/")
"""Relative references that are Label Studio's own URLs, not local paths."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class SourceRules:
    """Where task files may come from, and how much of them.

    ``local_roots``: folders whose files tasks may name by path (``ALC_LOCAL_ROOTS``);
    ``hosts``: hosts besides Label Studio's that URLs may name, and private addresses or
    networks that are allowed (``ALC_DOWNLOAD_HOSTS``); ``max_bytes``: the largest download
    (``ALC_MAX_DOWNLOAD_MB``); ``deadline_s``: the longest download in seconds, redirects
    included (``ALC_DOWNLOAD_TIMEOUT_S``).
    """

    local_roots: tuple[Path, ...] = ()
    hosts: tuple[str, ...] = ()
    max_bytes: int = 64 * 2**20
    deadline_s: float = 60.0

    def listed_networks(self) -> list[Network]:
        """The entries of ``hosts`` that are addresses or networks."""
        networks = []
        for entry in self.hosts:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return networks

    def lists_host(self, host: str) -> bool:
        """Whether ``host`` (a name or an address) is listed by name, as an address, or inside a listed network."""
        host = host.lower().rstrip(".")
        if host in {entry.lower().rstrip(".") for entry in self.hosts}:
            return True
        address = _address(host)
        return address is not None and any(address in network for network in self.listed_networks())


class TaskFiles:
    """Reads the files that the tasks of one Label Studio name, under ``rules``."""

    def __init__(self, client: LabelStudioClient, rules: SourceRules) -> None:
        self.client = client
        self.rules = rules
        self._session = requests.Session()

    def read(self, reference: str) -> bytes:
        """The bytes behind ``reference``: a URL, a Label Studio path, or a local path under the roots.

        Raises:
            TaskDataError: the reference is refused by the rules, or cannot be read; the
                message names the reference.
            LabelStudioUnavailable: Label Studio itself did not answer.
        """
        try:
            if _is_url(reference) or reference.startswith(LABEL_STUDIO_PATHS):
                return self._download(reference)
            if "://" in reference:
                raise TaskDataError("only http(s) URLs, Label Studio paths and local paths can be read")
            return self._read_local(reference)
        except TaskDataError as error:
            raise TaskDataError(f"{reference}: {error}") from error

    def _read_local(self, reference: str) -> bytes:
        if not self.rules.local_roots:
            raise TaskDataError(
                "a local path, and the backend reads none: list the folders it may read in ALC_LOCAL_ROOTS"
            )
        for root in self.rules.local_roots:
            base = root.resolve()
            path = (base / reference).resolve()
            if path.is_relative_to(base) and path.is_file():
                try:
                    return path.read_bytes()
                except OSError as error:
                    raise TaskDataError(f"cannot be read: {error.strerror}") from error
        raise TaskDataError("not a file under ALC_LOCAL_ROOTS")

    def _download(self, reference: str) -> bytes:
        started = time.monotonic()
        url = urljoin(self.client.url + "/", reference)
        for _ in range(MAX_REDIRECTS + 1):
            own = self._is_label_studio(url)
            self._check_url(url, own)
            headers = self.client.authorization() if own else {}
            response = self._get(url, headers, own, started)
            if own and response.status_code == 401:
                response.close()
                response = self._get(url, self.client.authorization(renew=True), own, started)
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("Location", ""))
                    continue
                if own and response.status_code in (502, 503, 504):
                    raise LabelStudioUnavailable(f"Label Studio answered HTTP {response.status_code} to GET {url}")
                if response.status_code >= 400:
                    raise TaskDataError(f"{_shown(url)} answered HTTP {response.status_code}")
                return self._body(response, started)
        raise TaskDataError(f"more than {MAX_REDIRECTS} redirects")

    def _is_label_studio(self, url: str) -> bool:
        own, target = urlsplit(self.client.url), urlsplit(url)
        return (target.scheme, target.netloc) == (own.scheme, own.netloc)

    def _check_url(self, url: str, own: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TaskDataError(f"{_shown(url)} is not an http(s) URL")
        if own:
            return
        host = parts.hostname
        if not self.rules.lists_host(host):
            raise TaskDataError(
                f"{_shown(url)}: {host} is neither Label Studio's host nor listed in ALC_DOWNLOAD_HOSTS"
            )
        for address in _resolve(host, parts.port or (443 if parts.scheme == "https" else 80)):
            if not address.is_global and not any(address in net for net in self.rules.listed_networks()):
                raise TaskDataError(
                    f"{_shown(url)}: {host} is at the non-public address {address}, which ALC_DOWNLOAD_HOSTS "
                    "does not list"
                )

    def _get(self, url: str, headers: dict[str, str], own: bool, started: float) -> requests.Response:
        remaining = self._remaining(started)
        try:
            return self._session.get(
                url, headers=headers, stream=True, allow_redirects=False, timeout=(remaining, remaining)
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            if own:
                raise LabelStudioUnavailable(
                    f"Label Studio did not answer GET {url}: {type(error).__name__}"
                ) from error
            raise TaskDataError(f"{_shown(url)} cannot be reached ({type(error).__name__})") from error
        except requests.RequestException as error:
            raise TaskDataError(f"{_shown(url)} cannot be fetched ({type(error).__name__})") from error

    def _body(self, response: requests.Response, started: float) -> bytes:
        """The body, read as it arrives (``read1``: a server that sends a byte at a time is still
        stopped at the deadline, after at most one more socket timeout)."""
        limit = self.rules.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise TaskDataError(f"{int(declared)} bytes, more than ALC_MAX_DOWNLOAD_MB allows ({limit})")
        chunks, size = [], 0
        try:
            while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise TaskDataError(f"more than ALC_MAX_DOWNLOAD_MB allows ({limit} bytes)")
                self._remaining(started)
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as error:
            raise TaskDataError(f"the download broke off ({type(error).__name__})") from error
        return b"".join(chunks)

    def _remaining(self, started: float) -> float:
        """Seconds left of the download's deadline; TaskDataError when none are."""
        remaining = self.rules.deadline_s - (time.monotonic() - started)
        if remaining <= 0:
            raise TaskDataError(f"took longer than ALC_DOWNLOAD_TIMEOUT_S ({self.rules.deadline_s:g} s)")
        return remaining


def _is_url(reference: str) -> bool:
    return reference.startswith(("http://", "https://"))


def _shown(url: str) -> str:
    """``url`` without its query and credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to; TaskDataError when it resolves to none."""
    literal = _address(host)
    if literal is not None:
        return [literal]
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise TaskDataError(f"{host} cannot be resolved ({error.strerror or error})") from error
    return [ipaddress.ip_address(item[4][0].split("%")[0]) for item in found]
