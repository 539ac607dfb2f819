"""`/puzzle [sub-command]`: ack at once, then answer (ephemeral) or open the submit modal."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk import WebClient

from bot import slack_refs
from bot.flows import submission as submission_flow
from bot.flows.puzzle_command import run_puzzle_command
from bot.listeners.after_ack import after_ack, yield_to_acks


def puzzle_command(
    ack: Ack, command: dict, respond: Respond, client: WebClient, context: BoltContext
) -> None:
    ack()
    after_ack(
        answer_puzzle_command, command=command, respond=respond, client=client, context=context
    )


def answer_puzzle_command(
    *, command: dict, respond: Respond, client: WebClient, context: BoltContext
) -> None:
    # An admin command may re-verify: its job is published after the commit.
    with submission_flow.unit_of_work(context["db"], context["settings"]) as session:
        result = run_puzzle_command(
            session=session,
            settings=context["settings"],
            user_id=command["user_id"],
            text=command.get("text", ""),
            channel_id=command.get("channel_id", ""),
            directory=slack_refs.SlackDirectory(client),  # plain @names / #names, if typed
        )
    if command.get("text", "").strip().startswith("admin"):
        context["outbox"].wake()  # an admin command may have queued posts
    yield_to_acks(0.2)
    if result.modal is not None:
        client.views_open(trigger_id=command["trigger_id"], view=result.modal)
    if result.message is not None:
        payload: dict[str, Any] = {"response_type": "ephemeral", **result.message}
        respond(**payload)
