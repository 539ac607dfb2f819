"""Every post the bot makes, composed in one place: a view built, then queued in the outbox.

Services decide what happened; the modules here turn it into Slack messages and queue them under
fixed keys (so a post asked for twice is sent once). Flows call them; nothing below them does.
"""
