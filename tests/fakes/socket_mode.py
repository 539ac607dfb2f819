"""A local Socket Mode endpoint for the fake Slack: what ``apps.connections.open`` points at.

Slack's side of the protocol, as documented: on each connection a ``hello``; then envelopes
(``slash_commands``, ``events_api``, ``interactive``) each with an ``envelope_id`` the app must
ack by sending ``{"envelope_id": ...}`` back (with an optional ``payload``). Slack holds what it
could not deliver while the app was disconnected and re-sends an envelope that was not acked when
the app reconnects (``retry_attempt`` + 1 for events), so ``deliver`` works connected or not and
``drop`` closes the socket as Slack does when it refreshes a connection.

Runs on the ``websockets`` library's threaded server on 127.0.0.1; nothing here sleeps: tests
wait on conditions (``wait_ack``, ``wait_connections``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from fakes.slack import FakeSlack


class SocketModeServer:
    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.connections = 0
        self.acks: dict[str, dict[str, Any]] = {}  # envelope id -> the app's ack
        self.sent: list[dict[str, Any]] = []  # every envelope written to a socket, in order
        self._unacked: dict[str, dict[str, Any]] = {}  # envelope id -> envelope, in order
        self._current: ServerConnection | None = None
        self._cond = threading.Condition()
        self._server = serve(self._handle, "127.0.0.1", 0, ping_interval=None)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> SocketModeServer:
        self._thread.start()
        host, port = self._server.socket.getsockname()[:2]
        self.fake.socket_mode_url = f"ws://{host}:{port}/link/"
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    # --- Slack's side -------------------------------------------------------------------------
    def _handle(self, ws: ServerConnection) -> None:
        with self._cond:
            self.connections += 1
            self._current = ws
            ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": 1,
                        "debug_info": {
                            "host": "fake-socket-mode",
                            "approximate_connection_time": 3600,
                        },
                        "connection_info": {"app_id": "A0FAKEAPP1"},
                    }
                )
            )
            for envelope in self._unacked.values():  # held or unacknowledged: (re)delivered
                if envelope.get("type") == "events_api" and envelope["id_sent"]:
                    envelope["retry_attempt"] = envelope.get("retry_attempt", 0) + 1
                    envelope["retry_reason"] = "timeout"
                self._write(ws, envelope)
            self._cond.notify_all()
        try:
            for raw in ws:
                message = json.loads(raw)
                envelope_id = message.get("envelope_id")
                if not envelope_id:
                    continue
                with self._cond:
                    self.acks[envelope_id] = message
                    self._unacked.pop(envelope_id, None)
                    self._cond.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                if self._current is ws:
                    self._current = None
                self._cond.notify_all()

    def _write(self, ws: ServerConnection, envelope: dict[str, Any]) -> None:
        wire = {k: v for k, v in envelope.items() if k != "id_sent"}
        envelope["id_sent"] = True
        with contextlib.suppress(ConnectionClosed):
            ws.send(json.dumps(wire))
            self.sent.append(wire)

    def deliver(self, kind: str, payload: dict[str, Any], *, then_drop: bool = False) -> str:
        """Send an envelope now if connected (else when the app reconnects); its envelope id.

        ``then_drop`` closes the socket right after writing it, before the app's ack can be read:
        Slack then re-sends it on the next connection unless the ack made it through.
        """
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "payload": payload,
            "id_sent": False,
        }
        if kind == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        with self._cond:
            self._unacked[envelope_id] = envelope
            ws = self._current
            if ws is not None:
                self._write(ws, envelope)
        if ws is not None and then_drop:
            ws.close()
        return envelope_id

    def refresh(self) -> None:
        """Slack's planned reconnect: a ``disconnect`` message (``refresh_requested``); the app
        opens a new connection at once. Returns once it has."""
        with self._cond:
            ws, before = self._current, self.connections
        assert ws is not None, "not connected"
        with contextlib.suppress(ConnectionClosed):
            ws.send(
                json.dumps(
                    {
                        "type": "disconnect",
                        "reason": "refresh_requested",
                        "debug_info": {"host": "fake-socket-mode"},
                    }
                )
            )
        self.wait_connections(before + 1)

    def drop(self) -> None:
        """Close the app's socket (a network blip, or Slack refreshing the connection)."""
        with self._cond:
            ws = self._current
        if ws is not None:
            ws.close()
        with self._cond:
            self._cond.wait_for(lambda: self._current is not ws, timeout=10)

    # --- waiting --------------------------------------------------------------------------------
    def wait_connections(self, count: int, *, timeout: float = 15.0) -> None:
        with self._cond:
            if not self._cond.wait_for(
                lambda: self.connections >= count and self._current is not None, timeout=timeout
            ):
                raise AssertionError(f"the app made {self.connections} connection(s), not {count}")

    def wait_ack(self, envelope_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"envelope {envelope_id} was never acknowledged")
                self._cond.wait(left)
            return self.acks[envelope_id]
