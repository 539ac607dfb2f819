"""The one notifier: every Slack post is composed here, from a view, and queued in the outbox.

Services decide what happened; the modules here turn it into Slack messages and queue them under
fixed keys (so a post asked for twice is sent once), in the transaction that made the change (so a
post exists iff its cause committed). Flows call them; nothing below them does.
"""
