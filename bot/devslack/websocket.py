"""A small server side of RFC 6455 WebSockets: the handshake, text frames, ping/pong and close.

Enough for Slack's Socket Mode: slack_sdk's builtin client, the `websockets` and aiohttp
clients and browsers all speak this subset. Server frames are never masked (as the RFC
requires); client frames are unmasked on reading; fragmented messages are reassembled.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler
from typing import BinaryIO

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 16 * 1024 * 1024


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + payload


def upgrade(handler: BaseHTTPRequestHandler) -> "WebSocket | None":
    """Answer a GET that asks for a WebSocket with 101 Switching Protocols; None if it did not."""
    key = handler.headers.get("Sec-WebSocket-Key")
    if (handler.headers.get("Upgrade") or "").lower() != "websocket" or not key:
        handler.send_error(400, "expected a WebSocket upgrade")
        return None
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.settimeout(None)
    return WebSocket(handler.connection, handler.rfile)


class WebSocket:
    """The server end of one open WebSocket. `send_text` and `close` are thread-safe."""

    def __init__(self, sock: socket.socket, rfile: BinaryIO) -> None:
        self._sock, self._rfile = sock, rfile
        self._send_lock = threading.Lock()
        self.closed = False

    def send_text(self, text: str) -> None:
        """Send one text message; raises OSError (ConnectionError) if the socket is gone."""
        self._send(OP_TEXT, text.encode("utf-8"))

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping; the client answers with a pong (ignored)."""
        self._send(OP_PING, payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (best effort) and shut the socket down, which ends `receive`."""
        if self.closed:
            return
        self.closed = True
        try:
            self._send(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def receive(self) -> str | None:
        """The next text (or binary, decoded) message; None once the connection has closed.

        Pings are answered with pongs and a close frame with a close frame, meanwhile.
        """
        parts: list[bytes] = []
        while True:
            frame = self._read_frame()
            if frame is None:
                self.closed = True
                return None
            fin, opcode, payload = frame
            if opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self.close(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000)
                return None
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8", errors="replace")

    def _send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(encode_frame(opcode, payload))

    def _read_exact(self, size: int) -> bytes | None:
        try:
            data = self._rfile.read(size) if size else b""
        except (OSError, ValueError):
            return None
        return data if len(data) == size else None

    def _read_frame(self) -> tuple[bool, int, bytes] | None:
        head = self._read_exact(2)
        if head is None:
            return None
        fin, opcode, masked, size = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
        if size >= 126:
            extended = self._read_exact(2 if size == 126 else 8)
            if extended is None:
                return None
            size = struct.unpack("!H" if size == 126 else "!Q", extended)[0]
        if size > MAX_MESSAGE:
            self.close(1009, "message too big")
            return None
        mask = self._read_exact(4) if masked else b""
        payload = self._read_exact(size)
        if mask is None or payload is None:
            return None
        if mask:
            key = (mask * (size // 4 + 1))[:size]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
        return bool(fin), opcode, payload
