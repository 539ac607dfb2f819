"""Slack listeners: thin functions that ack, validate, call one service and render one view."""
