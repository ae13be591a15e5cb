"""A small authoritative DNS server for the tests, on 127.0.0.1 (UDP and TCP, one port).

It answers from a dict of records, follows CNAMEs inside it, answers NXDOMAIN for names it
does not know, SERVFAIL for names listed in ``servfail`` and nothing at all (a timeout) for
names listed in ``silent``. Records can be changed while it runs.
"""

from __future__ import annotations

import socketserver
import struct
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class Zone:
    # (name, TYPE) -> record texts; names without the final dot, TXT values unquoted.
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)

    def add(self, name: str, rtype: str, *values: str) -> None:
        """Add records; adding one that is already there changes nothing."""
        current = self.records.setdefault((name.lower(), rtype.upper()), [])
        current.extend(v for v in values if v not in current)

    def remove(self, name: str, rtype: str) -> None:
        self.records.pop((name.lower(), rtype.upper()), None)

    def knows(self, name: str) -> bool:
        return any(n == name for n, _ in self.records)


def _rdata_text(rtype: str, value: str) -> str:
    if rtype == "TXT":
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
        return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
    if rtype in ("CNAME", "NS", "PTR"):
        return value.rstrip(".") + "."
    if rtype == "MX":
        priority, host = value.split()
        return f"{priority} {host.rstrip('.')}."
    return value


def answer(zone: Zone, wire: bytes) -> bytes | None:
    query = dns.message.from_wire(wire)
    question = query.question[0]
    name = question.name.to_text().rstrip(".").lower()
    rtype = dns.rdatatype.to_text(question.rdtype)
    if name in zone.silent:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    current = name
    for _ in range(8):
        if current in zone.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            break
        values = zone.records.get((current, rtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(
                    current + ".", 300, "IN", rtype, [_rdata_text(rtype, v) for v in values]
                )
            )
            break
        target = zone.records.get((current, "CNAME"))
        if rtype != "CNAME" and target:
            response.answer.append(
                dns.rrset.from_text_list(current + ".", 300, "IN", "CNAME", [target[0] + "."])
            )
            current = target[0].rstrip(".").lower()
            continue
        if not zone.knows(current):
            response.set_rcode(dns.rcode.NXDOMAIN)
        break
    return response.to_wire()


class DnsServer:
    """``with DnsServer(zone) as server: ... server.port``"""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.port = 0
        self._servers: list[socketserver.BaseServer] = []

    def __enter__(self) -> DnsServer:
        zone = self.zone

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = answer(zone, data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                (length,) = struct.unpack("!H", head)
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = answer(zone, data)
                if reply is not None:
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)

        for _ in range(20):
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
            port = udp.server_address[1]
            try:
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no free port for the test DNS server")
        for server in (udp, tcp):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._servers = [udp, tcp]
        self.port = port
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
