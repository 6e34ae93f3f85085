"""The connection to LXD (pylxd over its unix socket) and the few API calls palmnet needs.

Everything goes through LXD's REST API. Long actions (create, start, delete,
publish) are LXD operations: they are sent all at once and then waited for
with a deadline (`/1.0/operations/ID/wait?timeout=`), so ten containers start
in parallel, and a failure carries LXD's own reason.

If LXD is not there, every verb stops before creating anything, with exit
code 2 and what to run (`palmnet lxd init`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palmnet.errors import InputError, LabError

NOT_RUNNING = "LXD is not installed/running: run `palmnet lxd init`"
NOT_INITIALISED = "LXD has no storage pool yet: run `palmnet lxd init`"
SOCKETS = ("/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket")
OP_TIMEOUT = float(os.environ.get("PALMNET_LXD_TIMEOUT", "120"))
WAITERS = 16  # requests in flight at once (one unix-socket connection each)


def socket_path() -> str | None:
    """LXD's unix socket: $LXD_DIR/unix.socket if LXD_DIR is set, else Debian's or
    the snap's."""
    if os.environ.get("LXD_DIR"):
        candidates: tuple[str, ...] = (str(Path(os.environ["LXD_DIR"]) / "unix.socket"),)
    else:
        candidates = SOCKETS
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


def server_host_pid() -> int:
    """The pid of the LXD behind the local unix socket, as this machine counts it
    (SO_PEERCRED); 0 without a socket."""
    import socket
    import struct

    path = socket_path()
    if path is None:
        return 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[0])


def _pylxd() -> Any:
    try:
        import pylxd
    except ImportError:
        raise InputError(
            "the LXD backend needs pylxd: install palmnet with the `lxd` extra "
            "(pip install 'palmnet[lxd]')"
        ) from None
    return pylxd


class OperationFailed(LabError):
    """An LXD operation ended in failure; the message is LXD's reason."""


@dataclass
class Pending:
    """An LXD operation started for `what` (a node, a network...)."""

    what: str
    url: str

    @property
    def id(self) -> str:
        """The operation's id (a clustered LXD appends `?project=...` to its URL)."""
        return self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class Lxd:
    """A trusted connection to the local LXD."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.api = client.api
        from pylxd.exceptions import LXDAPIException, NotFound

        self.APIError = LXDAPIException
        self.NotFound = NotFound

    # -- plain requests ----------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        """GET /1.0/PATH: its metadata."""
        node = self.api
        for part in path.strip("/").split("/"):
            node = node[part]
        return node.get(params=params or None).json()["metadata"]

    def server(self, **params: Any) -> Any:
        """GET /1.0 (the server's config and environment; `target=MEMBER` on a cluster)."""
        return self.api.get(params=params or None).json()["metadata"]

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except self.NotFound:
            return False
        return True

    def call(self, method: str, path: str, what: str, **kwargs: Any) -> Pending | None:
        """A request that may start an operation (returned) or answer at once (None)."""
        node = self.api
        for part in path.strip("/").split("/"):
            node = node[part]
        try:
            response = getattr(node, method)(**kwargs)
        except self.APIError as exc:
            raise OperationFailed(f"{what}: {_reason(exc)}") from None
        body = response.json()
        if body.get("type") == "async":
            return Pending(what, body["operation"])
        return None

    # -- operations ----------------------------------------------------------------------
    def wait(self, pending: Pending | None, timeout: float = OP_TIMEOUT) -> dict[str, Any]:
        """Wait for one operation; its metadata, or OperationFailed with LXD's reason."""
        if pending is None:
            return {}
        return self.wait_all([pending], timeout)[0]

    def wait_all(
        self, pendings: Iterable[Pending | None], timeout: float = OP_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Wait for every operation (all of them, even after a failure), then raise the
        failures together: a lab that fails is rolled back knowing every reason.

        One waiting request per operation, in parallel: LXD forgets a finished
        operation after 5 s, so waiting for them one after the other would lose the
        outcome of those that finished early."""
        items = list(pendings)
        deadline = time.monotonic() + timeout
        if len(items) <= 1:
            outcomes = [self._wait_one(p, deadline, timeout) for p in items]
        else:
            with ThreadPoolExecutor(max_workers=min(WAITERS, len(items))) as pool:
                outcomes = list(pool.map(lambda p: self._wait_one(p, deadline, timeout), items))
        failures = [err for _, err in outcomes if err]
        if failures:
            raise OperationFailed("; ".join(failures))
        return [meta for meta, _ in outcomes]

    def run_all(
        self, requests: Iterable[tuple[str, str, str, dict[str, Any]]], timeout: float = OP_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Send requests (method, path, what, kwargs) in parallel, each one waited for
        as soon as it is sent; raise every failure together once all are done."""
        items = list(requests)
        deadline = time.monotonic() + timeout

        def one(req: tuple[str, str, str, dict[str, Any]]) -> tuple[dict[str, Any], str]:
            method, path, what, kwargs = req
            try:
                pending = self.call(method, path, what, **kwargs)
            except OperationFailed as exc:
                return {}, str(exc)
            return self._wait_one(pending, deadline, timeout)

        if len(items) <= 1:
            outcomes = [one(r) for r in items]
        else:
            with ThreadPoolExecutor(max_workers=min(WAITERS, len(items))) as pool:
                outcomes = list(pool.map(one, items))
        failures = [err for _, err in outcomes if err]
        if failures:
            raise OperationFailed("; ".join(failures))
        return [meta for meta, _ in outcomes]

    def _wait_one(
        self, p: Pending | None, deadline: float, timeout: float
    ) -> tuple[dict[str, Any], str]:
        if p is None:
            return {}, ""
        op_id = p.id
        left = max(1, int(deadline - time.monotonic()))
        try:
            meta = self.api.operations[op_id].wait.get(params={"timeout": left}).json()["metadata"]
        except self.APIError as exc:
            return {}, f"{p.what}: {_reason(exc)}"
        status = meta.get("status")
        if status == "Success":
            return meta.get("metadata") or {}, ""
        if status in ("Failure", "Cancelled"):
            return {}, f"{p.what}: {meta.get('err') or status}"
        return {}, f"{p.what}: not done after {timeout:g} s (LXD: {status})"

    # -- what palmnet needs --------------------------------------------------------------
    def pools(self) -> list[str]:
        return [u.rsplit("/", 1)[-1] for u in self.get("storage-pools")]

    def pool(self) -> str:
        """The storage pool for lab containers: `default` if there is one, else the first."""
        pools = self.pools()
        if not pools:
            raise InputError(NOT_INITIALISED)
        return "default" if "default" in pools else pools[0]

    def instances(self, recursion: int = 1) -> list[dict[str, Any]]:
        return list(self.get("instances", recursion=recursion))


def _reason(exc: Exception) -> str:
    """LXD's own error text from a pylxd exception."""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response.json().get("error") or exc)
        except ValueError:
            pass
    return str(exc)


def connect(require_pool: bool = True) -> Lxd:
    """Connect to the local LXD, or stop with InputError (exit 2) saying what to run."""
    pylxd = _pylxd()
    # Parallel waits open more unix-socket connections than pylxd's pool keeps;
    # urllib3 would warn about each one it then discards.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    path = socket_path()
    if path is None:
        raise InputError(NOT_RUNNING)
    try:
        client = pylxd.Client(endpoint=path)
        client.host_info  # noqa: B018 (a request: does the daemon answer?)
    except Exception as exc:
        raise InputError(f"{NOT_RUNNING} ({path}: {exc.__class__.__name__})") from None
    lxd = Lxd(client)
    if require_pool:
        lxd.pool()
    return lxd


def available() -> bool:
    """Whether an initialised LXD answers (for tests and `lxd status`)."""
    try:
        connect()
    except InputError:
        return False
    return True
