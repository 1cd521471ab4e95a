"""ZeroMQ CURVE keys for cross-host rigs: kept beside the rig file; a node without the right key gets nothing.

Layout (``mocap keys --rig lab/rig.toml`` writes it; ZeroMQ's certificate files, ``zmq.auth.create_certificates``)::

    lab/rig.toml
    lab/rig.keys/                      the keys folder (mode 700); absent: CURVE is off
        server.key                     the camera nodes' public key (every subscriber host needs it)
        server.key_secret              the camera nodes' keypair, one for all nodes of the rig (camera hosts only)
        <client>.key                   a subscriber role's public key (e.g. recorder)
        <client>.key_secret            that role's keypair (only the host running that role)
        authorized_clients/<client>.key   the public keys the camera nodes accept

Every ``*.key_secret`` is written mode 600. One server keypair serves all camera nodes of the rig, so a
subscriber needs one server key whichever camera it connects to; each subscriber role (recorder, viewer, ...)
has its own client keypair, so a role is revoked by deleting its public key from ``authorized_clients/``.

A camera node whose rig file has a keys folder publishes with ``secure_server``: a ZAP authenticator
(``zmq.auth.thread.ThreadAuthenticator``, one per ZeroMQ context) admits only the clients in
``authorized_clients/``. A subscriber connects with ``secure_client``. A SUB without keys, or with a key that is
not authorized, completes no handshake and receives nothing. Rigs given as a preset name have no keys.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

log = logging.getLogger(__name__)

SERVER = "server"
AUTHORIZED = "authorized_clients"
DEFAULT_CLIENTS = ("recorder",)
_CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PRESETS = Path(__file__).resolve().parent.parent / "rigs" / "presets"


class CurveError(ValueError):
    """Keys that cannot be generated, loaded or used (the CLI prints it as one line)."""


@dataclass(frozen=True)
class CurveKeys:
    """A rig's CURVE keys as this host has them (Z85 bytes, 40 characters each); secrets stay out of repr.

    ``server_secret`` is None on hosts given only ``server.key`` (subscribers); ``client``/``client_*`` are None
    on hosts without that role's keypair (camera hosts); ``authorized`` are the client public keys the camera
    nodes accept (empty where ``authorized_clients/`` was not copied)."""

    folder: Path
    server_public: bytes
    server_secret: bytes | None = field(default=None, repr=False)
    client: str | None = None
    client_public: bytes | None = None
    client_secret: bytes | None = field(default=None, repr=False)
    authorized: tuple[bytes, ...] = ()

    @property
    def authorized_dir(self) -> Path:
        return self.folder / AUTHORIZED


def keys_dir(rig_path: str | os.PathLike) -> Path:
    """Where a rig file's keys live: ``<rig dir>/<rig stem>.keys`` (for an opencv rig folder, ``<folder>.keys``)."""
    path = Path(rig_path)
    return path.parent / f"{path.name if path.is_dir() else path.stem}.keys"


def _rig_file(rig_path: str | os.PathLike) -> Path:
    """The rig file keys can be kept beside, or a CurveError (a preset name, a missing file, the presets)."""
    path = Path(rig_path)
    if not path.exists():
        hint = (f"{rig_path} is a preset; copy it to a rig file first (mocap rig convert {rig_path} rig.toml)"
                if _PRESETS.joinpath(f"{rig_path}.toml").is_file() else f"no such rig file: {rig_path}")
        raise CurveError(f"{hint}: CURVE keys are kept beside a rig file")
    if path.resolve().parent == _PRESETS:
        raise CurveError(f"{rig_path} is a shipped preset; copy it to a rig file of your own first "
                         f"(mocap rig convert {path.stem} rig.toml)")
    return path


def generate_keys(rig_path: str | os.PathLike, *, clients: tuple[str, ...] | list[str] = DEFAULT_CLIENTS,
                  force: bool = False) -> Path:
    """Write a server keypair and one keypair per client role beside the rig file; returns the keys folder.

    Refuses presets and missing files, client names that are not plain words (or ``server``), and an existing
    keys folder unless ``force`` (which replaces it whole: every host needs the new keys)."""
    from zmq.auth import create_certificates

    path = _rig_file(rig_path)
    clients = tuple(dict.fromkeys(clients))
    if not clients:
        raise CurveError("name at least one client role (e.g. recorder)")
    for name in clients:
        if not isinstance(name, str) or not _CLIENT_NAME.fullmatch(name) or name == SERVER:
            raise CurveError(f"client name {name!r}: expected letters, digits, '-' or '_' (and not {SERVER!r})")
    dest = keys_dir(path)
    if dest.exists() and not force:
        raise CurveError(f"{dest} exists; pass --force to replace it (every host then needs the new keys)")
    # Built in a private temporary folder beside it (mode 700 from the start), then moved into place.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        create_certificates(tmp, SERVER)
        (tmp / AUTHORIZED).mkdir(mode=0o700)
        for name in clients:
            public, _ = create_certificates(tmp, name)
            shutil.copyfile(public, tmp / AUTHORIZED / f"{name}.key")
        for secret in tmp.glob("*.key_secret"):
            secret.chmod(0o600)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _load(cert: Path) -> tuple[bytes, bytes | None]:
    from zmq.auth import load_certificate

    if cert.suffix == ".key_secret" and stat.S_IMODE(cert.stat().st_mode) & 0o077:
        log.warning("%s is readable by other users; chmod 600 it", cert)
    try:
        public, secret = load_certificate(cert)
    except (OSError, ValueError) as exc:
        raise CurveError(f"{cert}: not a ZeroMQ certificate ({exc})") from None
    if len(public) != 40 or (secret is not None and len(secret) != 40):
        raise CurveError(f"{cert}: keys must be 40 Z85 characters")
    return public, secret


def load_keys(rig_path: str | os.PathLike, client: str | None = DEFAULT_CLIENTS[0]) -> CurveKeys | None:
    """The rig's keys as this host has them, or None (CURVE off) when the rig source is no file or folder on
    disk (a preset name) or has no keys folder beside it. ``client`` picks the role whose keypair to load.

    A keys folder without ``server.key`` or ``server.key_secret`` is an error, not CURVE off."""
    path = Path(rig_path)
    folder = keys_dir(path)
    if not path.exists() or not folder.is_dir():
        return None
    secret_file, public_file = folder / f"{SERVER}.key_secret", folder / f"{SERVER}.key"
    if secret_file.is_file():
        server_public, server_secret = _load(secret_file)
    elif public_file.is_file():
        server_public, server_secret = _load(public_file)[0], None
    else:
        raise CurveError(f"{folder} has no {SERVER}.key or {SERVER}.key_secret; copy them from where "
                         f"`mocap keys` wrote them, or remove the folder to turn CURVE off")
    client_public = client_secret = None
    if client is not None and (folder / f"{client}.key_secret").is_file():
        client_public, client_secret = _load(folder / f"{client}.key_secret")
    else:
        client = None
    authorized: tuple[bytes, ...] = ()
    if (folder / AUTHORIZED).is_dir():
        authorized = tuple(sorted(_load(c)[0] for c in (folder / AUTHORIZED).glob("*.key")))
    return CurveKeys(folder, server_public, server_secret, client, client_public, client_secret, authorized)


def secure_server(sock: zmq.Socket, keys: CurveKeys, context: zmq.Context) -> ThreadAuthenticator:
    """Make ``sock`` (before it binds) a CURVE server admitting only ``keys.authorized_dir``'s clients.

    Starts and returns a ZAP authenticator on ``context``; the caller owns it: ``stop()`` it after closing the
    socket, before terminating the context. ZeroMQ allows one authenticator per context."""
    from zmq.auth.thread import ThreadAuthenticator

    if keys.server_secret is None:
        raise CurveError(f"{keys.folder} has no {SERVER}.key_secret on this host: camera nodes need it "
                         f"(copy it from where `mocap keys` wrote it)")
    if not keys.authorized:
        log.warning("%s has no authorized client keys: no subscriber will receive anything", keys.authorized_dir)
    auth = ThreadAuthenticator(context, log=logging.getLogger("zmq.auth"))
    auth.start()
    try:
        auth.configure_curve(domain="*", location=str(keys.authorized_dir))
        sock.curve_secretkey = keys.server_secret
        sock.curve_publickey = keys.server_public
        sock.curve_server = True
    except BaseException:
        auth.stop()
        raise
    return auth


def secure_client(sock: zmq.Socket, keys: CurveKeys) -> None:
    """Make ``sock`` (before it connects) a CURVE client of the rig's camera nodes with this host's client keys."""
    if keys.client_secret is None or keys.client_public is None:
        raise CurveError(f"{keys.folder} has no client keypair on this host: copy <role>.key_secret "
                         f"from where `mocap keys` wrote it")
    sock.curve_secretkey = keys.client_secret
    sock.curve_publickey = keys.client_public
    sock.curve_serverkey = keys.server_public


# -- the command line -----------------------------------------------------------------------------------------

def add_keys_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``keys`` to the mocap verbs; it sets ``keys_run`` (a function of the parsed args returning the exit
    code)."""
    p = subparsers.add_parser("keys", help="generate ZeroMQ CURVE keys beside a rig file (cross-host rigs)",
                              description="Write <rig stem>.keys/ beside the rig file: one server keypair for all "
                                          "camera nodes and one client keypair per subscriber role. Camera nodes "
                                          "of a rig with a keys folder accept only authorized clients.")
    p.add_argument("--rig", required=True, help="the rig file (not a preset name)")
    p.add_argument("--client", dest="clients", action="append", metavar="NAME",
                   help="a subscriber role to make a keypair for; repeat for more (default: recorder)")
    p.add_argument("--force", action="store_true", help="replace an existing keys folder")
    p.set_defaults(keys_run=run_keys)
    return p


def _camera_hosts(rig_path: Path) -> dict[str, list[str]]:
    """Camera names by the host of their endpoint (``this host`` for loopback or no endpoint)."""
    from rigs.formats import load_rig

    hosts: dict[str, list[str]] = {}
    for cam in load_rig(rig_path).cameras:
        host = (cam.endpoint or "").partition("://")[2].rpartition(":")[0]
        hosts.setdefault("this host" if host in ("", "127.0.0.1", "localhost", "[::1]") else host, []).append(
            cam.name)
    return hosts


def run_keys(args: argparse.Namespace) -> int:
    """``mocap keys``: generate the keys and print what to copy to which host; exit code 0."""
    path = _rig_file(args.rig)
    hosts = _camera_hosts(path)  # also checks that the file is a rig
    clients = tuple(args.clients or DEFAULT_CLIENTS)
    folder = generate_keys(path, clients=clients, force=args.force)
    rel = f"{path.parent.name + '/' if path.parent.name else ''}{folder.name}"
    print(f"wrote CURVE keys for {path} in {folder}")
    where = "; ".join(f"{host}: {', '.join(cams)}" for host, cams in hosts.items())
    print(f"  camera nodes ({where}) need the rig file, {rel}/{SERVER}.key_secret and {rel}/{AUTHORIZED}/")
    for name in clients:
        print(f"  the {name} host needs the rig file, {rel}/{SERVER}.key and {rel}/{name}.key_secret")
    print("  keep the same layout beside the rig file on every host; *.key_secret files are secrets (mode 600); "
          "revoke a role by deleting its key from authorized_clients/ and restarting the nodes")
    return 0


__all__ = ["AUTHORIZED", "CurveError", "CurveKeys", "add_keys_parser", "generate_keys", "keys_dir", "load_keys",
           "run_keys", "secure_client", "secure_server"]
