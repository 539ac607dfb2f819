"""slack-manifest.yaml asks for exactly what the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
# Web API method -> the bot scope(s) it needs (None: no scope, e.g. views.* with a trigger/user id).
# Reading back a post (the outbox, after a crash) covers the conversation kinds the bot posts to:
# public and private round channels, and DMs (opened from a user id).
HISTORY = ("channels:history", "groups:history", "im:history")
SCOPE_OF = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "files_upload_v2": "files:write",
    "pins_add": "pins:write",
    "views_publish": None,
    "views_open": None,
    "auth_test": None,
    "conversations_history": HISTORY,
    "conversations_replies": HISTORY,
    "conversations_open": "im:write",
    # Plain @names and #names typed into /puzzle admin commands (slack_refs.SlackDirectory).
    "users_list": "users:read",
    "conversations_list": ("channels:read", "groups:read"),
    # A shared file that arrives without its name or link (Slack Connect, hidden by plan limit).
    "files_info": "files:read",
}


def _manifest() -> dict:
    return yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())


def _methods_used() -> set[str]:
    used: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        if path.name == "console.py":
            continue  # the console's stand-in client, not Slack
        text = path.read_text()
        used |= set(re.findall(r'method="([a-z_A-Z0-9]+)"', text))
        used |= set(
            re.findall(
                r"client\.((?:chat|files|pins|views|auth|users|conversations|reactions)_[A-Za-z0-9_]+)\(",
                text,
            )
        )
    return used


def test_scopes_are_exactly_those_used():
    used = _methods_used()
    assert used <= set(SCOPE_OF), (
        f"add these methods' scopes to SCOPE_OF and the manifest: {used - set(SCOPE_OF)}"
    )
    needed: set[str] = set()
    for method in used:
        scope = SCOPE_OF[method]
        needed |= set(scope) if isinstance(scope, tuple) else {scope} - {None}
    needed |= {"commands", "files:read", "im:history"}  # /puzzle, downloading DMed files, DM events
    assert set(_manifest()["oauth_config"]["scopes"]["bot"]) == needed


def test_events_commands_and_interactivity_match_the_listeners():
    manifest = _manifest()
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_home_opened",
        "message.im",
    }
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/puzzle"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    # Slack escapes mentions picked from the autocomplete (<@U…|alice>, <#C…|puzzles>) only
    # with should_escape; without it admin commands get bare names (issue 16, break 2).
    assert all(c["should_escape"] is True for c in manifest["features"]["slash_commands"])


def test_registered_listeners_match_the_manifest():
    events_py = (ROOT / "bot" / "listeners" / "events" / "__init__.py").read_text()
    commands_py = (ROOT / "bot" / "listeners" / "commands" / "__init__.py").read_text()
    assert set(re.findall(r'app\.event\("([a-z_]+)"\)', events_py)) == {
        "app_home_opened",
        "message",
    }
    assert set(re.findall(r'app\.command\("(/[a-z]+)"\)', commands_py)) == {"/puzzle"}
