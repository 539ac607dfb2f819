"""The Slack bot, scheduler, job dispatch, services, CLI and console adapter.

Depends on `puzzles` and `storage`; nothing depends on it.
"""
