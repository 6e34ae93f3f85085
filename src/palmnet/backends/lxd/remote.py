"""A remote LXD (or cluster) over its TLS API, trusted with a token once.

LXD offers no plaintext API and palmnet never opens its unix socket to the
network: a remote is `https://HOST:8443`, reached with palmnet's own client
certificate. The first contact needs a trust token (`palmnet lxd cluster trust
NAME` or `lxc config trust add` on the cluster): its fingerprint is checked
against the certificate the server shows before the secret is sent, the
server's certificate is then pinned (its SHA-256 fingerprint is asserted on
every connection; LXD's self-signed certificates name no host that a CA check
could match), and the token's secret makes LXD trust palmnet's certificate.
Later contacts need no token.

Files (root only): PALMNET_LXD_CONFIG, default /var/lib/palmnet/lxd:
client.crt, client.key, servers/HOST_PORT.crt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from palmnet.backends.lxd import client as lxdclient
from palmnet.backends.lxd.cluster import decode_token
from palmnet.errors import InputError, LabError

CONNECT_TIMEOUT = 10.0


def config_dir() -> Path:
    return Path(os.environ.get("PALMNET_LXD_CONFIG", "/var/lib/palmnet/lxd"))


def client_cert() -> tuple[str, str]:
    """palmnet's client certificate and key, made on first use (EC P-384, 10 years)."""
    base = config_dir()
    crt, key = base / "client.crt", base / "client.key"
    if not (crt.exists() and key.exists()):
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        proc = subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes", "-days", "3650",
                "-subj", f"/CN=palmnet@{socket.gethostname()}",
                "-keyout", str(key), "-out", str(crt),
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise LabError(f"cannot make palmnet's LXD client certificate: {proc.stderr.strip()}")
        key.chmod(0o600)
    return str(crt), str(key)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InputError(f"--remote {url}: give the LXD's TLS API as https://HOST[:8443]")
    return parts.hostname, parts.port or 8443


def server_certificate(url: str) -> tuple[str, str]:
    """The PEM certificate the server shows, and its SHA-256 fingerprint (hex)."""
    host, port = _host_port(url)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed: checked by fingerprint below
    try:
        with (
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise InputError(f"--remote {url}: cannot reach it ({exc})") from None
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der), hashlib.sha256(der).hexdigest()


def _pinned(url: str) -> Path:
    host, port = _host_port(url)
    return config_dir() / "servers" / f"{host.replace(':', '_')}_{port}.crt"


def connect(url: str, token: str | None = None) -> lxdclient.Lxd:
    """A trusted TLS connection to the LXD at `url` (exit 2 if it cannot be had)."""
    pylxd = lxdclient._pylxd()
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    pem, fingerprint = server_certificate(url)
    pinned = _pinned(url)
    if token is not None:
        want = str(decode_token(token)["fingerprint"])
        if want != fingerprint:
            raise InputError(
                f"--remote {url}: its certificate ({fingerprint[:12]}) is not the one the "
                f"token names ({want[:12]}): not trusted"
            )
        pinned.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pinned.write_text(pem)
    elif not pinned.exists():
        raise InputError(f"--remote {url}: first contact needs --token (a trust token)")
    else:
        _, known = _fingerprint_of(pinned.read_text())
        if known != fingerprint:
            raise InputError(
                f"--remote {url}: its certificate changed ({known[:12]} -> {fingerprint[:12]}): "
                f"not trusted; remove {pinned} and give a new --token if that is expected"
            )
    from pylxd.client import get_session_for_url

    cert = client_cert()
    # verify=PATH: pylxd asserts that certificate's SHA-256 on every connection. The
    # session must not take REQUESTS_CA_BUNDLE from the environment: requests would
    # put that CA bundle in place of the pinned certificate, and the check fails.
    session = get_session_for_url(url, verify=str(pinned), cert=cert)
    session.trust_env = False
    try:
        client = pylxd.Client(endpoint=url, cert=cert, verify=str(pinned), session=session)
    except Exception as exc:
        raise InputError(f"--remote {url}: {exc}") from None
    if not client.trusted:
        if token is None:
            raise InputError(f"--remote {url}: palmnet's certificate is not trusted: give --token")
        try:
            # LXD 5.0 takes the whole token where a trust password would go
            client.authenticate(token.strip(), use_token_auth=False)
        except Exception as exc:
            raise InputError(f"--remote {url}: the token was refused ({exc})") from None
    return lxdclient.Lxd(client)


def _fingerprint_of(pem: str) -> tuple[bytes, str]:
    der = ssl.PEM_cert_to_DER_cert(pem)
    return der, hashlib.sha256(der).hexdigest()
