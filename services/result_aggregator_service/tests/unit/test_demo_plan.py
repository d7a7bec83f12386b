"""The demo's command line: how many batches, how fast, for whom."""

from __future__ import annotations

import pytest

from result_aggregator_service.entrypoints.demo import parse_plan


def test_without_options_the_demo_sends_twelve_batches_of_three_teachers_at_ten_events_a_second() -> None:
    plan = parse_plan([])
    assert (plan.batches, plan.rate, plan.duration) == (12, 10.0, None)
    assert plan.users == ("demo-teacher-1", "demo-teacher-2", "demo-teacher-3")


def test_a_duration_without_a_batch_count_runs_until_the_time_is_up() -> None:
    assert parse_plan(["--duration", "30"]).batches is None
    assert parse_plan(["--duration", "30", "--batches", "4"]).batches == 4


@pytest.mark.parametrize("argv", [["--rate", "0"], ["--users", "0"], ["--batches", "0"]])
def test_nonsense_counts_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_plan(argv)


def test_ras_demo_hands_its_options_to_the_demo_producer() -> None:
    from typer.testing import CliRunner

    from result_aggregator_service.cli.main import app

    shown = CliRunner().invoke(app, ["demo", "--help"])
    assert shown.exit_code == 0
    assert "--rate" in shown.output and "--batches" in shown.output
    refused = CliRunner().invoke(app, ["demo", "--rate", "fast"])
    assert refused.exit_code == 2  # the producer's own argument parser said no
