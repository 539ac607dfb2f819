"""What matters in the Dockerfile, compose.yaml, .env.example and the seccomp profile, checked by
reading them (fast; tests/deploy/test_deploy.py builds and runs them for real where Docker is)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _dockerignore() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _index(instructions: list[tuple[str, str]], keyword: str, pattern: str = "") -> int:
    for i, (kw, args) in enumerate(instructions):
        if kw == keyword and re.search(pattern, args):
            return i
    raise AssertionError(f"no {keyword} matching {pattern!r} in the Dockerfile")


def _args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """Build arguments with their production defaults."""
    return dict(args.split("=", 1) for kw, args in instructions if kw == "ARG" and "=" in args)


def test_production_base_is_slim_python_3_11_and_torch_wheels_default_to_none() -> None:
    instructions = _instructions()
    defaults = _args(instructions)
    assert defaults["BASE_IMAGE"] == "python:3.11-slim"
    assert defaults["TORCH_WHEELS"] == "scratch"
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert froms == ["${TORCH_WHEELS} AS torch-wheels", "${BASE_IMAGE}"]


def test_the_ca_bundle_is_a_build_secret_for_every_pip_install_never_a_layer() -> None:
    for kw, args in _instructions():
        if kw == "RUN" and "pip install" in args:
            assert "--mount=type=secret,id=ca" in args, args
            assert "PIP_CERT=/run/secrets/ca" in args, args
        assert "ca-certificates.crt" not in args


def test_torch_is_pinned_to_the_projects_version_and_installed_first() -> None:
    instructions = _instructions()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (torch_pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch")]
    torch_step = _index(instructions, "RUN", re.escape(torch_pin.replace(" ", "")) + r"(\s|$)")
    assert _args(instructions)["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert "from=torch-wheels" in instructions[torch_step][1]
    package_step = _index(instructions, "RUN", r"pip install \"?\.\[postgres,redis\]")
    assert torch_step < package_step


def test_runs_as_a_non_root_user_after_installing() -> None:
    instructions = _instructions()
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER instruction: the container would run as root"
    position, user = users[-1]
    assert user.split(":")[0] not in {"root", "0"}
    last_install = max(
        i for i, (kw, args) in enumerate(instructions) if kw == "RUN" and "pip install" in args
    )
    assert last_install < position < _index(instructions, "ENTRYPOINT")


def test_entrypoint_command_and_healthcheck_name_real_cli_commands() -> None:
    instructions = _instructions()
    entrypoint = json.loads(instructions[_index(instructions, "ENTRYPOINT")][1])
    cmd = json.loads(instructions[_index(instructions, "CMD")][1])
    health = instructions[_index(instructions, "HEALTHCHECK")][1]
    health_cmd = json.loads(health.split(" CMD ", 1)[1])
    assert entrypoint == ["circuitboard"]
    assert cmd == ["run"]
    assert health_cmd[0] == "circuitboard"
    runner = CliRunner()
    for args in (cmd, health_cmd[1:]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)


def test_data_dir_is_the_volume_the_user_owns() -> None:
    instructions = _instructions()
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    assert "CIRCUITBOARD_DATA_DIR=/data" in env
    assert any(kw == "RUN" and "chown" in args and "/data" in args for kw, args in instructions)


@pytest.mark.parametrize(
    "secret_or_junk", [".env", ".venv", ".git", ".circuitboard", "**/__pycache__"]
)
def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image(secret_or_junk: str) -> None:
    assert secret_or_junk in _dockerignore()


def test_everything_the_image_copies_exists_and_is_not_ignored() -> None:
    ignored = _dockerignore()
    for kw, args in _instructions():
        if kw == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def _compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_settings_from_env_file_win_over_the_defaults_for_the_services() -> None:
    app = _compose()["x-app"]
    env = app["environment"]
    for key in ("CIRCUITBOARD_DATABASE_URL", "CIRCUITBOARD_BROKER_URL"):
        # a literal value in `environment:` would silently override the same key in .env
        assert env[key].startswith("${" + key + ":-"), env[key]
    assert app["env_file"] == [{"path": ".env", "required": False}]


def test_workers_get_the_seccomp_profile_and_proc_for_bubblewrap_not_privileges() -> None:
    services = _compose()["services"]
    for name in ("worker", "worker-gpu"):
        service = services[name]
        assert service["security_opt"] == [
            "seccomp=seccomp-bubblewrap.json",
            "systempaths=unconfined",
        ]
        assert not service.get("privileged") and not service.get("cap_add")
        assert (ROOT / "seccomp-bubblewrap.json").exists()
    for name, service in services.items():
        assert not service.get("privileged"), name


def test_seccomp_profile_is_dockers_default_plus_only_what_bubblewrap_needs() -> None:
    profile = json.loads((ROOT / "seccomp-bubblewrap.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    unconditional = [
        rule
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("includes") and not rule.get("args")
    ]
    ours = [rule for rule in unconditional if "bubblewrap" in rule.get("comment", "")]
    assert len(ours) == 1
    assert set(ours[0]["names"]) == {
        "clone",
        "unshare",
        "mount",
        "umount2",
        "pivot_root",
        "sethostname",
    }
    # Docker's default otherwise: still no unconditional bpf, ptrace of the host, kexec, modules...
    others = {name for rule in unconditional if rule not in ours for name in rule["names"]}
    assert not others & {"bpf", "kexec_load", "init_module", "setns", "unshare", "mount", "reboot"}


def test_worker_health_check_runs_the_sandbox_self_check() -> None:
    services = _compose()["services"]
    runner = CliRunner()
    for name in ("worker", "worker-gpu"):
        kind, command = services[name]["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        commands = [part.split() for part in command.split("&&")]
        assert ["circuitboard", "sandbox", "check"] in commands
        for argv in commands:
            assert argv[0] == "circuitboard"
            result = runner.invoke(app, [*argv[1:], "--help"])
            assert result.exit_code == 0, (argv, result.output)


def test_migrate_job_creates_the_verification_seed_before_bot_and_workers_start() -> None:
    services = _compose()["services"]
    script = services["migrate"]["command"][0]
    assert "circuitboard db upgrade" in script and "/data/verification_seed" in script
    assert services["migrate"]["restart"] == "no"
    for name in ("bot", "worker", "worker-gpu"):
        needs = services[name]["depends_on"]["migrate"]
        assert needs == {"condition": "service_completed_successfully"}, name


def test_env_example_names_every_setting() -> None:
    from bot.settings import Settings

    text = (ROOT / ".env.example").read_text()
    missing = [f for f in Settings.model_fields if f"CIRCUITBOARD_{f.upper()}=" not in text]
    assert not missing, f"not in .env.example: {missing}"
    assert re.search(r"^POSTGRES_PASSWORD=", text, re.M)
