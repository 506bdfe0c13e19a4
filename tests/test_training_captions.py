"""Caption parsing on real tweets (Debian r-cran-rtweet fixtures via scripts/extract_rtweet_*)."""

from __future__ import annotations

import json
from typing import Any

import emoji
import pytest
from training_data import RTWEET

from training.captions import extract_emojis, extract_hashtags
from training.posts import Post
from training.prepare import FilterConfig, PrepareReport, filter_posts


@pytest.fixture(scope="module")
def tweets() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RTWEET.read_text(encoding="utf-8").splitlines()]


def test_fixture_is_real_twitter_data(tweets: list[dict[str, Any]]) -> None:
    assert len(tweets) == 655
    assert sum(1 for t in tweets if emoji.emoji_count(t["caption"])) == 555


def test_hashtags_match_twitters_own_entities(tweets: list[dict[str, Any]]) -> None:
    # Retweet texts are truncated ("#Tenso…"), so compare on original tweets only; these include
    # Thai hashtags whose vowel signs are combining marks.
    originals = [t for t in tweets if not t["retweet"]]
    assert len(originals) > 300
    for t in originals:
        assert extract_hashtags(t["caption"]) == t["hashtags"], t["id"]


def test_every_emoji_tweet_yields_fully_qualified_emojis(tweets: list[dict[str, Any]]) -> None:
    for t in tweets:
        found = extract_emojis(t["caption"])
        assert bool(found) == bool(emoji.emoji_count(t["caption"])), t["id"]
        for e in found:
            assert emoji.EMOJI_DATA[e]["status"] == emoji.STATUS["fully_qualified"]
            assert not any(0x1F3FB <= ord(c) <= 0x1F3FF for c in e)  # skin tones folded


def test_known_real_captions(tweets: list[dict[str, Any]]) -> None:
    by_id = {t["id"]: t["caption"] for t in tweets}
    # "… #Switzerland 👇🏼": the toned pointing finger folds to 👇, or keeps its tone on request.
    assert extract_emojis(by_id["1590034649862246402"]) == ["👇"]
    assert extract_emojis(by_id["1590034649862246402"], fold_skin_tone=False) == ["👇🏼"]
    # "🥇ทำ 500 … ♻️รีทวิต ❤️กดหัวใจ": variation selectors kept, order of appearance.
    assert extract_emojis(by_id["1590090534072516609"]) == ["🥇", "♻️", "❤️"]


def test_zwj_sequences_variation_selectors_and_duplicates() -> None:
    assert extract_emojis("team 👩‍🦰 and 👨‍👩‍👧!") == ["👩‍🦰", "👨‍👩‍👧"]
    assert extract_emojis("love ❤ love ❤️ ❤") == ["❤️"]
    assert extract_emojis("👍🏽 👍 👍🏿") == ["👍"]
    assert extract_emojis("👍🏽 👍", fold_skin_tone=False) == ["👍🏽", "👍"]
    assert extract_emojis("no emoji here, #rstats") == []


def test_hashtag_edge_cases() -> None:
    assert extract_hashtags("#Cat&#39;s #dog,#fish #1 a#b ＃全角") == ["Cat", "dog", "fish", "全角"]


def test_the_seed_filters_on_real_tweets(tweets: list[dict[str, Any]]) -> None:
    """Original tweets with an emoji and at most 5 hashtags survive the default filters."""
    posts = [
        Post(id=t["id"], image=RTWEET, caption=t["caption"], hashtags=t["hashtags"])
        for t in tweets
        if not t["retweet"]
    ]
    report = PrepareReport()
    cfg = FilterConfig(max_hashtags=5, cap_per_emoji=None, top_n=1000, check_images=False)
    kept, vocab = filter_posts(posts, cfg, report=report)
    expected = [
        t
        for t in tweets
        if not t["retweet"] and len(t["hashtags"]) <= 5 and emoji.emoji_count(t["caption"])
    ]
    assert len(kept) == len(expected) == report.kept
    assert report.dropped["too_many_hashtags"] == sum(
        1 for t in tweets if not t["retweet"] and len(t["hashtags"]) > 5
    )
    assert report.read == len(posts)
    assert report.read == report.kept + sum(report.dropped.values())
    assert vocab.counts == tuple(sorted(vocab.counts, reverse=True))
