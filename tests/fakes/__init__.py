"""Fakes at real seams (a fake Slack Web API server), shared by every test package."""
