"""A DNSSEC-signed test zone (signed by Debian's ldnsutils at test time) and an authoritative server for it
on loopback, answering as a signed zone must: RRSIGs with the data, NSEC proofs for "no such name" and
"no such type". For tests only; a validating resolver (testing/unbound.py) sits in front of it.

    zone = SignedZone.sign("dane.test", ["@ MX 10 mx", "mx A 127.0.0.2",
                                          "_25._tcp.mx TLSA 3 1 1 ab12..."], tmp_path)
    zone.trust_anchor          -> "dane.test. IN DS 15645 13 2 457b..."   (for unbound's trust-anchor)
    zone.tamper("_25._tcp.mx.dane.test", "TLSA", "3 1 1 00ff...")   # new data, old signature: bogus
    with SignedZoneServer([zone]) as auth:       # UDP and TCP on 127.0.0.1, a free port
        ... auth.host, auth.port

Keys are ECDSA P-256 (algorithm 13), a KSK and a ZSK made by `ldns-keygen`; `ldns-signzone` signs with
NSEC. Names outside the zones are REFUSED.
"""

from __future__ import annotations

import shutil
import socket
import socketserver
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

IN = dns.rdataclass.IN
RdataType = dns.rdatatype.RdataType
RRSIG, NSEC, SOA, CNAME = RdataType.RRSIG, RdataType.NSEC, RdataType.SOA, RdataType.CNAME


def ldns_available() -> bool:
    return shutil.which("ldns-keygen") is not None and shutil.which("ldns-signzone") is not None


@dataclass
class SignedZone:
    origin: str
    zone: dns.zone.Zone
    trust_anchor: str  # the KSK's DS record, one line of zone-file text
    folder: Path

    @staticmethod
    def sign(origin: str, records: list[str], folder: Path, *, ttl: int = 300) -> SignedZone:
        """Write the zone (SOA and NS added), make a KSK and a ZSK, sign. `records` are zone-file lines
        relative to the origin ("mx A 127.0.0.2", "@ MX 10 mx"). Raises RuntimeError when ldns fails."""
        origin = origin.rstrip(".").lower()
        folder.mkdir(parents=True, exist_ok=True)
        text = "\n".join([f"$ORIGIN {origin}.", f"$TTL {ttl}",
                          f"@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 {ttl}",
                          f"@ IN NS ns.{origin}.", "ns IN A 127.0.0.1", *records, ""])
        zone_file = folder / f"{origin}.zone"
        zone_file.write_text(text, encoding="ascii")

        def run(*cmd: str) -> str:
            res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=60)
            if res.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip() or res.stdout.strip()}")
            return res.stdout.strip()

        ksk = run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", origin).splitlines()[-1]
        zsk = run("ldns-keygen", "-a", "ECDSAP256SHA256", origin).splitlines()[-1]
        run("ldns-signzone", "-f", str(folder / f"{origin}.signed"), zone_file.name, ksk, zsk)
        signed = dns.zone.from_text((folder / f"{origin}.signed").read_text(encoding="ascii"), origin=origin + ".",
                                    relativize=False, check_origin=True)
        ds = (folder / f"{ksk}.ds").read_text(encoding="ascii").split(";")[0].strip()
        return SignedZone(origin, signed, ds, folder)

    def tamper(self, name: str, rdtype: str, value: str) -> None:
        """Replace the data of `name`/`rdtype` and keep the old signature: a validator calls it bogus."""
        qname = dns.name.from_text(name)
        rtype = dns.rdatatype.from_text(rdtype)
        node = self.zone.find_node(qname)
        old = node.find_rdataset(IN, rtype)
        old.clear()  # type: ignore[no-untyped-call]
        old.add(dns.rdata.from_text(IN, rtype, value), old.ttl)


class SignedZoneServer:
    """Serves SignedZones authoritatively over UDP and TCP on loopback, in threads."""

    def __init__(self, zones: list[SignedZone], host: str = "127.0.0.1") -> None:
        self.zones = {dns.name.from_text(z.origin): z for z in zones}
        self.host = host
        self.queries: list[tuple[str, str]] = []
        owner = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = owner.answer(data, max_size=None)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(10)
                try:
                    while True:
                        head = _recv_exactly(sock, 2)
                        if not head:
                            return
                        reply = owner.answer(_recv_exactly(sock, struct.unpack("!H", head)[0]), tcp=True)
                        if reply is not None:
                            sock.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        for _ in range(50):  # one port number for UDP and TCP: the kernel's UDP choice may be taken in TCP
            self._udp = socketserver.ThreadingUDPServer((host, 0), Udp)
            self.port = self._udp.server_address[1]
            try:
                self._tcp = socketserver.ThreadingTCPServer((host, self.port), Tcp)
                break
            except OSError:
                self._udp.server_close()
        else:
            raise RuntimeError(f"no port free for both UDP and TCP on {host}")
        self._udp.daemon_threads = self._tcp.daemon_threads = True

    # -- answering ------------------------------------------------------------------------------------------

    def answer(self, wire: bytes, *, max_size: int | None = None, tcp: bool = False) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if query.ednsflags & dns.flags.DO:
            response.want_dnssec(True)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        q = query.question[0]
        self.queries.append((q.name.to_text(omit_final_dot=True).lower(), dns.rdatatype.to_text(q.rdtype)))
        zone = next((z for origin, z in self.zones.items() if q.name.is_subdomain(origin)), None)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        self._fill(zone.zone, q.name, q.rdtype, response, bool(query.ednsflags & dns.flags.DO))
        limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    @staticmethod
    def _add(section: list[dns.rrset.RRset], zone: dns.zone.Zone, name: dns.name.Name, rdtype: RdataType,
             dnssec: bool) -> bool:
        node = zone.get_node(name)
        if node is None:
            return False
        rds = node.get_rdataset(IN, rdtype)
        if rds is None:
            return False
        rrset = dns.rrset.RRset(name, IN, rdtype)
        rrset.update(rds)  # type: ignore[no-untyped-call]
        section.append(rrset)
        if dnssec:
            sig = node.get_rdataset(IN, RRSIG, covers=rdtype)
            if sig is not None:
                sigset = dns.rrset.RRset(name, IN, RRSIG, covers=rdtype)
                sigset.update(sig)  # type: ignore[no-untyped-call]
                section.append(sigset)
        return True

    def _covering_nsec(self, zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name:
        """The owner of the NSEC record whose span covers `name` (its canonical predecessor)."""
        owners = sorted(n for n, node in zone.nodes.items() if node.get_rdataset(IN, NSEC) is not None)
        before = [n for n in owners if n < name]
        return before[-1] if before else owners[-1]

    def _fill(self, zone: dns.zone.Zone, qname: dns.name.Name, qtype: RdataType, response: dns.message.Message,
              dnssec: bool) -> None:
        origin = zone.origin
        assert origin is not None
        node = zone.get_node(qname)
        if node is not None:
            if self._add(response.answer, zone, qname, qtype, dnssec):
                return
            if qtype != CNAME and self._add(response.answer, zone, qname, CNAME, dnssec):
                return  # the validating resolver follows the CNAME itself
            self._add(response.authority, zone, origin, SOA, dnssec)  # NODATA, proven by the NSEC at qname
            if dnssec:
                self._add(response.authority, zone, qname, NSEC, dnssec)
            return
        self._add(response.authority, zone, origin, SOA, dnssec)
        empty_non_terminal = any(n.is_subdomain(qname) and n != qname for n in zone.nodes)
        if not empty_non_terminal:
            response.set_rcode(dns.rcode.NXDOMAIN)
        if not dnssec:
            return
        first = self._covering_nsec(zone, qname)
        self._add(response.authority, zone, first, NSEC, dnssec)
        if empty_non_terminal:
            return
        # RFC 4035 §3.1.3.2: also prove there is no wildcard at the closest encloser.
        encloser = qname.parent()
        while encloser != origin and zone.get_node(encloser) is None and not any(
                n.is_subdomain(encloser) for n in zone.nodes):
            encloser = encloser.parent()
        wildcard = dns.name.Name((b"*", *encloser.labels))
        second = self._covering_nsec(zone, wildcard)
        if second != first:
            self._add(response.authority, zone, second, NSEC, dnssec)

    # -- running ----------------------------------------------------------------------------------------------

    def start(self) -> SignedZoneServer:
        for server in (self._udp, self._tcp):
            threading.Thread(target=server.serve_forever, daemon=True, name="signed-zone").start()
        return self

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> SignedZoneServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


__all__ = ["SignedZone", "SignedZoneServer", "ldns_available"]
