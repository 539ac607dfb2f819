"""Helpers shared by test modules in different folders (import as ``support.<module>``)."""
