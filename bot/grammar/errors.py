"""The one error the grammar raises: a command or a time it could not read."""


class GrammarError(ValueError):
    """Unreadable words; the message says what was expected and is shown to the user as is."""
