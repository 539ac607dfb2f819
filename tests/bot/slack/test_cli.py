"""`circuitboard bot` refuses to start without a token and says what to do."""

from __future__ import annotations

from typer.testing import CliRunner

from bot.cli import app


def test_bot_without_token_points_to_setup_and_console():
    result = CliRunner().invoke(app, ["bot"])
    assert result.exit_code == 2
    assert "CIRCUITBOARD_SLACK_BOT_TOKEN" in result.output and "console" in result.output


def test_socket_mode_without_app_token_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("CIRCUITBOARD_SLACK_BOT_TOKEN", "xoxb-x")
    monkeypatch.setenv("CIRCUITBOARD_SLACK_API_URL", "http://127.0.0.1:9/api/")
    from bot.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["bot"])
    assert result.exit_code == 2
    assert "APP_TOKEN" in result.output
