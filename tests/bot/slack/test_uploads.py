"""DM file uploads and the submit modal, end to end: one submission, verdict once, in the thread.

The verdict comes from the queue's real job body (``bot.worker.verification.run_verification``) running the real
verification engine in-process on the catalog's reference solution.
"""

from __future__ import annotations

import time

from fakes.slack import BOT_USER_ID

from puzzles.catalog import get_puzzle
from storage.db import session_scope
from storage.models import OutboxMessage, OutboxStatus, Submission, SubmissionStatus

DM = "D0USER0001"


def _file_event(
    slack_app, file_id: str, name: str, content: bytes, *, ts: str = "1700000000.000100"
):
    url = slack_app.fake.add_file(file_id, name, content)
    return {
        "type": "message",
        "subtype": "file_share",
        "channel": DM,
        "channel_type": "im",
        "user": "U0USER0001",
        "ts": ts,
        "text": "",
        "files": [
            {
                "id": file_id,
                "name": name,
                "size": len(content),
                "url_private_download": url,
                "filetype": "python",
            }
        ],
    }


def _submissions(slack_app) -> list[Submission]:
    with session_scope(slack_app.factory) as session:
        return list(session.query(Submission).order_by(Submission.id))


def _verify(slack_app, submission_id: int) -> str:
    from bot.worker.verification import run_verification

    settings = slack_app.app._circuitboard["settings"]
    return run_verification(submission_id, settings=settings)


def _drain(slack_app, timeout: float = 15.0) -> None:
    """Flush until the outbox is empty: per-channel pacing (~1 post/s) holds some rows back."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slack_app.flush()
        with session_scope(slack_app.factory) as session:
            pending = session.query(OutboxMessage).filter(
                OutboxMessage.status == OutboxStatus.PENDING
            )
            if pending.count() == 0:
                return
        time.sleep(0.2)


def test_dm_upload_is_one_submission_and_verdict_lands_once_in_its_thread(slack_app, open_round):
    source = get_puzzle("palindromes").solution_path.read_bytes()
    event = _file_event(slack_app, "F1", "solution.py", source)
    assert slack_app.event(event, event_id="Ev1").status_code == 200
    # Slack retries the same event (our ack was "late"), then delivers it once more.
    assert slack_app.event(event, event_id="Ev1", retry=1).status_code == 200
    assert slack_app.event(dict(event), event_id="Ev1", retry=2).status_code == 200
    status = slack_app.fake.wait_for(
        "chat.postMessage", lambda c: c.args.get("thread_ts") == event["ts"]
    )
    assert "Submission #" in status[0].args["text"]
    (sub,) = _submissions(slack_app)
    assert sub.slack_file_id == "F1" and sub.thread_ts == event["ts"] and sub.dm_channel == DM
    assert slack_app.fake.download_count == 1

    assert _verify(slack_app, sub.id) == "verified"
    _verify(slack_app, sub.id)  # a redelivered task does nothing
    _drain(slack_app)
    verdicts = slack_app.fake.wait_for(
        "chat.postMessage", lambda c: "Verdict for submission" in str(c.args.get("blocks"))
    )
    assert len(verdicts) == 1
    assert verdicts[0].args["channel"] == DM and verdicts[0].args["thread_ts"] == event["ts"]
    (plot,) = slack_app.fake.wait_for("files.completeUploadExternal")
    assert plot.args["thread_ts"] == event["ts"]
    # The round channel hears only that U0USER0001 verified, nothing about the mechanism.
    # (The channel's pinned leaderboard is posted there too; it shows no mechanism either.)
    (line,) = slack_app.fake.wait_for(
        "chat.postMessage",
        lambda c: (
            c.args["channel"] == "C0ROUND001"
            and str(c.args.get("text")).startswith("<@U0USER0001>")
        ),
    )
    assert line.args["text"].startswith("<@U0USER0001> verified a solution")
    for post in slack_app.fake.calls_to("chat.postMessage"):
        if post.args["channel"] == "C0ROUND001":
            assert "Verdict" not in str(post.args.get("blocks"))
    (updated,) = _submissions(slack_app)
    assert updated.status == SubmissionStatus.VERIFIED
    with session_scope(slack_app.factory) as session:
        assert (
            session.query(OutboxMessage).filter(OutboxMessage.status != OutboxStatus.SENT).count()
            == 0
        )


def _refusal(slack_app, thread_ts: str | None = "1700000000.000100"):
    """The refusal: a message in the DM, under the file's message (not an ephemeral, which
    Slack shows only to a user active right then)."""
    (call,) = slack_app.fake.wait_for(
        "chat.postMessage", lambda c: c.args.get("thread_ts") == thread_ts
    )
    assert slack_app.fake.calls_to("chat.postEphemeral") == []
    return call


def test_bad_file_gets_an_error_in_its_thread_and_no_submission(slack_app, open_round):
    event = _file_event(slack_app, "F2", "notes.txt", b"hello")
    slack_app.event(event)
    call = _refusal(slack_app)
    assert call.args["channel"] == DM and ".py" in call.args["text"]
    assert _submissions(slack_app) == []


def test_file_from_a_foreign_host_is_not_downloaded(slack_app, open_round):
    event = _file_event(slack_app, "F3", "s.py", b"x = 1\n")
    event["files"][0]["url_private_download"] = "https://evil.example.com/s.py"
    slack_app.event(event)
    assert "Slack" in _refusal(slack_app).args["text"]
    assert _submissions(slack_app) == []


def test_modal_submit_creates_one_submission_threaded_under_its_status(slack_app, open_round):
    url = slack_app.fake.add_file(
        "F4", "mine.py", b"def predict(tokens):\n    return tokens[:, 0]\n"
    )
    values = {
        "solution_file": {
            "file": {
                "type": "file_input",
                "files": [{"id": "F4", "name": "mine.py", "size": 40, "url_private_download": url}],
            }
        },
        "writeup": {"url": {"type": "url_text_input", "value": "https://example.com/post"}},
    }
    assert slack_app.view_submission("submit_solution", values).status_code == 200
    assert slack_app.view_submission("submit_solution", values).status_code == 200  # double click
    status = slack_app.fake.wait_for("chat.postMessage", lambda c: "Submission #" in c.args["text"])
    (sub,) = _submissions(slack_app)
    assert sub.writeup_url == "https://example.com/post" and sub.thread_ts is None
    assert status[0].args["channel"] == "U0USER0001"  # the DM with the bot


def test_modal_without_file_shows_field_error(slack_app, open_round):
    values = {
        "solution_file": {"file": {"type": "file_input", "files": []}},
        "writeup": {"url": {"value": "ftp://x"}},
    }
    response = slack_app.view_submission("submit_solution", values)
    body = response.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"solution_file", "writeup"}


def test_a_retry_whose_first_delivery_was_lost_is_processed(slack_app, open_round):
    event = _file_event(
        slack_app, "F5", "only_copy.py", b"def predict(tokens):\n    return tokens[:, 0]\n"
    )
    assert slack_app.event(event, event_id="EvLost", retry=2).status_code == 200
    slack_app.fake.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == event["ts"])
    assert [s.slack_file_id for s in _submissions(slack_app)] == ["F5"]


def test_same_file_in_two_events_is_one_submission(slack_app, open_round):
    event = _file_event(
        slack_app, "F6", "twice.py", b"def predict(tokens):\n    return tokens[:, 0]\n"
    )
    slack_app.event(event, event_id="EvA")
    slack_app.event(event, event_id="EvB")  # a different event id carrying the same file
    slack_app.fake.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == event["ts"])
    assert [s.slack_file_id for s in _submissions(slack_app)] == ["F6"]


def test_dm_text_gets_help_but_thread_chatter_does_not(slack_app):
    slack_app.event(
        {
            "type": "message",
            "channel": DM,
            "channel_type": "im",
            "user": "U0USER0001",
            "ts": "1.1",
            "text": "hi",
        }
    )
    (help_post,) = slack_app.fake.wait_for("chat.postMessage")
    assert "/puzzle submit" in str(help_post.args["blocks"])
    slack_app.event(
        {
            "type": "message",
            "channel": DM,
            "channel_type": "im",
            "user": "U0USER0001",
            "ts": "1.2",
            "thread_ts": "1.0",
            "text": "thanks",
        }
    )
    slack_app.event(
        {
            "type": "message",
            "channel": DM,
            "channel_type": "im",
            "bot_id": "B1",
            "user": BOT_USER_ID,
            "ts": "1.3",
            "text": "our own post",
        }
    )
    import time

    time.sleep(0.5)
    assert len(slack_app.fake.calls_to("chat.postMessage")) == 1


def _acknowledged_then_killed(slack_app, event: dict, event_id: str, *, now=None) -> None:
    """What the bot commits before its ack (the event id and the inbound row), and nothing more:
    the process that would have stored the upload was killed right after answering Slack."""
    from bot.flows import upload as upload_flow
    from bot.services import deliveries, uploads

    settings = slack_app.app._circuitboard["settings"]
    with session_scope(slack_app.factory) as session:
        assert deliveries.first_delivery(session=session, key=f"event:{event_id}")
        recorded = upload_flow.record(
            session=session,
            settings=settings,
            user_id=event["user"],
            files=uploads.dm_file_shares(event),
            dm_channel=event["channel"],
            thread_ts=event["ts"],
            now=now,
        )
    assert [r.process for r in recorded] == [True]


def test_an_upload_acknowledged_by_a_killed_bot_is_stored_once_by_the_sweep(slack_app, open_round):
    from datetime import timedelta

    from bot import scheduler as schedule
    from storage.models import InboundStatus, InboundUpload, utcnow

    settings = slack_app.app._circuitboard["settings"]
    event = _file_event(
        slack_app, "F7", "acked.py", b"def predict(tokens):\n    return tokens[:, 0]\n"
    )
    _acknowledged_then_killed(slack_app, event, "EvKilled")
    assert _submissions(slack_app) == []
    # Too fresh for the sweep: its processor may still be working on it.
    assert (
        schedule.run_upload_recovery(
            session_factory=slack_app.factory, settings=settings, now=utcnow()
        )
        == 0
    )
    later = utcnow() + timedelta(minutes=2)
    report = schedule.tick(session_factory=slack_app.factory, settings=settings, now=later)
    assert report.errors == []
    (sub,) = _submissions(slack_app)
    assert (sub.slack_file_id, sub.dm_channel, sub.thread_ts) == ("F7", DM, event["ts"])
    with session_scope(slack_app.factory) as session:
        row = session.get(InboundUpload, "F7")
        assert (row.status, row.submission_id, row.attempts) == (InboundStatus.DONE, sub.id, 1)
    assert slack_app.fake.download_count == 1
    slack_app.fake.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == event["ts"])

    # Sweeping again, Slack redelivering the event, or another event carrying the file: nothing.
    assert (
        schedule.run_upload_recovery(
            session_factory=slack_app.factory, settings=settings, now=later + timedelta(minutes=5)
        )
        == 0
    )
    assert slack_app.event(event, event_id="EvKilled", retry=1).status_code == 200
    assert slack_app.event(event, event_id="EvOther").status_code == 200
    time.sleep(0.5)
    assert [s.id for s in _submissions(slack_app)] == [sub.id]
    assert slack_app.fake.download_count == 1


def test_a_retry_of_an_event_whose_processing_died_is_processed(slack_app, open_round):
    from datetime import timedelta

    from storage.models import utcnow

    event = _file_event(
        slack_app, "F8", "retried.py", b"def predict(tokens):\n    return tokens[:, 0]\n"
    )
    # The first delivery was recorded a while ago, then its process died before storing it.
    _acknowledged_then_killed(slack_app, event, "EvDied", now=utcnow() - timedelta(minutes=1))
    assert slack_app.event(event, event_id="EvDied", retry=1).status_code == 200
    slack_app.fake.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == event["ts"])
    assert [s.slack_file_id for s in _submissions(slack_app)] == ["F8"]
    assert slack_app.fake.download_count == 1


def test_a_pending_upload_that_keeps_failing_is_refused_with_a_message(slack_app, open_round):
    from datetime import timedelta

    from bot.flows import upload as upload_flow
    from bot.services import uploads
    from storage.models import InboundStatus, InboundUpload, utcnow

    settings = slack_app.app._circuitboard["settings"]
    event = _file_event(slack_app, "F9", "gone.py", b"x = 1\n")
    _acknowledged_then_killed(slack_app, event, "EvGone")
    with session_scope(slack_app.factory) as session:  # as if it had been tried (and died) often
        session.get(InboundUpload, "F9").attempts = uploads.MAX_ATTEMPTS
    later = utcnow() + timedelta(minutes=2)
    assert upload_flow.recover(session_factory=slack_app.factory, settings=settings, now=later) == 1
    call = _refusal(slack_app)
    assert call.args["channel"] == DM and "upload it again" in call.args["text"]
    with session_scope(slack_app.factory) as session:
        assert session.get(InboundUpload, "F9").status == InboundStatus.REFUSED
    assert _submissions(slack_app) == []
    assert slack_app.fake.download_count == 0


def test_a_modal_submission_gets_its_verdict_plot_in_the_dm(slack_app, open_round):
    """`/puzzle submit` has no DM channel: the verdict and its plot must still reach the user's
    DM with the bot, threaded under the status message (issue 16, break 1)."""
    source = get_puzzle("palindromes").solution_path.read_bytes()
    url = slack_app.fake.add_file("F0MODAL001", "solution.py", source)
    values = {
        "solution_file": {
            "file": {
                "type": "file_input",
                "files": [
                    {
                        "id": "F0MODAL001",
                        "name": "solution.py",
                        "size": len(source),
                        "url_private_download": url,
                    }
                ],
            }
        },
        "writeup": {"url": {"type": "url_text_input", "value": None}},
    }
    assert (
        slack_app.view_submission("submit_solution", values, user="U0ALICE001").status_code == 200
    )
    slack_app.fake.wait_for("chat.postMessage", lambda c: "Submission #" in str(c.args["text"]))
    (sub,) = _submissions(slack_app)
    assert sub.dm_channel is None
    assert _verify(slack_app, sub.id) == "verified"
    _drain(slack_app)
    (plot,) = slack_app.fake.wait_for("files.completeUploadExternal")
    assert plot.args["channel_id"] == "D0ALICE001"
    status = next(
        m for m in slack_app.fake.messages["D0ALICE001"] if "Submission #" in str(m.get("text"))
    )
    assert plot.args["thread_ts"] == status["ts"]
    with session_scope(slack_app.factory) as session:
        failed = session.query(OutboxMessage).filter(OutboxMessage.status != OutboxStatus.SENT)
        assert [(r.idempotency_key, r.last_error) for r in failed] == []


def test_the_download_runs_after_the_ack_off_the_listener_thread(
    slack_app, open_round, monkeypatch
):
    import threading

    from bot.flows import upload as upload_flow

    threads: list[str] = []
    store = upload_flow.store

    def recording_store(**kwargs):
        threads.append(threading.current_thread().name)
        return store(**kwargs)

    monkeypatch.setattr(upload_flow, "store", recording_store)
    event = _file_event(
        slack_app, "F10", "threaded.py", b"def predict(tokens):\n    return tokens[:, 0]\n"
    )
    assert slack_app.event(event, event_id="EvThread").status_code == 200
    slack_app.fake.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == event["ts"])
    assert [s.slack_file_id for s in _submissions(slack_app)] == ["F10"]
    assert len(threads) == 1 and threads[0].startswith("upload"), threads
