"""`labmate serve` as a real process: refuses to start without tokens, serves with them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.devslack import FakeSlack, SlackSender

LABMATE = Path(sys.executable).with_name("labmate")


def clean_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABMATE_", "SLACK_"))}
    env.update(LABMATE_INDEX__DIR=str(tmp_path / "idx"), LABMATE_STORAGE__DATABASE=str(tmp_path / "bot.sqlite"))
    env.update(extra)
    return env


def test_serve_in_slack_without_tokens_says_what_to_set(tmp_path):
    # Without tokens and without --slack, serve opens the local workspace (tests/e2e).
    result = subprocess.run([str(LABMATE), "serve", "--slack"], cwd=tmp_path, env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr
    assert "Connect to Slack" in result.stderr


def test_local_workspace_on_a_taken_port_says_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(LABMATE), "serve", "--port", str(port)], cwd=tmp_path,
                                env=clean_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


@pytest.mark.slow
def test_serve_http_answers_signed_commands_and_stops_on_sigterm(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with FakeSlack() as fake:
        env = clean_env(tmp_path, SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s", SLACK_API_URL=fake.url)
        proc = subprocess.Popen([str(LABMATE), "serve", "--mode", "http", "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                if "listening on" in line:
                    break
            else:
                pytest.fail("labmate serve exited before listening")
            sender = SlackSender(f"http://127.0.0.1:{port}", "s", fake)
            assert sender.command("/papers", "help").status == 200
            assert fake.wait_for(lambda m: "Search the lab's papers" in m.plain_text, timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
