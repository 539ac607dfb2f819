"""Admin commands naming a user or channel, as Slack sends them (issue 16, break 2).

The manifest's ``should_escape: true`` makes Slack send a picked mention as ``<@U…|alice>`` /
``<#C…|puzzles>``; a name typed without picking it (or any name, with ``should_escape: false``)
arrives as plain text and is looked up with users.list / conversations.list.
"""

from __future__ import annotations

import pytest
from conftest import ADMIN

from bot import slack_refs
from storage.db import session_scope
from storage.models import Admin, Round


def _answer(slack_app, count: int):
    return slack_app.fake.wait_for("response_url", count=count)[-1].args["text"]


def _admins(slack_app) -> set[str]:
    with session_scope(slack_app.factory) as session:
        return {a.user_id for a in session.query(Admin)}


def test_grant_names_a_user_picked_typed_or_escaped(slack_app):
    fake = slack_app.fake
    fake.add_user("U0ALICE001", name="alice")
    fake.add_user("U0BOB00001", name="bob")
    slack_app.command("admin grant @alice", user=ADMIN)  # picked: Slack escapes it
    assert "<@U0ALICE001> is now an admin" in _answer(slack_app, 1)
    slack_app.command("admin grant <@U0BOB00001>", user=ADMIN)  # escaped without |name
    assert "<@U0BOB00001> is now an admin" in _answer(slack_app, 2)
    assert {"U0ALICE001", "U0BOB00001"} <= _admins(slack_app)


def test_plain_name_slack_did_not_escape_is_looked_up_or_refused_clearly(slack_app):
    fake = slack_app.fake
    fake.users["U0CAROL001"] = {
        "id": "U0CAROL001",
        "name": "carol.w",
        "profile": {"display_name": "Carol", "real_name": "Carol White"},
    }
    # Not Slack's escaped form (a name typed without the autocomplete): users.list finds it.
    slack_app.command("admin grant Carol", user=ADMIN)
    assert "<@U0CAROL001> is now an admin" in _answer(slack_app, 1)
    assert fake.calls_to("users.list")
    slack_app.command("admin grant @nobody", user=ADMIN)
    answer = _answer(slack_app, 2)
    assert "no user named `@nobody`" in answer and "autocomplete" in answer
    assert "nobody" not in str(_admins(slack_app)).lower()


def test_round_channel_is_always_an_id(slack_app):
    fake = slack_app.fake
    fake.add_channel("C0PUZZLES1", "puzzles", bot_member=True)
    fake.add_channel("C0OTHER001", "other", bot_member=True)
    slack_app.command("admin round plan palindromes channel #puzzles", user=ADMIN)
    assert "Planned" in _answer(slack_app, 1)
    raw = "admin round plan palindromes channel <#C0OTHER001>"
    slack_app.command(raw, user=ADMIN)  # escaped without |name
    assert "Planned" in _answer(slack_app, 2)
    slack_app.command("admin round plan palindromes channel #nowhere", user=ADMIN)
    assert "no channel named `#nowhere`" in _answer(slack_app, 3)
    with session_scope(slack_app.factory) as session:
        channels = sorted(r.channel_id for r in session.query(Round))
    assert channels == ["C0OTHER001", "C0PUZZLES1"]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("<@U0ALICE001|alice>", "U0ALICE001"),
        ("<@U0ALICE001>", "U0ALICE001"),
        ("<@W0GRID0001|eve>", "W0GRID0001"),
        ("U0ALICE001", "U0ALICE001"),
        ("@U0ALICE001", "U0ALICE001"),
    ],
)
def test_user_forms_without_a_directory(word, expected):
    assert slack_refs.resolve_user(word) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("<#C0PUZZLES1|puzzles>", "C0PUZZLES1"),
        ("<#G0PRIV0001>", "G0PRIV0001"),
        ("C0PUZZLES1", "C0PUZZLES1"),
    ],
)
def test_channel_forms_without_a_directory(word, expected):
    assert slack_refs.resolve_channel(word) == expected


def test_names_without_a_directory_are_refused_not_stored():
    with pytest.raises(slack_refs.RefError, match="cannot look up the channel `#puzzles`"):
        slack_refs.resolve_channel("#puzzles")
    with pytest.raises(slack_refs.RefError, match="cannot look up the user `@alice`"):
        slack_refs.resolve_user("@alice")
    with pytest.raises(slack_refs.RefError, match="is not a user"):
        slack_refs.resolve_user("<@>")


def test_an_ambiguous_name_is_refused():
    class Two:
        def user_ids(self, name):
            return ["U0A0000001", "U0B0000001"]

        def channel_ids(self, name):
            return []

    with pytest.raises(slack_refs.RefError, match="names 2 users"):
        slack_refs.resolve_user("@sam", directory=Two())
