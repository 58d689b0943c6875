"""docker's human durations and list statuses (go-units' HumanDuration, moby's State.String)."""

from __future__ import annotations

import pytest

from containerkit.dockerapi.times import human_duration, human_status

HOUR = 3600.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1.9, "1 second"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (3599, "59 minutes"),
        (1.4 * HOUR, "About an hour"),
        (1.5 * HOUR, "2 hours"),  # Go rounds half up: int(1.5 + 0.5)
        (47 * HOUR, "47 hours"),
        (48 * HOUR, "2 days"),
        (14 * 24 * HOUR, "2 weeks"),
        (60 * 24 * HOUR, "2 months"),
        (2 * 365 * 24 * HOUR, "2 years"),
    ],
)
def test_human_duration_is_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_list_status_as_dockerd_words_it() -> None:
    now = 1_700_000_100.0
    started, finished = "2023-11-14T22:13:20Z", "2023-11-14T22:14:20Z"  # 100 s and 40 s before now
    assert human_status("running", started, None, None, now=now) == "Up About a minute"
    assert human_status("running", started, None, None, now=now, health="healthy") == (
        "Up About a minute (healthy)"
    )
    assert human_status("running", started, None, None, now=now, health="starting") == (
        "Up About a minute (health: starting)"
    )
    assert human_status("paused", started, None, None, now=now) == "Up About a minute (Paused)"
    assert human_status("exited", started, finished, 3, now=now) == "Exited (3) 40 seconds ago"
    assert human_status("restarting", started, finished, 1, now=now) == "Restarting (1) 40 seconds ago"
    assert human_status("dead", started, finished, 137, now=now) == "Dead"
    assert human_status("created", None, None, None, now=now) == "Created"
