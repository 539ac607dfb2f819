"""File shares in the shapes Slack really sends them (issue 16's degraded points).

A 4th file in one message, a Slack Connect file that arrives as a stub (``file_access:
check_file_info``: no name, no link), a file hidden by the free plan's limit
(``mode: hidden_by_limit``), an external file (Google Drive), and a download that fails for a
moment: each ends in a submission or a clear message, never silence or a refusal for good.
"""

from __future__ import annotations

from datetime import timedelta

from fakes.slack import (
    external_file,
    hidden_by_limit_file,
    hosted_file,
    slack_connect_stub,
    snippet_file,
)

from storage.db import session_scope
from storage.models import InboundStatus, InboundUpload, Submission, utcnow

DM = "D0ALICE001"
USER = "U0ALICE001"
TS = "1700000000.000200"
SOLUTION = b"def predict(tokens):\n    return tokens[:, 0]\n"


def _share(files: list[dict]) -> dict:
    return {
        "type": "message",
        "subtype": "file_share",
        "channel": DM,
        "channel_type": "im",
        "user": USER,
        "ts": TS,
        "text": "",
        "files": files,
    }


def _file(slack_app, file_id: str, name: str, content: bytes = SOLUTION) -> dict:
    url = slack_app.fake.add_file(file_id, name, content)
    return hosted_file(file_id, name, url, len(content))


def _submissions(slack_app) -> list[Submission]:
    with session_scope(slack_app.factory) as session:
        return list(session.query(Submission).order_by(Submission.id))


def _replies(slack_app, count: int = 1) -> list[str]:
    calls = slack_app.fake.wait_for(
        "chat.postMessage", lambda c: c.args.get("thread_ts") == TS, count=count
    )
    return [c.args["text"] for c in calls]


def test_a_fourth_file_in_one_message_is_refused_with_a_message(slack_app, open_round):
    files = [
        _file(slack_app, f"F0FILE000{i}", f"s{i}.py", SOLUTION + b"#%d\n" % i) for i in range(4)
    ]
    slack_app.event(_share(files))
    texts = _replies(slack_app, count=4)  # three statuses and one refusal, all in the thread
    assert any("at most 3 files" in t and "`s3.py`" in t for t in texts)
    assert sorted(s.filename for s in _submissions(slack_app)) == ["s0.py", "s1.py", "s2.py"]


def test_a_slack_connect_stub_is_completed_with_files_info(slack_app, open_round):
    full = _file(slack_app, "F0CONNECT1", "shared.py")
    slack_app.fake.add_file_info(full)
    slack_app.event(_share([slack_connect_stub("F0CONNECT1")]))
    slack_app.fake.wait_for("files.info", lambda c: c.args["file"] == "F0CONNECT1")
    _replies(slack_app)
    (submission,) = _submissions(slack_app)
    assert submission.filename == "shared.py" and submission.slack_file_id == "F0CONNECT1"


def test_a_file_hidden_by_the_plan_limit_gets_a_clear_message(slack_app, open_round):
    slack_app.event(_share([hidden_by_limit_file("F0HIDDEN01")]))
    (text,) = _replies(slack_app)
    assert "plan" in text and "Upload the file again" in text
    assert _submissions(slack_app) == []


def test_an_external_file_is_refused_with_what_to_do(slack_app, open_round):
    slack_app.event(_share([external_file("F0GDRIVE01", "solution.py")]))
    (text,) = _replies(slack_app)
    assert "link to another service" in text
    assert _submissions(slack_app) == []


def test_a_python_snippet_is_taken_as_a_py_file(slack_app, open_round):
    url = slack_app.fake.add_file("F0SNIPPET1", "my solution", SOLUTION)
    slack_app.event(_share([snippet_file("F0SNIPPET1", "my solution", url, len(SOLUTION))]))
    _replies(slack_app)
    (submission,) = _submissions(slack_app)
    assert submission.filename == "my solution.py"


def test_a_download_failing_for_a_moment_is_retried_not_refused(slack_app, open_round):
    from bot.flows import upload as upload_flow
    from bot.services import uploads

    settings = slack_app.app._circuitboard["settings"]
    file = _file(slack_app, "F0FLAKY001", "flaky.py")
    slack_app.fake.fail_download(file["url_private_download"], status=503, times=1)
    with session_scope(slack_app.factory) as session:  # what the bot records before its ack
        (recorded,) = upload_flow.record(
            session=session,
            settings=settings,
            user_id=USER,
            files=[file],
            dm_channel=DM,
            thread_ts=TS,
        )
    outcome = upload_flow.store(
        session_factory=slack_app.factory, settings=settings, file_id=recorded.file_id
    )
    assert outcome.pending and outcome.error is None
    with session_scope(slack_app.factory) as session:
        row = session.get(InboundUpload, "F0FLAKY001")
        assert row.status == InboundStatus.PENDING and "503" in (row.last_error or "")
    later = utcnow() + uploads.STALE_AFTER + timedelta(seconds=1)
    assert upload_flow.recover(session_factory=slack_app.factory, settings=settings, now=later)
    (submission,) = _submissions(slack_app)
    assert submission.filename == "flaky.py"
    assert slack_app.fake.download_count == 1  # the 503 was not a download
