"""The Bolt app factory and the two ways to run it: Socket Mode (default) and HTTP (signed requests).

``build_app(settings)`` wires the Web API client to ``settings.slack_api_url`` (a fake server in
tests and staging), one context middleware (database session factory + acting user with role),
the event de-duplication middleware, every listener and one error handler. Authorization never
needs Slack to be reachable: ``auth.test`` is tried at start and retried lazily, and its failure is
logged rather than fatal, so an HTTP deployment keeps serving (and queueing posts in the outbox)
while Slack is unreachable.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy.orm import Session, sessionmaker

from bot.flows import upload as upload_flow
from bot.listeners import register_listeners
from bot.listeners.after_ack import request_in_flight
from bot.listeners.middleware import dedupe_deliveries, inject_context
from bot.outbox import PER_CHANNEL_INTERVAL_S, Dispatcher
from bot.settings import Settings
from storage.db import session_factory as make_session_factory
from storage.models import utcnow

log = logging.getLogger(__name__)

AUTH_RETRY_S = 60.0
RATE_LIMIT_RETRIES = 2
LISTENER_THREADS = 64


class _UploadRecovery(threading.Thread):
    """Stores what a killed bot acknowledged but never stored (pending ``inbound_uploads``).

    Once, at start: every pending row received before this process began (its processor is
    gone). Rows that go stale later are the scheduler's sweep job's (``uploads.STALE_AFTER``).
    """

    def __init__(self, *, session_factory: sessionmaker[Session], settings: Settings) -> None:
        super().__init__(name="upload-recovery", daemon=True)
        self.session_factory, self.settings = session_factory, settings
        self.started_at = utcnow()

    def run(self) -> None:
        try:
            upload_flow.recover(
                session_factory=self.session_factory,
                settings=self.settings,
                received_before=self.started_at,
            )
        except Exception:
            log.exception("upload recovery at start failed; the scheduler's sweep retries it")


class _BotIdentity:
    """``auth.test`` once, remembered; retried at most once a minute while it fails."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self.result: dict[str, Any] | None = None
        self._last_try = 0.0
        self._lock = threading.Lock()

    def check(self) -> dict[str, Any] | None:
        with self._lock:
            if self.result is not None or time.monotonic() - self._last_try < AUTH_RETRY_S:
                return self.result
            self._last_try = time.monotonic()
        try:
            self.result = dict(self.client.auth_test().data)  # type: ignore[arg-type]
            log.info("connected to Slack as %s", self.result.get("user_id"))
        except Exception as exc:  # Slack unreachable or token refused: keep serving
            log.error("auth.test failed (%s); serving anyway, posts wait in the outbox", exc)
        return self.result


def build_app(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    start_dispatcher: bool = True,
    per_channel_interval: float = PER_CHANNEL_INTERVAL_S,
    recover_uploads: bool | None = None,
) -> App:
    """The Slack app. HTTP mode needs ``slack_signing_secret``; Socket Mode ``slack_app_token``."""
    if settings.slack_bot_token is None:
        raise ValueError("CIRCUITBOARD_SLACK_BOT_TOKEN is not set (use `circuitboard console`)")
    token = settings.slack_bot_token.get_secret_value()
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    # Listeners' calls (views.open, views.publish, conversations.open ...) wait out Slack's
    # ratelimited answer (Retry-After) and retry; the outbox gets a client without it, since it
    # reschedules a rate-limited row itself instead of blocking its thread.
    client = WebClient(token=token, base_url=settings.slack_api_url)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    outbox_client = WebClient(token=token, base_url=settings.slack_api_url)
    factory = session_factory or make_session_factory(settings.db_url)
    identity = _BotIdentity(client)
    identity.check()

    def authorize(**_: Any) -> AuthorizeResult:
        found = identity.check() or {}
        return AuthorizeResult(
            enterprise_id=found.get("enterprise_id"),
            team_id=found.get("team_id"),
            bot_token=token,
            bot_id=found.get("bot_id"),
            bot_user_id=found.get("user_id"),
        )

    app = App(
        name="circuitboard",
        client=client,
        authorize=authorize,
        signing_secret=secret,
        # Socket Mode carries no signatures; HTTP mode always verifies them.
        request_verification_enabled=secret is not None,
        token_verification_enabled=False,
        logger=logging.getLogger("bot.slack"),
        # Bolt's default pool has 5 threads: five slow listeners would delay every other ack.
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="bolt"
        ),
    )
    dispatcher = Dispatcher(
        session_factory=factory, client=outbox_client, per_channel_interval=per_channel_interval
    )
    if start_dispatcher:
        dispatcher.start()
    recovery = _UploadRecovery(session_factory=factory, settings=settings)
    if start_dispatcher if recover_uploads is None else recover_uploads:
        recovery.start()
    app._circuitboard = {  # type: ignore[attr-defined]
        "settings": settings,
        "session_factory": factory,
        "dispatcher": dispatcher,
        "identity": identity,
        "recovery": recovery,
    }
    app.middleware(
        inject_context(settings=settings, session_factory=factory, dispatcher=dispatcher)
    )
    app.middleware(dedupe_deliveries)
    register_listeners(app)

    @app.error
    def on_error(error: Exception, body: dict, logger: logging.Logger) -> BoltResponse | None:
        logger.exception("listener failed for %s: %s", body.get("type"), error)
        return None

    return app


def dispatcher_of(app: App) -> Dispatcher:
    return app._circuitboard["dispatcher"]  # type: ignore[attr-defined,no-any-return]


class _BoltHandler(BaseHTTPRequestHandler):
    app: App
    path_prefix = "/slack/events"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def _reply(self, status: int, body: str, headers: dict[str, Any] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        content_type_set = False
        for name, values in (headers or {}).items():
            for value in values if isinstance(values, list) else [values]:
                if name.lower() == "content-length":
                    continue
                content_type_set |= name.lower() == "content-type"
                self.send_header(name, value)
        if not content_type_set:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, "ok")
        else:
            self._reply(404, "not found")

    def do_POST(self) -> None:
        if not self.path.startswith(self.path_prefix):
            self._reply(404, "not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        with request_in_flight():
            response = self.app.dispatch(BoltRequest(body=body, headers=headers))
            self._reply(response.status, response.body or "", response.headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # Slack bursts: the default backlog of 5 resets connections


def make_http_server(app: App, *, host: str = "0.0.0.0", port: int = 3000) -> ThreadingHTTPServer:
    """A threaded HTTP server for Slack's signed requests on ``/slack/events`` (+ ``/healthz``)."""

    class Handler(_BoltHandler):
        pass

    Handler.app = app
    server = _Server((host, port), Handler)
    server.daemon_threads = True
    return server


def run_http(settings: Settings, *, host: str = "0.0.0.0", port: int = 3000) -> None:
    if settings.slack_signing_secret is None:
        raise ValueError("HTTP mode needs CIRCUITBOARD_SLACK_SIGNING_SECRET")
    app = build_app(settings)
    server = make_http_server(app, host=host, port=port)
    log.info("listening for Slack on http://%s:%d/slack/events", host, port)
    try:
        server.serve_forever()
    finally:
        dispatcher_of(app).stop()


SOCKET_PING_INTERVAL_S = 10.0


def socket_mode_handler(
    app: App, app_token: str, *, ping_interval: float = SOCKET_PING_INTERVAL_S
) -> Any:
    """slack_sdk's built-in Socket Mode client for ``app``. It reconnects at once when Slack
    asks (a ``disconnect`` message), and within ``ping_interval`` seconds after a dropped socket;
    Slack re-sends what was not acknowledged, and the dedupe middleware handles it once."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token, ping_interval=ping_interval)


def run_socket_mode(settings: Settings) -> None:
    if settings.slack_app_token is None:
        raise ValueError("Socket Mode needs CIRCUITBOARD_SLACK_APP_TOKEN (xapp-...), or use --http")
    app = build_app(settings)
    try:
        socket_mode_handler(app, settings.slack_app_token.get_secret_value()).start()
    finally:
        dispatcher_of(app).stop()
