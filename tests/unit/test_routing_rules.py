"""The routing rules file: the shipped one loads; every kind of mistake is refused, naming its place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from agent_bridge.ai.notices import handoff_notice, round_wait
from agent_bridge.ai.rules import RulesError, load_rules

ROOT = Path(__file__).resolve().parents[2]

SHIPPED = ROOT / "config" / "routing.yaml"


def write_rules(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(SHIPPED.read_text())
    change(data)
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems_for(tmp_path: Path, change) -> list[str]:
    with pytest.raises(RulesError) as caught:
        load_rules(write_rules(tmp_path, change))
    return caught.value.problems


def test_the_shipped_rules_load() -> None:
    rules = load_rules(SHIPPED)
    assert set(rules.queue_names) == {"general", "billing", "orders", "accounts"}
    assert {i.name for i in rules.intents if i.action == "handoff"} == {
        "contact_human_agent",
        "contact_customer_service",
        "complaint",
        "get_refund",
        "payment_issue",
    }
    assert set(rules.triggers.human_request.patterns) >= {"en", "es", "fr", "de", "pt", "it"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["intents"][0].update(queue="nowhere"), "intents[0] (contact_human_agent).queue: 'nowhere'"),
        (lambda d: d.update(default_queue="vip"), "default_queue: 'vip' is not one of the queues"),
        (lambda d: d["queues"][1]["business_hours"].update(timezone="Mars/Base"), "queues[1].business_hours.timezone"),
        (lambda d: d["queues"][0]["business_hours"].update(open="25:00"), "queues[0].business_hours.open"),
        (lambda d: d["queues"][0]["business_hours"].update(open="21:00"), "must be before close"),
        (lambda d: d["queues"][2].update(sla_minute=5), "queues[2].sla_minute: Extra inputs are not permitted"),
        (lambda d: d["queues"][2].update(sla_minutes=0), "queues[2].sla_minutes"),
        (lambda d: d["triggers"]["human_request"]["patterns"]["en"].append("(unclosed"), "not a valid regular"),
        (lambda d: d["triggers"]["back_office"]["intents"].append("fly_to_moon"), "'fly_to_moon' is not an intent"),
        (lambda d: d["triggers"]["negative_sentiment"].update(threshold=-3), "triggers.negative_sentiment.threshold"),
        (lambda d: d["messages"].update(handoff="Hi {customer}"), "unknown placeholder {customer}"),
        (lambda d: d["messages"].update(handoff="Back {reopens}"), "messages.handoff: unknown placeholder {reopens}"),
        (lambda d: d["messages"].update(wait_estimate="About {minutes min"), "messages.wait_estimate: not a valid"),
        (lambda d: d["queues"].append(dict(d["queues"][0])), "duplicate queue names ['general']"),
        (lambda d: d.update(order_number_pattern="[a-"), "order_number_pattern: not a valid regular expression"),
        (lambda d: d["triggers"]["sensitive_topics"]["topics"]["legal"].update(queue="x"), "topics.legal.queue: 'x'"),
    ],
)
def test_a_wrong_file_is_refused_with_a_message_naming_the_place(tmp_path: Path, change, expected: str) -> None:
    problems = problems_for(tmp_path, change)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(str(tmp_path / "routing.yaml")) for p in problems)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("default_queue: general\nqueues:\n  - name: [unclosed\n")
    with pytest.raises(RulesError, match=r"line \d+, column \d+: not valid YAML"):
        load_rules(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="file not found"):
        load_rules(tmp_path / "nope.yaml")


def test_business_hours_and_the_next_opening() -> None:
    hours = load_rules(SHIPPED).queue("billing").business_hours  # Mon-Fri 09:00-17:30 London
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    tuesday_ten = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert not hours.is_open(saturday_noon)
    assert hours.is_open(tuesday_ten)
    assert hours.next_open(saturday_noon).isoformat() == "2026-11-30T09:00:00+00:00"


def test_the_customer_hears_the_team_and_the_wait_or_when_they_are_back() -> None:
    rules = load_rules(SHIPPED)
    tuesday_ten = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with_sla = handoff_notice(rules, "billing", tuesday_ten, None)
    assert "billing team" in with_sla and "within 60 minutes" in with_sla
    assert "within 10 minutes" in handoff_notice(rules, "billing", tuesday_ten, 9.2)
    saturday_noon = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    closed = handoff_notice(rules, "billing", saturday_noon, 9.2)
    assert "back on Monday at 09:00 GMT" in closed
    friday_evening = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    assert "back on Monday at 09:00" in handoff_notice(rules, "billing", friday_evening, None)
    monday_early = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert "back today at 09:00" in handoff_notice(rules, "billing", monday_early, None)
    assert [round_wait(m) for m in (0.2, 7.5, 12, 44, 61, 200)] == [1, 8, 15, 45, 75, 210]
