"""Every Slack post goes through here: queued in the database under an idempotency key, sent once.

``enqueue`` writes a row in the caller's transaction (so a post exists iff the state change that
caused it committed); ``dispatch_pending`` sends due rows with a slack_sdk ``WebClient`` and
records the Slack ``ts``. Restarts never re-post (the key is unique) and never lose a post (the row
stays pending until Slack accepted it). Failures back off exponentially; Slack's ``ratelimited``
answer is honoured by waiting its ``Retry-After``; posts to one channel are paced to about one per
second, which is Slack's documented limit for ``chat.postMessage``.

``thread_key`` names another row: once that row is sent, its ``ts`` becomes this message's
``thread_ts`` (for ``chat_update`` it is the message to edit: its ``ts`` and channel; for
``pins_add`` the message to pin: its ``timestamp`` and channel). A reply, an edit or a pin can
therefore be queued before its parent has been posted.

Exactly once across crashes: a process can die after Slack accepted a post but before the row is
marked sent; its claim then expires and another dispatcher picks the row up again. So every
``chat_postMessage`` carries the row's key as message metadata (``event_type``
``circuitboard_outbox``), and a row that was attempted before (``attempts > 0``) is first looked up
in its channel (``conversations.replies`` for a thread reply, else ``conversations.history``, with
``include_all_metadata``, newest messages since the row was created): if Slack already holds it, its
``ts`` is recorded and nothing is posted. ``files_upload_v2`` is looked up the same way by the shared
file's name and title in that channel or thread (give each plot row a unique filename).
``chat_update`` and ``views_publish`` are idempotent by nature, and ``pins_add`` answering
``already_pinned`` counts as success. ``chat_postEphemeral`` cannot be read back (Slack keeps no
copy): a crash in that window may show the user an ephemeral note twice.
"""

from bot.outbox.dispatch import (
    BACKOFF_BASE_S,
    BACKOFF_MAX_S,
    CLAIM_S,
    MAX_ATTEMPTS,
    PER_CHANNEL_INTERVAL_S,
    Dispatcher,
    dispatch_pending,
    seconds_until_free,
)
from bot.outbox.readback import FATAL_ERRORS, METADATA_EVENT_TYPE
from bot.outbox.store import (
    MESSAGE_BLOCKS_JSON_MAX,
    MESSAGE_BLOCKS_MAX,
    MESSAGE_TEXT_MAX,
    enqueue,
    get,
    split_message,
)

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_MAX_S",
    "CLAIM_S",
    "FATAL_ERRORS",
    "MAX_ATTEMPTS",
    "MESSAGE_BLOCKS_JSON_MAX",
    "MESSAGE_BLOCKS_MAX",
    "MESSAGE_TEXT_MAX",
    "METADATA_EVENT_TYPE",
    "PER_CHANNEL_INTERVAL_S",
    "Dispatcher",
    "dispatch_pending",
    "enqueue",
    "get",
    "seconds_until_free",
    "split_message",
]
