"""Helpers shared by test modules in different folders (``tests`` is on ``sys.path``)."""
