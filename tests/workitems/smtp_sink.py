"""A tiny SMTP server for tests: run as its own process, it accepts mail on loopback and writes
each message to a folder, so a test sees exactly what went over the wire.

    python tests/workitems/smtp_sink.py --folder /tmp/mail [--fail-first N] [--port P]

It prints `PORT <n>` once listening (on a free port chosen by the system, or on P: a test that
stops the server and starts it again on the same port plays a mail server that comes back).
Each message is saved as `<n>.eml` (the DATA, dot-unstuffed) with `<n>.rcpt` (the envelope
recipients, one a line).
`--fail-first N` answers the first N `MAIL FROM` commands with a temporary failure (451), as a
server that is overloaded or restarting does.

It speaks only what smtplib needs: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP and QUIT.
"""

from __future__ import annotations

import argparse
import socketserver
import sys
import threading
from pathlib import Path


class Sink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, folder: Path, fail_first: int, port: int = 0):
        super().__init__(("127.0.0.1", port), Session)
        self.folder = folder
        self.fail_first = fail_first
        # Numbering goes on after the messages a previous server on this folder saved.
        self.count = len(list(folder.glob("*.eml")))
        self.lock = threading.Lock()

    def refuse_next(self) -> bool:
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return True
            return False

    def save(self, recipients: list[str], data: bytes) -> None:
        with self.lock:
            self.count += 1
            n = self.count
        (self.folder / f"{n}.rcpt").write_text("\n".join(recipients) + "\n")
        # Written last and renamed into place: a reader never sees half a message.
        tmp = self.folder / f"{n}.eml.tmp"
        tmp.write_bytes(data)
        tmp.rename(self.folder / f"{n}.eml")


class Session(socketserver.StreamRequestHandler):
    server: Sink

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self.reply("220 sink ESMTP test server")
        sender: str | None = None
        recipients: list[str] = []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb == "EHLO":
                self.reply("250-sink greets you")
                self.reply("250-8BITMIME")
                self.reply("250 SMTPUTF8")
            elif verb == "HELO":
                self.reply("250 sink greets you")
            elif verb == "MAIL":
                if self.server.refuse_next():
                    self.reply("451 4.3.0 Try again later")
                    continue
                sender, recipients = line[10:].strip(), []
                self.reply("250 2.1.0 OK")
            elif verb == "RCPT":
                if sender is None:
                    self.reply("503 5.5.1 MAIL first")
                    continue
                recipients.append(line[8:].split(">")[0].strip().lstrip("<"))
                self.reply("250 2.1.5 OK")
            elif verb == "DATA":
                if not recipients:
                    self.reply("503 5.5.1 RCPT first")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    chunk = self.rfile.readline()
                    if not chunk or chunk in (b".\r\n", b".\n"):
                        break
                    lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.save(recipients, b"".join(lines))
                sender, recipients = None, []
                self.reply("250 2.0.0 Queued")
            elif verb == "RSET":
                sender, recipients = None, []
                self.reply("250 2.0.0 OK")
            elif verb == "NOOP":
                self.reply("250 2.0.0 OK")
            elif verb == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not recognised")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    with Sink(args.folder, args.fail_first, args.port) as server:
        print(f"PORT {server.server_address[1]}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
