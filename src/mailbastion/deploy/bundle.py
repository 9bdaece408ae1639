"""The gateway's bundle: its certificates and keys, made on the internal host, where the CA key stays.

    info = issue_gateway_bundle(settings, Path("gateway.tar"), hostname="mx.example.org",
                                gateway_address="10.77.0.1")          # `mailbastion pki issue-gateway`
    manifest = install_gateway_bundle(Path("gateway.tar"), tls_dir)   # `mailbastion init --role gateway`

The bundle is a tar file (mode 0600) of flat members:

    manifest.json          what the gateway's configuration needs: its public name, its address on the link,
                           the MDA's address, the internal host's address; the SHA-256 of every member
    ca.crt                 the private CA's certificate (never its key)
    gateway.crt/.key       the MX's certificate for `hostname` (replace it with a public one: `tls import`)
    gateway-client.crt/.key  the LMTP client certificate (name "gateway", client auth)
    gateway-link.crt/.key  the push listener's certificate (name "gateway-link", server auth)

The keys are made for the bundle and written nowhere else on the internal host. Installing checks the
bundle whole before writing anything: only these members, regular files, digests as in the manifest,
every certificate signed by the bundle's CA with its key beside it and the name of its role, and no CA key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import ipaddress
import json
import os
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.x509 import DNSName, ExtendedKeyUsage, SubjectAlternativeName
from cryptography.x509.oid import ExtendedKeyUsageOID

from mailbastion.config import Settings
from mailbastion.config.sections.split import split_hostport
from mailbastion.core.errors import ConfigError
from mailbastion.deploy.names import GATEWAY_CLIENT_NAME, LINK_NAME, LMTP_PORT
from mailbastion.pki import issue, issued_by, key_matches, load_chain, parse_key
from mailbastion.private_files import private_dir, write_private, write_public

FORMAT = "mailbastion-gateway-bundle"
VERSION = 1
MAX_MEMBER_BYTES = 1024 * 1024

# member -> (role name it must carry, extended key usage), for the certificates
CERTIFICATES = {
    "gateway.crt": (None, ExtendedKeyUsageOID.SERVER_AUTH),
    "gateway-client.crt": (GATEWAY_CLIENT_NAME, ExtendedKeyUsageOID.CLIENT_AUTH),
    "gateway-link.crt": (LINK_NAME, ExtendedKeyUsageOID.SERVER_AUTH),
}
MEMBERS = ("manifest.json", "ca.crt", "gateway.crt", "gateway.key", "gateway-client.crt", "gateway-client.key",
           "gateway-link.crt", "gateway-link.key")


@dataclass(frozen=True, slots=True)
class Manifest:
    hostname: str  # the MX's public name (server.hostname on the gateway)
    gateway_address: str  # the gateway's address on the internal link (map_push.listen's host)
    mda: str  # HOST:PORT of the MDA (lmtp.connect on the gateway)
    internal_address: str  # the internal host's address on the link (the push comes from there)
    created_at: str
    files: dict[str, str]  # member -> sha256 hex

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, indent=1).encode() + b"\n"


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise ConfigError(f"{what} must be an IP address, not {text!r}") from None


def _mda_address(settings: Settings) -> tuple[str, str]:
    """(HOST:PORT the gateway connects to, the internal host's address) from lmtp.listen."""
    host, port = split_hostport(settings.lmtp.listen)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"lmtp.listen is {settings.lmtp.listen!r}: give the MDA an IP address on the link",
                          key="lmtp.listen") from None
    if ip.is_unspecified:
        raise ConfigError("lmtp.listen listens on every address: set it to the internal host's address on the link "
                          f"(e.g. \"10.77.0.2:{LMTP_PORT}\"), which the gateway connects to", key="lmtp.listen")
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{shown}:{port}", str(ip)


def issue_gateway_bundle(settings: Settings, out: Path, *, hostname: str | None = None,
                         gateway_address: str | None = None) -> Manifest:
    """Issue the gateway's certificates from this host's CA and write the bundle to `out` (0600, never
    replacing a file). `hostname` defaults to server.hostname; `gateway_address` to the host of the first
    map_push.gateways entry. Raises ConfigError (no CA key here, no address known, `out` exists)."""
    t = settings.tls
    ca_cert, ca_key = settings.path(t.ca), settings.path(t.ca_key)
    if not ca_key.is_file():
        raise ConfigError(f"{ca_key} does not exist: issue the gateway's bundle on the internal host, where the CA "
                          "key is", key="tls.ca_key")
    if gateway_address is None:
        if not settings.map_push.gateways:
            raise ConfigError("say where the gateway is on the link: --gateway-address IP (or set map_push.gateways)")
        gateway_address = split_hostport(settings.map_push.gateways[0])[0]
    gateway_address = _address(gateway_address, "the gateway's address")
    mda, internal = _mda_address(settings)
    hostname = hostname or settings.server.hostname
    if out.exists():
        raise ConfigError(f"{out} exists already; refusing to replace it (remove it, or choose another --out)")
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="mailbastion-bundle-") as tmp:  # 0700, removed at once
        d = Path(tmp)
        issue(ca_cert, ca_key, d / "gateway.crt", d / "gateway.key", common_name=hostname, dns_names=[hostname])
        issue(ca_cert, ca_key, d / "gateway-client.crt", d / "gateway-client.key", common_name=GATEWAY_CLIENT_NAME,
              dns_names=[GATEWAY_CLIENT_NAME], server=False, client=True)
        issue(ca_cert, ca_key, d / "gateway-link.crt", d / "gateway-link.key", common_name=LINK_NAME,
              dns_names=[LINK_NAME], ips=[gateway_address])
        for name in MEMBERS[2:]:
            files[name] = (d / name).read_bytes()
    files["ca.crt"] = ca_cert.read_bytes()
    manifest = Manifest(hostname, gateway_address, mda, internal,
                        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        {n: hashlib.sha256(b).hexdigest() for n, b in sorted(files.items())})
    files["manifest.json"] = manifest.to_json()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o600, int(dt.datetime.now(dt.UTC).timestamp())
            tar.addfile(info, io.BytesIO(files[name]))
        f.flush()
        os.fsync(f.fileno())
    return manifest


def read_bundle(bundle: Path) -> tuple[Manifest, dict[str, bytes]]:
    """Read and check a bundle whole. Raises ConfigError naming what is wrong; writes nothing."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(bundle, mode="r:*") as tar:
            for member in tar.getmembers():
                if member.name not in MEMBERS or member.name in files:
                    raise ConfigError(f"unexpected member {member.name!r} (a gateway bundle holds only "
                                      f"{', '.join(MEMBERS)}; never the CA key)", file=str(bundle))
                if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    raise ConfigError(f"member {member.name!r} is not a small regular file", file=str(bundle))
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"cannot read the bundle: {exc}", file=str(bundle)) from None
    missing = [n for n in MEMBERS if n not in files]
    if missing:
        raise ConfigError(f"incomplete bundle: {', '.join(missing)} missing", file=str(bundle))
    try:
        doc = json.loads(files["manifest.json"])
        if doc.pop("format") != FORMAT or doc.pop("version") != VERSION:
            raise ValueError("not a gateway bundle of this version")
        manifest = Manifest(**doc)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"bad manifest.json: {exc}", file=str(bundle)) from None
    for name, digest in manifest.files.items():
        if name not in files or hashlib.sha256(files[name]).hexdigest() != digest:
            raise ConfigError(f"{name} does not match the manifest's digest", file=str(bundle))
    _check_certificates(files, bundle)
    return manifest, files


def _check_certificates(files: dict[str, bytes], bundle: Path) -> None:
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(files["ca.crt"])
    for name, (role_name, usage) in CERTIFICATES.items():
        cert = x509.load_pem_x509_certificates(files[name])[0]
        key = parse_key(files[name.replace(".crt", ".key")], name.replace(".crt", ".key"))
        if not issued_by(cert, ca):
            raise ConfigError(f"{name} is not signed by the bundle's CA", file=str(bundle))
        if not key_matches(cert, key):
            raise ConfigError(f"{name.replace('.crt', '.key')} is not the key of {name}", file=str(bundle))
        usages = cert.extensions.get_extension_for_class(ExtendedKeyUsage).value
        names = cert.extensions.get_extension_for_class(SubjectAlternativeName).value.get_values_for_type(DNSName)
        if usage not in usages or (role_name is not None and role_name not in names):
            raise ConfigError(f"{name} is not a certificate of its role ({role_name or 'public'})", file=str(bundle))


def install_gateway_bundle(bundle: Path, tls_dir: Path) -> Manifest:
    """Check the bundle (read_bundle), then write its files into `tls_dir` (0700; keys 0600, certificates
    0644, each replaced atomically). Returns its manifest."""
    manifest, files = read_bundle(bundle)
    private_dir(tls_dir)
    for name, data in files.items():
        if name == "manifest.json":
            continue
        (write_private if name.endswith(".key") else write_public)(tls_dir / name, data)
    load_chain(tls_dir / "ca.crt")  # what was written reads back
    return manifest


__all__ = ["CERTIFICATES", "FORMAT", "MEMBERS", "Manifest", "install_gateway_bundle", "issue_gateway_bundle",
           "read_bundle"]
