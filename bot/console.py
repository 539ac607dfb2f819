"""The console adapter: a terminal chat driving the same services and views as the Slack app.

Type what you would type in Slack (``/puzzle``, ``/puzzle me``, ``/puzzle admin ...``), ``submit
PATH [WRITEUP_URL]`` to upload a local solution file as if you had DMed it, ``home`` for the App Home
tab. Posts go through the same outbox; a console client "sends" them by printing them, so status
updates and verdicts appear here as they would in your Slack DM (the channel is shown in brackets).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session, sessionmaker

from bot.errors import describe
from bot.flows import home, puzzle_command
from bot.flows import submission as submission_flow
from bot.flows import upload as upload_flow
from bot.outbox import Dispatcher
from bot.services import admins
from bot.settings import Settings
from bot.views.text import render
from storage.db import session_factory as make_session_factory
from storage.db import session_scope, upgrade_database

log = logging.getLogger(__name__)

CONSOLE_USER = "UCONSOLE"
CONSOLE_DM = "DCONSOLE"
PROMPT = "circuitboard> "
HELP = (
    "Type `/puzzle [sub-command]` as in Slack, `submit PATH [WRITEUP_URL]` to upload a local file,\n"
    "`home` for the App Home tab, `help`, or `quit`."
)


class _Response:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class ConsoleClient:
    """Implements the Web API methods the outbox uses by printing what Slack would show."""

    def __init__(self, out: TextIO, *, user_id: str = CONSOLE_USER, files_dir: Path | None = None):
        self.out = out
        self.user_id = user_id
        self.files_dir = files_dir
        self._ts = itertools.count(1)
        self._lock = threading.Lock()

    def _channel(self, channel: str | None) -> str:
        if channel in (self.user_id, CONSOLE_DM):
            return "DM"
        return f"#{channel}" if channel else "?"

    def _print(self, header: str, body: str) -> None:
        with self._lock:
            indented = "\n".join("    " + line for line in body.splitlines())
            self.out.write(f"\n{header}\n{indented}\n")
            self.out.flush()

    def _ts_next(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def chat_postMessage(
        self, *, channel: str, thread_ts: str | None = None, **kw: Any
    ) -> _Response:
        ts = self._ts_next()
        where = self._channel(channel) + (" (thread)" if thread_ts else "")
        self._print(f"[{where}] circuitboard:", render(kw))
        return _Response({"ok": True, "channel": channel, "ts": ts})

    def chat_update(self, *, channel: str, ts: str, **kw: Any) -> _Response:
        self._print(f"[{self._channel(channel)}] (updated)", render(kw))
        return _Response({"ok": True, "channel": channel, "ts": ts})

    def chat_postEphemeral(self, *, channel: str, user: str, **kw: Any) -> _Response:
        self._print(f"[{self._channel(channel)}] (only visible to you)", render(kw))
        return _Response({"ok": True, "message_ts": self._ts_next()})

    def files_upload_v2(self, *, channel: str | None = None, **kw: Any) -> _Response:
        content = kw.get("content") or b""
        name = kw.get("filename") or "file"
        note = f"{name} ({len(content)} bytes)"
        if self.files_dir is not None and content:
            self.files_dir.mkdir(parents=True, exist_ok=True)
            path = self.files_dir / name
            path.write_bytes(content if isinstance(content, bytes) else base64.b64decode(content))
            note = f"{name} saved to {path}"
        self._print(f"[{self._channel(channel)}] (file)", note)
        return _Response({"ok": True, "files": [{"id": f"F{self._ts_next()}"}]})

    def views_publish(self, *, user_id: str, view: dict, **_: Any) -> _Response:
        self._print("[App Home]", render(view))
        return _Response({"ok": True})

    def views_open(self, *, view: dict, **_: Any) -> _Response:
        self._print("[modal]", render(view))
        return _Response({"ok": True})

    def conversations_open(self, *, users: str, **_: Any) -> _Response:
        """The DM with a user (the outbox shares files only into a conversation)."""
        return _Response({"ok": True, "channel": {"id": CONSOLE_DM}})

    def pins_add(self, *, channel: str, timestamp: str, **_: Any) -> _Response:
        self._print(f"[{self._channel(channel)}] (pinned)", "the message above is pinned")
        return _Response({"ok": True})


class Console:
    """One user's console session; ``handle(line)`` is the whole protocol (tests drive it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        out: TextIO = sys.stdout,
        user_id: str = CONSOLE_USER,
        session_factory: sessionmaker[Session] | None = None,
        admin: bool = True,
    ) -> None:
        if admin and user_id not in settings.admins:
            settings = settings.model_copy(update={"admins": [*settings.admins, user_id]})
        self.settings = settings
        self.out = out
        self.user_id = user_id
        self.factory = session_factory or make_session_factory(settings.db_url)
        self.client = ConsoleClient(out, user_id=user_id, files_dir=settings.data_dir / "console")
        self.dispatcher = Dispatcher(
            session_factory=self.factory, client=self.client, interval=0.3, per_channel_interval=0
        )

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def handle(self, line: str) -> bool:
        """Run one input line; False when the user wants to leave.

        Errors a person can fix (no database, a busy one) print one line with what to do, as in
        the CLI; anything else is logged with its traceback and the console keeps going.
        """
        try:
            return self._handle(line)
        except Exception as exc:
            message = describe(exc, self.settings)
            if message is None:
                log.exception("console: %r failed", line)
                message = f"{type(exc).__name__}: {exc} (a bug: the traceback is in the log)"
            self.say(f"error: {message}")
            return True

    def _handle(self, line: str) -> bool:
        line = line.strip()
        if not line:
            return True
        if line in ("quit", "exit", ":q"):
            return False
        if line in ("help", "?"):
            self.say(HELP)
        elif line == "home":
            self._show_home()
        else:
            self._handle_words(line)
        return True

    def _show_home(self) -> None:
        with session_scope(self.factory) as session:
            view = home.build_for(session=session, settings=self.settings, user_id=self.user_id)
        self.client.views_publish(user_id=self.user_id, view=view)

    def _handle_words(self, line: str) -> None:
        """`submit PATH [URL]` (or `/puzzle submit PATH [URL]`) or a `/puzzle` command."""
        try:
            words = shlex.split(line)
        except ValueError as exc:  # an unclosed quote
            self.say(f"I could not read that line ({exc}).")
            return
        if words[0] == "submit" or words[:2] == ["/puzzle", "submit"] and len(words) > 2:
            args = words[1:] if words[0] == "submit" else words[2:]
            if not args:
                self.say("usage: submit PATH [WRITEUP_URL]")
                return
            self.submit(Path(args[0]).expanduser(), writeup_url=args[1] if len(args) > 1 else None)
            return
        if words[0] != "/puzzle":
            self.say(f"I don't understand {words[0]!r}. {HELP}")
            return
        self._puzzle(line.removeprefix("/puzzle").strip())

    def _puzzle(self, text: str) -> None:
        """Run `/puzzle <text>` as Slack would, and show its reply as an ephemeral message."""
        # An admin command may re-verify: its job is published after the commit.
        with submission_flow.unit_of_work(self.factory, self.settings) as session:
            result = puzzle_command.run_puzzle_command(
                session=session,
                settings=self.settings,
                user_id=self.user_id,
                text=text,
                channel_id=CONSOLE_DM,
            )
        if result.modal is not None:
            self.say("(In Slack this opens the submit form.) Here: `submit PATH [WRITEUP_URL]`.")
        if result.message is not None:
            self.client.chat_postEphemeral(channel=CONSOLE_DM, user=self.user_id, **result.message)
        self.dispatcher.wake()

    def submit(self, path: Path, *, writeup_url: str | None = None) -> int | None:
        """Upload a local file exactly as a DM file share would be handled."""
        if not path.is_file():
            self.say(f"no such file: {path}")
            return None
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()[:12]
        file = {
            "id": f"console-{digest}-{uuid.uuid4().hex[:8]}",
            "name": path.name,
            "size": len(content),
            "url_private_download": path.resolve().as_uri(),
        }
        fetch: Callable[[str], bytes] = lambda _url: content  # noqa: E731
        outcome = upload_flow.receive(
            session_factory=self.factory,
            settings=self.settings,
            user_id=self.user_id,
            file=file,
            dm_channel=self.user_id,
            writeup_url=writeup_url,
            fetch=fetch,
        )
        if outcome.error:
            self.client.chat_postEphemeral(
                channel=CONSOLE_DM, user=self.user_id, text=f":warning: {outcome.error}"
            )
        self.dispatcher.wake()
        return outcome.submission_id

    def repl(self, stdin: TextIO) -> None:
        """Prompt, read and handle lines until end of input or ``quit``.

        On a terminal the prompt is prompt_toolkit's, with standard output patched: a verdict
        printed by the outbox thread appears above the prompt and the line being typed is redrawn.
        """
        if stdin.isatty() and self.out is sys.__stdout__:
            self._terminal_repl()
            return
        while True:
            self.out.write(PROMPT)
            self.out.flush()
            line = stdin.readline()
            if not line or not self.handle(line):
                return

    def _terminal_repl(self, *, pt_input: Any = None, pt_output: Any = None) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        session: PromptSession[str] = PromptSession(input=pt_input, output=pt_output)
        with patch_stdout(raw=True):
            # the outbox thread prints through the proxy, which redraws the prompt below it
            self.out = self.client.out = sys.stdout
            try:
                while True:
                    try:
                        line = session.prompt(PROMPT)
                    except EOFError:
                        return
                    if not self.handle(line):
                        return
            finally:
                self.out = self.client.out = sys.__stdout__

    def flush(self) -> int:
        return self.dispatcher.run_once()

    @property
    def is_admin(self) -> bool:
        with session_scope(self.factory) as session:
            return admins.is_admin(
                session=session, user_id=self.user_id, configured=self.settings.admins
            )

    def shutdown(self, worker: Any = None) -> None:
        """Stop in order and say so: each step is quick, and a silent pause reads as a hang."""
        self.say("stopping: sending what the outbox still holds")
        self.dispatcher.run_once()
        self.dispatcher.stop()
        if worker is not None:
            self.say(f"stopping: the verification worker (pid {worker.pid})")
            worker.stop()
            self.say("stopped")


def run_console(
    settings: Settings,
    *,
    user_id: str = CONSOLE_USER,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    start_worker: bool = True,
    admin: bool = True,
) -> None:
    """The interactive loop: migrate, start the outbox (and a local worker), read lines."""
    settings.ensure_data_dir()
    upgrade_database(settings.db_url)
    console = Console(settings, out=out, user_id=user_id, admin=admin)
    worker = None
    if start_worker:
        from bot.worker.processes import start_local_worker

        worker = start_local_worker(log_path=settings.data_dir / "console-worker.log")
        console.say(f"(local verification worker started, pid {worker.pid})")
    console.dispatcher.start()
    role = "an admin" if console.is_admin else "a participant (`--admin` to act as an admin)"
    console.say(f"circuitboard console as {user_id}, {role}. {HELP}")
    try:
        console.repl(stdin)
    except KeyboardInterrupt:
        pass
    finally:
        console.shutdown(worker)
