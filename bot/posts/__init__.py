"""The one notifier: every Slack post is composed here, from a view, and queued in the outbox.

Flows call these after a state change, in the transaction that made it (so a post exists iff its
cause committed). Services never post; views only build payloads.
"""
