"""The gateway's bundle: made where the CA key is, holding everything the gateway needs and never that key;
installed only whole and untampered."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from mailbastion.config import load_settings
from mailbastion.core.errors import ConfigError
from mailbastion.deploy.bundle import MEMBERS, install_gateway_bundle, issue_gateway_bundle, read_bundle
from mailbastion.deploy.names import GATEWAY_CLIENT_NAME, LINK_NAME
from mailbastion.pki import issued_by, make_ca


def _mb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbastion", *args], capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def internal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("internal") / "in"
    res = _mb("init", "--role", "internal", "--dir", str(root), "--domain", "example.test",
              "--link-address", "10.77.0.2", "--gateway-address", "10.77.0.1")
    assert res.returncode == 0, res.stderr
    return root / "mailbastion.toml"


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    """Copy the tar `src` to `dst` with members replaced (bytes), removed (None) or added."""
    with tarfile.open(src) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    for name, data in change.items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    with tarfile.open(dst, "w") as out:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def test_the_internal_host_has_the_ca_key_and_its_own_certificates_only(internal: Path) -> None:
    s = load_settings(internal)
    tls = s.path("tls")
    assert sorted(p.name for p in tls.iterdir()) == ["ca.crt", "ca.key", "internal-client.crt", "internal-client.key",
                                                     "mda.crt", "mda.key", "server.crt", "server.key"]
    # the users' services (the portal) present server.crt, for this host's name, never the gateway's
    assert s.path(s.tls.cert).name == "server.crt"
    subject = x509.load_pem_x509_certificate(s.path(s.tls.cert).read_bytes()).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == s.server.hostname
    assert s.server.role == "internal" and s.map_push.gateways == ["10.77.0.1:2426"]
    assert s.lmtp.listen == "10.77.0.2:2424"


def test_issue_gateway_writes_a_private_bundle_without_the_ca_key(internal: Path, tmp_path: Path) -> None:
    out = tmp_path / "gw.tar"
    res = _mb("pki", "issue-gateway", "-c", str(internal), "--out", str(out), "--hostname", "mx.example.test")
    assert res.returncode == 0, res.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with tarfile.open(out) as tar:
        names = tar.getnames()
        ca_key = load_settings(internal).path("tls/ca.key").read_bytes()
        assert all(ca_key not in tar.extractfile(m).read() for m in tar.getmembers())  # type: ignore[union-attr]
    assert sorted(names) == sorted(MEMBERS) and "ca.key" not in names
    manifest, files = read_bundle(out)
    assert (manifest.hostname, manifest.gateway_address, manifest.mda, manifest.internal_address) == (
        "mx.example.test", "10.77.0.1", "10.77.0.2:2424", "10.77.0.2")
    ca = x509.load_pem_x509_certificate(files["ca.crt"])
    link = x509.load_pem_x509_certificate(files["gateway-link.crt"])
    client = x509.load_pem_x509_certificate(files["gateway-client.crt"])
    assert issued_by(link, ca) and issued_by(client, ca)
    sans = link.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [LINK_NAME]
    assert client.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == [GATEWAY_CLIENT_NAME]
    # the gateway's keys stay nowhere on the internal host
    tls = load_settings(internal).path("tls")
    assert not [p for p in tls.iterdir() if p.name.startswith("gateway")]
    again = _mb("pki", "issue-gateway", "-c", str(internal), "--out", str(out))
    assert again.returncode == 1 and "refusing to replace" in again.stderr


def test_init_gateway_installs_the_bundle_and_writes_a_gateway_configuration(internal: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "gw.tar"
    issue_gateway_bundle(load_settings(internal), bundle, hostname="mx.example.test")
    res = _mb("init", "--role", "gateway", "--bundle", str(bundle), "--dir", str(tmp_path / "gw"))
    assert res.returncode == 0, res.stderr
    s = load_settings(tmp_path / "gw" / "mailbastion.toml")
    assert s.server.role == "gateway" and s.server.hostname == "mx.example.test"
    assert s.lmtp.connect == "10.77.0.2:2424" and s.map_push.listen == "10.77.0.1:2426"
    assert [str(n) for n in s.map_push.allow] == ["10.77.0.2/32"]
    tls = tmp_path / "gw" / "tls"
    assert not (tls / "ca.key").exists() and not (tmp_path / "gw" / "directory.db").exists()
    for key in tls.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    # the TLS files are what the gateway's listeners and clients load
    from mailbastion.apps.map_push import link_server_context
    from mailbastion.tls_policy import lmtp_client_context_from_settings, server_context_from_settings

    link_server_context(s), lmtp_client_context_from_settings(s), server_context_from_settings(s)
    # the gateway needs a bundle, and only the gateway takes one
    assert _mb("init", "--role", "gateway", "--dir", str(tmp_path / "g2")).returncode == 1
    assert _mb("init", "--bundle", str(bundle), "--domain", "x.test", "--dir", str(tmp_path / "g3")).returncode == 1


@pytest.mark.parametrize("tamper", ["extra_ca_key", "digest", "missing", "other_ca", "path"])
def test_a_bad_bundle_is_refused_before_anything_is_written(internal: Path, tmp_path: Path, tamper: str) -> None:
    good = tmp_path / "good.tar"
    issue_gateway_bundle(load_settings(internal), good)
    bad = tmp_path / "bad.tar"
    if tamper == "extra_ca_key":
        _rewrite(good, bad, {"ca.key": load_settings(internal).path("tls/ca.key").read_bytes()})
    elif tamper == "digest":
        _rewrite(good, bad, {"gateway-link.crt": good.read_bytes()[:10]})
    elif tamper == "missing":
        _rewrite(good, bad, {"gateway-client.key": None})
    elif tamper == "path":
        _rewrite(good, bad, {"../evil": b"x"})
    else:  # everything re-signed by another CA, manifest digests updated: still not the bundle's CA pair
        other = tmp_path / "other"
        other.mkdir()
        make_ca(other / "ca.crt", other / "ca.key")
        _, files = read_bundle(good)
        doc = json.loads(files["manifest.json"])
        import hashlib

        doc["files"]["ca.crt"] = hashlib.sha256((other / "ca.crt").read_bytes()).hexdigest()
        _rewrite(good, bad, {"ca.crt": (other / "ca.crt").read_bytes(),
                             "manifest.json": json.dumps(doc).encode()})
    target = tmp_path / "tls"
    with pytest.raises(ConfigError):
        install_gateway_bundle(bad, target)
    assert not target.exists()
    res = _mb("init", "--role", "gateway", "--bundle", str(bad), "--dir", str(tmp_path / "gw"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "gw").exists()


def test_a_bundle_needs_the_gateways_address_and_the_ca_key(tmp_path: Path, internal: Path) -> None:
    s = load_settings(internal)
    with pytest.raises(ConfigError, match="--gateway-address"):
        issue_gateway_bundle(s.model_copy(update={"map_push": s.map_push.model_copy(update={"gateways": []})}),
                             tmp_path / "x.tar")
    without_key = s.model_copy(update={"tls": s.tls.model_copy(update={"ca_key": str(tmp_path / "absent.key")})})
    with pytest.raises(ConfigError, match="issue the gateway's bundle on the internal host, where the CA key is"):
        issue_gateway_bundle(without_key, tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()
