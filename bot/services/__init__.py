"""Service functions tying storage and puzzles together: keyword-only, session first."""
