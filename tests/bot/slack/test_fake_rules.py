"""The fake Slack is at least as strict as Slack on what the bot uses (issue 16).

Each rule here is one the bot once broke against real Slack while the fake let it through.
"""

from __future__ import annotations

import pytest
from fakes.slack import BOT_USER_ID
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


@pytest.fixture
def client(fake_slack):
    fake_slack.auto_channels = False
    return WebClient(token=fake_slack.token, base_url=fake_slack.api_url)


def _error(call) -> str:
    with pytest.raises(SlackApiError) as info:
        call()
    return str(info.value.response["error"])


def test_ids_are_checked_per_method_and_argument(client, fake_slack):
    fake_slack.add_channel("C0PUZZLES1", "puzzles", bot_member=True)
    # chat.postMessage takes a user id (the app's DM); reading and sharing files do not.
    assert client.chat_postMessage(channel="U0ALICE001", text="hi")["channel"] == "D0ALICE001"
    assert _error(lambda: client.conversations_history(channel="U0ALICE001")) == (
        "channel_not_found"
    )
    assert _error(lambda: client.chat_postMessage(channel="puzzles", text="x")) == (
        "channel_not_found"
    )
    assert _error(lambda: client.chat_postMessage(channel="#puzzles", text="x")) == (
        "channel_not_found"
    )
    assert _error(
        lambda: client.files_upload_v2(channel="U0ALICE001", content=b"x", filename="a.png")
    ) == ("invalid_arguments")
    assert _error(lambda: client.users_info(user="alice")) == "user_not_found"
    assert _error(lambda: client.views_publish(user_id="C0PUZZLES1", view={})) == ("user_not_found")
    assert _error(lambda: client.conversations_open(users="@alice")) == "user_not_found"
    assert _error(lambda: client.files_info(file="F0NOPE0001")) == "file_not_found"


def test_the_bot_posts_in_a_channel_only_once_invited(client, fake_slack):
    fake_slack.add_channel("C0PUZZLES1", "puzzles")
    assert _error(lambda: client.chat_postMessage(channel="C0PUZZLES1", text="x")) == (
        "not_in_channel"
    )
    assert _error(lambda: client.chat_postMessage(channel="C0UNKNOWN1", text="x")) == (
        "channel_not_found"
    )
    fake_slack.invite_bot("C0PUZZLES1")
    assert client.chat_postMessage(channel="C0PUZZLES1", text="x")["ok"]
    listed = client.conversations_list()["channels"]
    assert listed == [
        {"id": "C0PUZZLES1", "name": "puzzles", "is_private": False, "is_member": True}
    ]
    assert BOT_USER_ID.startswith("U")


def test_block_kit_is_validated_with_slack_sdk_models_and_size_limits(client, fake_slack):
    fake_slack.add_channel("C0PUZZLES1", "puzzles", bot_member=True)
    ok = {"type": "section", "text": {"type": "mrkdwn", "text": "fine"}}
    assert client.chat_postMessage(channel="C0PUZZLES1", text="t", blocks=[ok])["ok"]
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert _error(
        lambda: client.chat_postMessage(channel="C0PUZZLES1", text="t", blocks=[too_long])
    ) == ("invalid_blocks")
    unknown = {"type": "nonsense"}
    assert _error(
        lambda: client.chat_postMessage(channel="C0PUZZLES1", text="t", blocks=[unknown])
    ) == ("invalid_blocks")
    assert _error(
        lambda: client.chat_postMessage(channel="C0PUZZLES1", text="t", blocks=[ok] * 51)
    ) == ("invalid_blocks")
    big = [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 2900}}] * 5
    assert _error(lambda: client.chat_postMessage(channel="C0PUZZLES1", text="t", blocks=big)) == (
        "msg_blocks_too_long"
    )
    long_title = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": []}
    assert _error(lambda: client.views_publish(user_id="U0ALICE001", view=long_title)) == (
        "invalid_arguments"
    )


def test_trigger_ids_expire_after_three_seconds(client, fake_slack):
    fake_slack.strict_triggers = True
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Hi"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}],
    }
    fresh = fake_slack.new_trigger()
    assert client.views_open(trigger_id=fresh, view=view)["ok"]
    assert _error(lambda: client.views_open(trigger_id=fresh, view=view)) == "invalid_trigger_id"
    stale = fake_slack.new_trigger()
    fake_slack.expire_trigger(stale)
    assert _error(lambda: client.views_open(trigger_id=stale, view=view)) == "expired_trigger_id"


def test_a_file_share_appears_a_moment_after_the_upload(client, fake_slack):
    fake_slack.add_channel("C0PUZZLES1", "puzzles", bot_member=True)
    fake_slack.hold_shares = True
    client.files_upload_v2(channel="C0PUZZLES1", content=b"png", filename="p.png", title="p")
    history = client.conversations_history(channel="C0PUZZLES1")["messages"]
    assert history == []  # not yet: a read-back right after the upload may miss it
    assert fake_slack.complete_shares() == 1
    (shared,) = client.conversations_history(channel="C0PUZZLES1")["messages"]
    assert shared["files"][0]["name"] == "p.png"


def test_an_ephemeral_to_an_inactive_user_is_accepted_and_never_seen(client, fake_slack):
    fake_slack.add_channel("C0PUZZLES1", "puzzles", bot_member=True)
    fake_slack.inactive_users = {"U0AWAY0001"}
    for user in ("U0AWAY0001", "U0HERE0001"):
        assert client.chat_postEphemeral(channel="C0PUZZLES1", user=user, text="hi")["ok"]
    assert [e["user"] for e in fake_slack.ephemerals_seen] == ["U0HERE0001"]


def test_socket_mode_url_needs_the_app_level_token(client, fake_slack):
    fake_slack.socket_mode_url = "ws://127.0.0.1:1/link/"
    assert _error(lambda: client.apps_connections_open(app_token=fake_slack.token)) == (
        "not_allowed_token_type"
    )
    opened = client.apps_connections_open(app_token=fake_slack.app_token)
    assert opened["url"].startswith("ws://127.0.0.1:1/link/?ticket=")
