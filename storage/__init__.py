"""Database models, sessions and migrations: knows nothing of Slack or torch."""
