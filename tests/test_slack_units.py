"""The Slack app's pieces without a server: settings, reaction names, duplicate detection, the
manifest against the code."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from emojinet.errors import ConfigError
from emojinet.predictor import Suggestion
from service.app import create_app
from service.settings import Settings
from service.slack import bolt
from service.slack.names import NAMES_FILE, reaction_name
from service.slack.work import Recent, reactions, share_ts

REPO = Path(__file__).resolve().parents[1]
NPM_EMOJI = REPO / "data" / "npm" / "apple" / "package" / "emoji.json"
# What each Web API method, event and interaction the code uses needs (api.slack.com/methods).
SCOPES_NEEDED = {
    "files_info": {"files:read"},
    "reactions_add": {"reactions:write"},
    "chat_postMessage": {"chat:write"},
    "conversations_history": {"channels:history", "groups:history"},
    "event:file_shared": {"files:read"},
    "command": {"commands"},
    "message_shortcut": {"commands"},
}


def test_off_when_unset_the_route_does_not_exist() -> None:
    app = create_app(Settings())
    assert not any("slack" in getattr(r, "path", "") for r in app.routes)
    assert not any("slack" in path for path in app.openapi()["paths"])


def test_on_only_with_both_settings() -> None:
    with pytest.raises(ValidationError, match="needs both"):
        Settings(slack_signing_secret="s")
    with pytest.raises(ValidationError, match="needs both"):
        Settings(slack_bot_token="xoxb-1")
    on = Settings(slack_signing_secret="s", slack_bot_token="xoxb-1")
    assert on.slack_enabled and not Settings().slack_enabled
    shown = on.for_log()
    assert shown["slack_signing_secret"] == "***" and shown["slack_bot_token"] == "***"
    assert "/slack/events" in create_app(on).openapi()["paths"]


def test_without_the_slack_extra_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "slack_bolt.adapter.fastapi.async_handler", None)
    monkeypatch.delitem(sys.modules, "service.slack.bolt")
    with pytest.raises(ConfigError, match=r"pip install 'emojinet\[slack\]'"):
        create_app(Settings(slack_signing_secret="s", slack_bot_token="xoxb-1"))


def test_reaction_names_are_slacks() -> None:
    assert reaction_name("🐈") == "cat2" and reaction_name("🐱") == "cat"
    assert reaction_name("❤️") == "heart" and reaction_name("🐈‍⬛") == "black_cat"
    assert reaction_name("\U0001fac8") is None  # Emoji 17 (hairy creature): no Slack name yet


@pytest.mark.skipif(not NPM_EMOJI.exists(), reason="make npm-emoji NPM_EMOJI=apple")
def test_the_names_file_is_what_the_script_builds() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from build_slack_names import build
    finally:
        sys.path.remove(str(REPO / "scripts"))
    assert json.loads(NAMES_FILE.read_text(encoding="utf-8")) == build(NPM_EMOJI)


def test_reactions_skip_unnamed_emojis_and_stop_at_the_score() -> None:
    ranked = [
        Suggestion("\U0001fac8", "hairy creature", 0.7),
        Suggestion("🐈", "cat", 0.6),
        Suggestion("🐱", "cat face", 0.3),
        Suggestion("🐕", "dog", 0.25),
        Suggestion("🐾", "paw prints", 0.1),
    ]
    assert reactions(ranked, limit=2, min_score=0.2) == ["cat2", "cat"]
    assert reactions(ranked, limit=5, min_score=0.2) == ["cat2", "cat", "dog2"]
    assert reactions(ranked, limit=5, min_score=0.8) == []


def test_recent_drops_repeats_until_they_expire() -> None:
    recent = Recent(ttl_s=0.05, size=3)
    assert recent.first("a") and not recent.first("a")
    assert recent.first("b") and recent.first("c") and recent.first("d")  # "a" pushed out
    assert recent.first("a")
    __import__("time").sleep(0.06)
    assert recent.first("d")


def test_share_ts_is_the_newest_share_in_that_channel() -> None:
    file = {"shares": {"public": {"C1": [{"ts": "9.5"}, {"ts": "10.1"}]}, "private": {}}}
    assert share_ts(file, "C1") == "10.1"
    assert share_ts(file, "C2") is None and share_ts({}, "C1") is None


def _used_by_code() -> set[str]:
    """The Web API methods, events and interactions ``service/slack/bolt.py`` uses."""
    tree = ast.parse(Path(bolt.__file__).read_text(encoding="utf-8"))
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "client" and node.attr in SCOPES_NEEDED:
                used.add(node.attr)
            if node.value.id == "bolt" and node.attr in ("command", "message_shortcut"):
                used.add(node.attr)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "event":
            used.add(f"event:{node.args[0].value}")  # type: ignore[attr-defined]
    return used


def test_the_manifest_asks_for_the_scopes_the_code_uses() -> None:
    manifest = yaml.safe_load((REPO / "deploy" / "slack-app.yaml").read_text())
    used = _used_by_code()
    assert used == set(SCOPES_NEEDED)  # the checker sees every use
    needed = set().union(*(SCOPES_NEEDED[u] for u in used))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["file_shared"]
    (command,) = manifest["features"]["slash_commands"]
    (shortcut,) = manifest["features"]["shortcuts"]
    assert command["command"] == bolt.SLASH_COMMAND
    assert shortcut["callback_id"] == bolt.SHORTCUT_ID and shortcut["type"] == "message"
    urls = {
        command["url"],
        manifest["settings"]["event_subscriptions"]["request_url"],
        manifest["settings"]["interactivity"]["request_url"],
    }
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
