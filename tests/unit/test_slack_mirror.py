"""Coalescing customer messages into handoff-thread posts (agent_bridge/slack/mirror.py)."""

from __future__ import annotations

import re
import time
from typing import Any

from agent_bridge.slack.escaping import escape_mrkdwn, split_customer_text
from agent_bridge.slack.mirror import POST_LIMIT, mirror_posts
from agent_bridge.slack.signing import refusal


def message(n: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"_id": f"m{n}", "seq": n, "author": "customer", "text": text, "attachments": [], **extra}


def test_short_messages_share_one_post_each_escaped_on_its_own_line() -> None:
    posts = mirror_posts([message(1, "hi <!here>"), message(2, "> *quote*"), message(3, "")], "Robin")
    [post] = posts
    assert post.done == ("m1", "m2", "m3") and post.partial is None
    lines = post.text.split("\n")
    assert lines[0] == ":speech_balloon: *Robin:* hi &lt;!here&gt;"
    assert lines[1] == ":speech_balloon: *Robin:* " + escape_mrkdwn("> *quote*")
    assert "*quote*" not in post.text and len(lines) == 2  # the empty one has no line


def test_many_messages_fill_posts_up_to_the_limit_in_order() -> None:
    messages = [message(n, f"message number {n:03d} " + "x" * 80) for n in range(200)]
    posts = mirror_posts(messages, "Robin")
    assert 1 < len(posts) < 20
    assert all(len(p.text) <= POST_LIMIT for p in posts)
    assert [i for p in posts for i in p.done] == [f"m{n}" for n in range(200)]
    numbers = re.findall(r"message number (\d{3})", "\n".join(p.text for p in posts))
    assert numbers == [f"{n:03d}" for n in range(200)]


def test_a_long_message_is_split_never_cut_and_a_retry_skips_posted_parts() -> None:
    text = "&<>" * 3000 + " the end"  # escapes to ~27,000 characters
    posts = mirror_posts([message(1, "before"), message(2, text), message(3, "after")], "Robin")
    assert all(len(p.text) <= POST_LIMIT for p in posts)
    pieces = [line.split(":* ", 1)[1] for p in posts for line in p.text.split("\n")]
    assert pieces[0] == "before" and pieces[-1] == "after"
    assert "".join(pieces[1:-1]) == escape_mrkdwn(text)  # whole, and no entity cut in two
    partials = [p.partial for p in posts if p.partial is not None]
    assert partials == [("m2", k) for k in range(1, len(partials) + 1)]
    assert posts[0].done == ("m1",) and "m2" in posts[-1].done

    # The job failed after posting "before" and two parts of the long one: the retry starts at the third.
    again = mirror_posts([message(2, text, slack_mirror={"parts": 2}), message(3, "after")], "Robin")
    assert len(again) == len(posts) - 3
    assert again[0].text == posts[3].text


def test_messages_whose_text_is_posted_only_wait_for_their_files() -> None:
    posted = message(1, "already there", slack_mirror={"text": True}, attachments=[{"name": "a.png"}])
    [post] = mirror_posts([posted], "Robin")
    assert post.text == "" and post.done == ("m1",)


def test_split_customer_text_keeps_entities_whole() -> None:
    pieces = split_customer_text("a&b" * 10, 6)
    assert "".join(pieces) == "a&amp;b" * 10
    assert all(len(p) <= 6 for p in pieces)
    assert not any(p.startswith(("amp;", "mp;", "p;", ";")) for p in pieces)


def test_signature_headers_of_the_wrong_shape_are_refusals_not_errors() -> None:
    now = time.time()
    stamp = str(int(now))
    good_shape = "v0=" + "0" * 64
    for timestamp, signature in (
        ("abc", good_shape),
        ("", good_shape),
        ("١٧٣٣٠٠٠٠٠٠", good_shape),
        (" 1733000000", good_shape),
        ("+1733000000", good_shape),
        ("1_733_000_000", good_shape),
        ("9" * 5000, good_shape),
        (stamp, "v0=" + "é" * 64),
        (stamp, ""),
    ):
        assert refusal({"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}, b"{}", "s", now)
    assert refusal({"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": good_shape}, b"{}", "s", now) == (
        "bad_signature"
    )
