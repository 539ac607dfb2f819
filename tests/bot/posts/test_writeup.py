"""``export-post``: the monthly write-up in Markdown, from the service and the command line."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.leaderboards import World
from typer.testing import CliRunner

from bot.posts import writeup
from bot.services import credits
from storage.models import Admin, RoundStatus


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    root = tmp_path / "catalog"
    for slug, title in (("circuits", "Circuits"), ("nextone", "Next One")):
        entry = root / slug
        entry.mkdir(parents=True)
        (entry / "puzzle.toml").write_text(
            f'slug = "{slug}"\ntitle = "{title}"\nsummary = "Summary of {title}."\n'
            '[verify]\nchecks = ["replication", "circuit"]\nmetric = "logit_diff"\n'
        )
        (entry / "writeup.md").write_text(
            f"# Mechanism\n\nHead L1H0 of {title} copies the token.\n\nMore detail.\n"
        )
    monkeypatch.setenv("CIRCUITBOARD_CATALOG_PATH", str(root))
    return root


def _seed(world: World):
    r = world.round(puzzle=world.puzzle("circuits", "Circuits"), status=RoundStatus.CLOSED)
    nxt = world.round(
        month=1, puzzle=world.puzzle("nextone", "Next One"), status=RoundStatus.SCHEDULED
    )
    world.user("UALICE", "Alice | the *best*")
    world.submit(
        r, "UALICE", hours=30, verdicts=[(2, True, 0.9, 0.95)], writeup_url="https://a.example/w"
    )
    world.submit(r, "UBOB", hours=2, verdicts=[(2, True, 0.8, 0.7)])
    world.submit(r, "UBOB", hours=3, verdicts=[(1, False, 0.1, 0.1)])
    world.submit(r, "UCAROL", hours=4, verdicts=[(1, False, 0.5, 0.5)])
    world.submit(r, "UDAN", hours=5, status=None)
    world.user("UADMIN")
    world.session.add(Admin(user_id="UADMIN"))
    world.session.flush()
    credits.award(
        session=world.session,
        actor_id="UADMIN",
        round_id=r.id,
        user_id="UALICE",
        kind="best",
        note="found the copying head",
        link="https://a.example/w",
    )
    credits.award(
        session=world.session, actor_id="UADMIN", round_id=r.id, user_id="UBOB", kind="mention"
    )
    world.session.commit()
    return r, nxt


def test_write_up_of_a_closed_round(database_url, catalog):
    world = World(database_url)
    try:
        r, nxt = _seed(world)
        post = writeup.build_post(session=world.session, round_id=r.id, top_n=2, now=r.closes_at)
    finally:
        world.close()
    assert post.startswith("# January 2026: Circuits\n")
    assert "Summary of Circuits." in post
    assert "Head L1H0 of Circuits copies the token." in post and "# Mechanism" not in post
    assert (
        "🏆 Best solution: **Alice \\| the \\*best\\***: found the copying head ([write-up](https://a.example/w))"
        in post
    )
    assert "- **ubob**" in post
    assert "| # | Participant | Checks passed | quality (public) | quality (private) |" in post
    assert "| 1 | Alice \\| the \\*best\\* | 2/2 | 0.9 | 0.95 |" in post
    assert "| 2 | ubob | 2/2 | 0.8 | 0.7 |" in post
    assert "ucarol" not in post.split("## Leaderboard")[1].split("## Participation")[0]  # top 2
    assert "- 4 participants sent 5 submissions (1.2 each on average)." in post
    assert "- 2 solved it, passing every check (50% of participants)." in post
    assert "- First full solve: ubob, 1 day 2 h after the round opened." not in post
    assert "- First full solve: ubob, 2 h 0 min after the round opened." in post
    assert (
        f"**Next One** opens on {nxt.opens_at:%d %B %Y}" in post and "Summary of Next One." in post
    )
    assert "Provisional" not in post


def test_write_up_of_an_open_round_hides_the_solution_and_private_scores(sqlite_url, catalog):
    world = World(sqlite_url)
    try:
        r, _ = _seed(world)
        r.status = RoundStatus.OPEN
        world.session.commit()
        post = writeup.build_post(
            session=world.session, round_id=r.id, now=r.opens_at + timedelta(days=3)
        )
    finally:
        world.close()
    assert "Provisional" in post and "(private)" not in post and "0.95" not in post
    assert "Head L1H0" not in post and "published when the round closes" in post


def test_export_post_command(sqlite_url, catalog, monkeypatch, tmp_path):
    world = World(sqlite_url)
    try:
        r, _ = _seed(world)
    finally:
        world.close()
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", sqlite_url)
    from bot.cli import app
    from bot.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    shown = runner.invoke(app, ["export-post", str(r.id), "--top", "1"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("# January 2026: Circuits") and "| 2 |" not in shown.output
    target = tmp_path / "post.md"
    written = runner.invoke(app, ["export-post", "latest", "-o", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text().startswith("# January 2026: Circuits")
    missing = runner.invoke(app, ["export-post", "999"])
    assert missing.exit_code == 1 and "no round with id 999" in missing.output
