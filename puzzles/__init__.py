"""The puzzle catalog and the verification engine: usable alone, with no Slack and no database."""
