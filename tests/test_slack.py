"""The Slack app end to end: the real app with the built-in model on a uvicorn server on
loopback, ``slack_sdk`` pointed at a fake Slack Web API on another loopback port
(``tests/slack_fake.py``), every request signed as Slack signs them."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from service.app import create_app
from service.settings import Settings
from tests.service_helpers import ThreadedServer
from tests.slack_fake import TOKEN, FakeSlack

REPO = Path(__file__).resolve().parents[1]
CAT = (REPO / "emojinet" / "data" / "sample.jpg").read_bytes()
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CAT_NAMES = {"cat", "cat2", "black_cat", "smiley_cat", "scream_cat", "joy_cat", "smirk_cat"}
MAX_BODY = 4 * 2**20
_ids = itertools.count()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    slack = FakeSlack()
    server = ThreadedServer(slack.app(), ready_path="/health")
    slack.base_url = server.url
    with server:
        yield slack


@pytest.fixture(scope="module")
def app_url(fake: FakeSlack) -> Iterator[str]:
    settings = Settings(
        slack_signing_secret=SECRET,
        slack_bot_token=TOKEN,
        slack_api_url=f"{fake.base_url}/api/",
        slack_reply_in_thread=True,
        slack_download_timeout_s=1.0,
        max_body_bytes=MAX_BODY,
        max_pending_bytes=8 * MAX_BODY,
    )
    with ThreadedServer(create_app(settings)) as server:
        yield server.url


def new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):04d}"


def post(url: str, body: str, content_type: str, *, age_s: float = 0, **headers: str) -> Any:
    stamp = str(int(time.time() - age_s))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    sent = {
        "content-type": content_type,
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
        **headers,
    }
    return httpx.post(f"{url}/slack/events", content=body, headers=sent, timeout=10)


def event_body(event: dict[str, Any], event_id: str | None = None) -> str:
    return json.dumps(
        {
            "token": "unused",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            "event_id": event_id or new_id("Ev"),
            "event_time": int(time.time()),
            "event": event,
        }
    )


def file_shared(file_id: str, channel: str = "C1") -> dict[str, Any]:
    return {
        "type": "file_shared",
        "file_id": file_id,
        "user_id": "U1",
        "file": {"id": file_id},
        "channel_id": channel,
        "event_ts": f"{time.time():.6f}",
    }


def reactions_on(fake: FakeSlack, ts: str) -> list[str]:
    return [c.args["name"] for c in fake.called("reactions.add") if c.args["timestamp"] == ts]


def wait_for_reactions(fake: FakeSlack, ts: str, timeout_s: float = 20) -> list[Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if found := [c for c in fake.called("reactions.add") if c.args["timestamp"] == ts]:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no reaction on {ts}")


def metric(url: str, name: str) -> float:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(name + " "))


def test_a_photo_shared_in_a_channel_gets_cat_reactions(fake: FakeSlack, app_url: str) -> None:
    file_id, ts = new_id("F"), "1700000001.000100"
    fake.add_file(file_id, CAT, ts=ts)
    waits = metric(app_url, "emojinet_queue_wait_seconds_count")
    answer = post(app_url, event_body(file_shared(file_id)), "application/json")
    assert answer.status_code == 200
    wait_for_reactions(fake, ts)
    # Through the same gate as /suggest: its queue-wait metric counted the photo.
    assert metric(app_url, "emojinet_queue_wait_seconds_count") == waits + 1
    time.sleep(0.3)  # the other reactions follow the first
    names = reactions_on(fake, ts)
    assert names[0] in CAT_NAMES, names
    assert 1 <= len(names) <= 3 and len(set(names)) == len(names)
    assert {c.args["channel"] for c in fake.called("reactions.add")} == {"C1"}
    assert file_id in fake.downloads  # with the bot token (the fake refuses it otherwise)
    (reply,) = [c for c in fake.called("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert reply.args["channel"] == "C1" and reply.args["text"].startswith("🐈 cat ")


def test_the_url_verification_handshake(app_url: str) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aB", "token": "x"})
    answer = post(app_url, body, "application/json")
    assert answer.status_code == 200
    assert "3eZbrw1aB" in answer.text


@pytest.mark.parametrize("how", ["unsigned", "bad signature", "replayed"])
def test_requests_not_from_slack_are_refused_and_nothing_runs(
    fake: FakeSlack, app_url: str, how: str
) -> None:
    file_id = new_id("F")
    fake.add_file(file_id, CAT)
    body = event_body(file_shared(file_id))
    if how == "unsigned":
        answer = httpx.post(f"{app_url}/slack/events", content=body, timeout=10)
    elif how == "bad signature":
        answer = post(app_url, body, "application/json", **{"x-slack-signature": "v0=" + "0" * 64})
    else:
        answer = post(app_url, body, "application/json", age_s=6 * 60)
    assert answer.status_code == 401
    assert answer.json()["detail"]
    time.sleep(0.5)
    assert [c for c in fake.calls if c.args.get("file") == file_id] == []
    assert file_id not in fake.downloads


def test_a_retried_delivery_reacts_once(fake: FakeSlack, app_url: str) -> None:
    file_id, ts = new_id("F"), "1700000002.000100"
    fake.add_file(file_id, CAT, ts=ts)
    event_id = new_id("Ev")
    body = event_body(file_shared(file_id), event_id)
    assert post(app_url, body, "application/json").status_code == 200
    again = post(app_url, body, "application/json", **{"x-slack-retry-num": "1"})
    assert again.status_code == 200
    wait_for_reactions(fake, ts)
    time.sleep(1.0)
    names = reactions_on(fake, ts)
    assert names and len(names) == len(set(names)), names
    assert fake.downloads.count(file_id) == 1


@pytest.mark.parametrize(
    ("kind", "why"),
    [("pdf", "not an image (application/pdf)"), ("30 MB", "30.0 MiB is over the 4 MiB limit")],
)
def test_files_it_cannot_use_are_skipped_with_a_log_line(
    fake: FakeSlack, app_url: str, caplog: pytest.LogCaptureFixture, kind: str, why: str
) -> None:
    file_id = new_id("F")
    if kind == "pdf":
        fake.add_file(file_id, b"%PDF-1.7 ...", mimetype="application/pdf")
    else:
        fake.add_file(file_id, b"\xff\xd8" + bytes(30 * 2**20))
    with caplog.at_level(logging.INFO, logger="service.slack"):
        assert post(app_url, event_body(file_shared(file_id)), "application/json").is_success
        line = wait_for_log(caplog, file_id)
    assert why in line and "skipped" in line
    assert file_id not in fake.downloads  # refused from what files.info said
    assert httpx.get(f"{app_url}/healthz").status_code == 200


def test_a_file_larger_than_slack_said_is_cut_while_streaming(
    fake: FakeSlack, app_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    file_id = new_id("F")
    fake.add_file(file_id, b"\xff\xd8" + bytes(MAX_BODY + 2**20), size=50_000)
    with caplog.at_level(logging.INFO, logger="service.slack"):
        assert post(app_url, event_body(file_shared(file_id)), "application/json").is_success
        line = wait_for_log(caplog, file_id)
    assert "skipped" in line and "the limit is 4 MiB" in line
    assert reactions_on(fake, fake.files[file_id]["shares"]["public"]["C1"][0]["ts"]) == []


@pytest.mark.parametrize(
    ("failure", "why"),
    [("slow", "the download took over 1 s"), ("gone", "the download answered HTTP 404")],
)
def test_failed_and_slow_downloads_are_skipped(
    fake: FakeSlack, app_url: str, caplog: pytest.LogCaptureFixture, failure: str, why: str
) -> None:
    file_id = new_id("F")
    fake.add_file(file_id, CAT)
    if failure == "slow":
        fake.slow_downloads[file_id] = 3.0
    else:
        del fake.blobs[file_id]
    with caplog.at_level(logging.INFO, logger="service.slack"):
        assert post(app_url, event_body(file_shared(file_id)), "application/json").is_success
        line = wait_for_log(caplog, file_id)
    assert "skipped" in line and why in line, line
    assert httpx.get(f"{app_url}/healthz").status_code == 200


def test_a_web_api_429_is_retried_after_retry_after(fake: FakeSlack, app_url: str) -> None:
    file_id, ts = new_id("F"), "1700000003.000100"
    fake.add_file(file_id, CAT, ts=ts)
    fake.rate_limit_next["reactions.add"] = 1
    assert post(app_url, event_body(file_shared(file_id)), "application/json").is_success
    added = wait_for_reactions(fake, ts)
    limited = [
        c
        for c in fake.calls
        if c.method == "reactions.add" and c.status == 429 and c.args["timestamp"] == ts
    ]
    assert len(limited) == 1
    assert added[0].at - limited[0].at >= 0.95  # waited Retry-After (1 s) before trying again
    assert added[0].args["name"] == limited[0].args["name"] and added[0].args["name"] in CAT_NAMES


def wait_for_log(caplog: pytest.LogCaptureFixture, needle: str, timeout_s: float = 15) -> str:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for record in list(caplog.records):
            if needle in record.getMessage():
                return record.getMessage()
        time.sleep(0.02)
    raise AssertionError(f"no log line about {needle}")


# -- the slash command and the message shortcut -------------------------------------------------


def command_body(fake: FakeSlack, text: str, channel: str) -> str:
    return urlencode(
        {
            "command": "/emojinet",
            "text": text,
            "channel_id": channel,
            "user_id": "U1",
            "team_id": "T1",
            "token": "unused",
            "trigger_id": "1.2.3",
            "response_url": f"{fake.base_url}/respond/{new_id('R')}",
        }
    )


def test_the_slash_command_answers_for_the_newest_image_in_the_channel(
    fake: FakeSlack, app_url: str
) -> None:
    file_id = new_id("F")
    file = fake.add_file(file_id, CAT, channel="C7")
    fake.history["C7"] = [{"ts": "2.0", "text": "hello"}, {"ts": "1.0", "files": [file]}]
    fake.responses.clear()
    answer = post(app_url, command_body(fake, "", "C7"), "application/x-www-form-urlencoded")
    assert answer.status_code == 200
    reply = fake.wait_for_response()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].split(" ")[0] in {"🐈", "🐱", "🐈‍⬛"}, reply["text"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("<http://localhost:9/cat.jpg>", "private address"),  # never fetched from inside
        ("ftp://example.com/cat.jpg", "not an http(s) URL"),
        ("", "cannot read this channel (not_in_channel)"),
    ],
)
def test_the_slash_command_says_why_it_has_no_answer(
    fake: FakeSlack, app_url: str, text: str, said: str
) -> None:
    fake.responses.clear()
    body = command_body(fake, text, "C-not-joined")
    assert post(app_url, body, "application/x-www-form-urlencoded").status_code == 200
    reply = fake.wait_for_response()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("No suggestions:") and said in reply["text"], reply["text"]


def test_the_slash_command_fetches_a_slack_file_url(fake: FakeSlack, app_url: str) -> None:
    file_id = new_id("F")
    file = fake.add_file(file_id, CAT)
    fake.responses.clear()
    body = command_body(fake, f"<{file['url_private']}|cat.jpg>", "C1")
    assert post(app_url, body, "application/x-www-form-urlencoded").status_code == 200
    assert fake.wait_for_response()["text"].split(" ")[0] in {"🐈", "🐱", "🐈‍⬛"}


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("cat", "🐈 cat "),
        ("deleted", "No suggestions: Slack answered file_not_found."),
        ("no image", "No suggestions: that message has no image."),
    ],
)
def test_the_message_shortcut_answers_for_the_message_image(
    fake: FakeSlack, app_url: str, case: str, said: str
) -> None:
    file_id = new_id("F")
    if case == "cat":
        fake.add_file(file_id, CAT)
    mimetype = "text/plain" if case == "no image" else "image/jpeg"
    fake.responses.clear()
    payload = {
        "type": "message_action",
        "callback_id": "suggest_emojis",
        "trigger_id": "1.2.3",
        "response_url": f"{fake.base_url}/respond/{new_id('R')}",
        "team": {"id": "T1"},
        "channel": {"id": "C1"},
        "user": {"id": "U1"},
        "message": {"ts": "1.0", "files": [{"id": file_id, "mimetype": mimetype}]},
        "token": "unused",
    }
    body = urlencode({"payload": json.dumps(payload)})
    assert post(app_url, body, "application/x-www-form-urlencoded").status_code == 200
    reply = fake.wait_for_response()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(said), reply["text"]
