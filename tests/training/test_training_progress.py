"""How training progress reads to a user: the step label under a time budget, the bar."""

from __future__ import annotations

import io

from training.progress import ProgressBar, step_label


def test_step_label_counts_steps_when_the_step_count_ends_the_run() -> None:
    event = {"step": 29, "total": 60, "percent": 48.3, "budget_s": 900.0, "time_bound": False}
    assert step_label(event) == "step 29/60"
    assert step_label({"step": 3, "total": 10}) == "step 3/10"


def test_step_label_shows_the_budget_share_when_the_budget_ends_the_run_first() -> None:
    event = {"step": 29, "total": 60, "percent": 72.5, "budget_s": 900.0, "time_bound": True}
    assert step_label(event) == "step 29 · 72 % of the 15-min budget"


def test_the_bar_switches_to_percent_under_a_time_budget() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    bar(
        {
            "event": "step",
            "step": 2,
            "total": 60,
            "percent": 50.0,
            "budget_s": 60.0,
            "time_bound": True,
        }
    )
    assert bar._bar.total == 100 and bar._bar.n == 50
    bar({"event": "done", "message": "trained 4 steps"})
    assert "of the 1-min budget" in out.getvalue() and out.getvalue().rstrip().endswith(
        "trained 4 steps"
    )
