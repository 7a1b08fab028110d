"""An SMSC simulator the tests control: an SMPP 3.4 server (PDUs encoded and
parsed by ``smpplib``) that an SMS gateway such as Kannel binds to, plus a
small HTTP control API.

Per destination the tests choose what the "operator" does with a message:

* ``deliver`` (default) — ``submit_sm_resp`` OK, then a receipt ``stat:DELIVRD``;
* ``fail`` — receipt ``stat:UNDELIV``;
* ``expire`` — receipt ``stat:EXPIRED``;
* ``drop`` — accepted, no receipt ever;
* ``reject`` — ``submit_sm_resp`` with ``ESME_RSUBMITFAIL`` (the gateway's
  "non-delivered to SMSC" report);

with ``delay`` seconds before the receipt and ``repeat`` receipts (a
duplicate). Control API (JSON):

* ``PUT /behaviour/<destination>`` ``{"outcome", "delay", "repeat"}``;
* ``GET /messages?to=<destination>`` — what the SMSC took, decoded;
* ``GET /health`` — ``{"bound": n}``, the number of bound sessions.

``python -m devtools.smsc --smpp-port 2775 --http-port 2780``
"""

import argparse
import itertools
import json
import logging
import socketserver
import struct
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from smpplib import consts
from smpplib.smpp import make_pdu, parse_pdu

__all__ = ["SmscSimulator", "receipt_text"]

log = logging.getLogger("smsc")

RECEIPT_STATUS = {"deliver": "DELIVRD", "fail": "UNDELIV", "expire": "EXPIRED"}
ESM_CLASS_RECEIPT = 0x04
# Concatenated parts carry a user data header: 05 00 03 <ref> <total> <seq>.
ESM_CLASS_UDHI = 0x40


def receipt_text(message_id, status, when=None):
    """The de-facto receipt text of SMPP 3.4 Appendix B."""
    stamp = (when or datetime.now()).strftime("%y%m%d%H%M")
    delivered = "001" if status == "DELIVRD" else "000"
    error = "000" if status == "DELIVRD" else "001"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{stamp} "
        f"done date:{stamp} stat:{status} err:{error} text:"
    )


def _concatenation(header):
    """(reference, total, number) of a concatenated part's user data header
    (information element 0x00, 8-bit reference, or 0x08, 16-bit), or None."""
    at = 0
    while at + 1 < len(header):
        element, size = header[at], header[at + 1]
        value = header[at + 2 : at + 2 + size]
        if element == 0x00 and size == 3:
            return value[0], value[1], value[2]
        if element == 0x08 and size == 4:
            return (value[0] << 8) | value[1], value[2], value[3]
        at += 2 + size
    return None


def _decode(pdu):
    """The part's text and its place in a concatenated message, if any."""
    raw = pdu.short_message or b""
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    concatenation = None
    if (pdu.esm_class or 0) & ESM_CLASS_UDHI and raw:
        concatenation = _concatenation(raw[1 : raw[0] + 1])
        raw = raw[raw[0] + 1 :]
    if pdu.data_coding == 8:
        return raw.decode("utf-16-be", "replace"), concatenation
    return raw.decode("latin-1"), concatenation


class _Sequences:
    """smpplib numbers the PDUs it builds through a client object."""

    def __init__(self):
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def next_sequence(self):
        with self.lock:
            return next(self.counter)


def _number(destination):
    # Kannel drops an international number's "+" in destination_addr.
    return destination.lstrip("+")


def _text(value):
    return value.decode() if isinstance(value, bytes) else (value or "")


class SmscSimulator:
    def __init__(self, smpp_port=0, http_port=0, host="127.0.0.1"):
        self.host = host
        self.lock = threading.Lock()
        self.behaviours = {}
        self.messages = []
        self.sessions = set()
        self.next_id = 1000
        simulator = self

        class SmppHandler(socketserver.BaseRequestHandler):
            def handle(self):
                simulator._serve_session(self.request)

        class ControlHandler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                if url.path == "/health":
                    return self._answer(200, {"bound": len(simulator.sessions)})
                if url.path == "/messages":
                    to = parse_qs(url.query).get("to", [None])[0]
                    return self._answer(200, simulator.taken(to))
                return self._answer(404, {"error": "not found"})

            def do_PUT(self):
                url = urlparse(self.path)
                if not url.path.startswith("/behaviour/"):
                    return self._answer(404, {"error": "not found"})
                destination = unquote(url.path[len("/behaviour/") :])
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                simulator.behave(destination, **body)
                return self._answer(200, {"destination": destination, **body})

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.smpp = socketserver.ThreadingTCPServer((host, smpp_port), SmppHandler)
        self.smpp.daemon_threads = True
        self.http = ThreadingHTTPServer((host, http_port), ControlHandler)
        self.http.daemon_threads = True
        self.smpp_port = self.smpp.server_address[1]
        self.http_port = self.http.server_address[1]

    # -- control -------------------------------------------------------------
    def behave(self, destination, outcome="deliver", delay=0.0, repeat=1):
        if outcome not in (*RECEIPT_STATUS, "drop", "reject"):
            raise ValueError(f"unknown outcome {outcome!r}")
        with self.lock:
            self.behaviours[_number(destination)] = {
                "outcome": outcome,
                "delay": float(delay),
                "repeat": int(repeat),
            }

    def taken(self, to=None):
        """The messages taken, a concatenated one as one (its parts' texts
        joined in order, ``parts`` counted)."""
        with self.lock:
            parts = [m for m in self.messages if to is None or m["to"] == _number(to)]
        messages, by_reference = [], {}
        for part in parts:
            part = dict(part)
            key = part.pop("concatenation", None)
            if key is None:
                messages.append({**part, "parts": 1})
                continue
            reference, _total, number = key
            whole = by_reference.get((part["to"], reference))
            if whole is None:
                whole = by_reference[(part["to"], reference)] = {
                    **part,
                    "parts": 0,
                    "texts": {},
                }
                messages.append(whole)
            whole["texts"][number] = part["text"]
            whole["parts"] += 1
        for message in messages:
            texts = message.pop("texts", None)
            if texts is not None:
                message["text"] = "".join(texts[n] for n in sorted(texts))
        return messages

    def start(self):
        for server in (self.smpp, self.http):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        for server in (self.smpp, self.http):
            server.shutdown()
            server.server_close()

    # -- SMPP ----------------------------------------------------------------
    def _serve_session(self, sock):
        send_lock = threading.Lock()
        sequences = _Sequences()

        def send(pdu):
            with send_lock:
                sock.sendall(pdu.generate())

        try:
            while True:
                header = self._read(sock, 4)
                if header is None:
                    return
                (length,) = struct.unpack(">L", header)
                body = self._read(sock, length - 4)
                if body is None:
                    return
                pdu = parse_pdu(header + body, client=sequences)
                if not self._answer_pdu(pdu, send, sock, sequences):
                    return
        except OSError:
            return
        finally:
            self.sessions.discard(sock)

    @staticmethod
    def _read(sock, size):
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _answer_pdu(self, pdu, send, sock, sequences):
        command, sequence = pdu.command, pdu.sequence
        if command in ("bind_transceiver", "bind_transmitter", "bind_receiver"):
            self.sessions.add(sock)
            send(
                make_pdu(
                    f"{command}_resp",
                    client=sequences,
                    sequence=sequence,
                    system_id="simsmsc",
                )
            )
        elif command == "enquire_link":
            send(make_pdu("enquire_link_resp", client=sequences, sequence=sequence))
        elif command == "unbind":
            send(make_pdu("unbind_resp", client=sequences, sequence=sequence))
            return False
        elif command == "submit_sm":
            self._take(pdu, send, sequences)
        elif command.endswith("_resp"):
            pass  # deliver_sm_resp and the like
        else:
            send(
                make_pdu(
                    "generic_nack",
                    client=sequences,
                    sequence=sequence,
                    status=consts.SMPP_ESME_RINVCMDID,
                )
            )
        return True

    def _take(self, pdu, send, sequences):
        to = _number(_text(pdu.destination_addr))
        with self.lock:
            behaviour = self.behaviours.get(to, {"outcome": "deliver"})
            self.next_id += 1
            message_id = str(self.next_id)
            text, concatenation = _decode(pdu)
            self.messages.append(
                {
                    "id": message_id,
                    "to": to,
                    "from": _text(pdu.source_addr),
                    "text": text,
                    "concatenation": concatenation,
                    "registered_delivery": pdu.registered_delivery,
                    "outcome": behaviour["outcome"],
                    "at": time.time(),
                }
            )
        if behaviour["outcome"] == "reject":
            send(
                make_pdu(
                    "submit_sm_resp",
                    client=sequences,
                    sequence=pdu.sequence,
                    status=consts.SMPP_ESME_RSUBMITFAIL,
                    message_id="",
                )
            )
            return
        send(
            make_pdu(
                "submit_sm_resp",
                client=sequences,
                sequence=pdu.sequence,
                message_id=message_id,
            )
        )
        status = RECEIPT_STATUS.get(behaviour["outcome"])
        if status is None or not pdu.registered_delivery:
            return
        timer = threading.Timer(
            behaviour.get("delay", 0.0),
            self._send_receipts,
            (
                send,
                sequences,
                to,
                _text(pdu.source_addr),
                message_id,
                status,
                behaviour,
            ),
        )
        timer.daemon = True
        timer.start()

    def _send_receipts(
        self, send, sequences, phone, sender, message_id, status, behaviour
    ):
        for _ in range(max(1, behaviour.get("repeat", 1))):
            receipt = make_pdu("deliver_sm", client=sequences)
            receipt.source_addr = phone
            receipt.destination_addr = sender
            receipt.esm_class = ESM_CLASS_RECEIPT
            receipt.data_coding = 0
            receipt.short_message = receipt_text(message_id, status).encode()
            try:
                send(receipt)
            except OSError:
                log.warning("receipt for %s lost: session gone", message_id)
                return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smpp-port", type=int, default=2775)
    parser.add_argument("--http-port", type=int, default=2780)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    simulator = SmscSimulator(args.smpp_port, args.http_port).start()
    print(
        f"SMSC simulator: SMPP on :{simulator.smpp_port}, control on "
        f":{simulator.http_port}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        simulator.stop()


if __name__ == "__main__":
    main()
