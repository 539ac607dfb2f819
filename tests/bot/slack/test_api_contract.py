"""The Web API contract: every method the bot calls, with the arguments Slack requires.

Checked three ways: the table covers every method the bot's code calls (found the way the
manifest test finds them); each required argument is a parameter of slack_sdk's ``WebClient``
method (so a typo or a renamed argument fails here, not in production); and the fake Slack
enforces the same required arguments (``_RULES``), so tests cannot pass with a call Slack refuses.
"""

from __future__ import annotations

import inspect

import pytest
from fakes.slack import _RULES
from slack_sdk import WebClient
from test_manifest import _methods_used

# slack_sdk method -> (Web API method, arguments Slack requires, what the bot passes them as)
CONTRACT: dict[str, tuple[str, tuple[str, ...]]] = {
    "auth_test": ("auth.test", ()),
    "chat_postMessage": ("chat.postMessage", ("channel",)),
    "chat_update": ("chat.update", ("channel", "ts")),
    "chat_postEphemeral": ("chat.postEphemeral", ("channel", "user")),
    "conversations_history": ("conversations.history", ("channel",)),
    "conversations_replies": ("conversations.replies", ("channel", "ts")),
    "conversations_open": ("conversations.open", ("users",)),
    "conversations_list": ("conversations.list", ()),
    "users_list": ("users.list", ()),
    "views_open": ("views.open", ("trigger_id", "view")),
    "views_publish": ("views.publish", ("user_id", "view")),
    "pins_add": ("pins.add", ("channel", "timestamp")),
    "files_info": ("files.info", ("file",)),
    # files_upload_v2 is three calls: getUploadURLExternal, the upload, completeUploadExternal.
    "files_upload_v2": ("files.completeUploadExternal", ("channel",)),
}
# Arguments slack_sdk names differently from the Web API (files_upload_v2's channel -> channel_id)
SDK_TO_API = {("files_upload_v2", "channel"): "channel_id"}


def test_the_table_covers_every_method_the_bot_calls():
    used = _methods_used()
    assert used <= set(CONTRACT), f"add to CONTRACT: {sorted(used - set(CONTRACT))}"


@pytest.mark.parametrize("sdk_method", sorted(CONTRACT))
def test_required_arguments_exist_in_slack_sdk(sdk_method):
    signature = inspect.signature(getattr(WebClient, sdk_method))
    params = signature.parameters
    _, required = CONTRACT[sdk_method]
    for name in required:
        assert name in params, f"WebClient.{sdk_method} has no parameter {name!r}"
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("sdk_method", sorted(CONTRACT))
def test_the_fake_requires_what_slack_requires(sdk_method):
    api_method, required = CONTRACT[sdk_method]
    assert api_method in _RULES, f"the fake does not serve {api_method}"
    expected = {SDK_TO_API.get((sdk_method, name), name) for name in required}
    if sdk_method == "files_upload_v2":  # the share's channel is optional for Slack, not for us
        assert set(_RULES[api_method].required) == {"files"}
        return
    assert set(_RULES[api_method].required) == expected
