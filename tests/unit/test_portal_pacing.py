"""The portal's sign-in answer is paced: a known address's few milliseconds of extra work (a
token, a message, an audit row) must not show in how soon the answer comes."""

from __future__ import annotations

import pytest

from ui.patient_portal import ANSWER_SECONDS, paced


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


@pytest.mark.parametrize("work_seconds", [0.001, 0.0045, 0.2])
def test_known_and_unknown_addresses_are_answered_at_the_same_moment(work_seconds):
    clock = Clock()

    def work() -> str:
        clock.now += work_seconds
        return "answer"

    assert paced(ANSWER_SECONDS, work, clock=clock, sleep=clock.sleep) == "answer"
    assert clock.now == pytest.approx(100.0 + ANSWER_SECONDS)


def test_slow_work_is_not_held_longer_and_an_error_is_paced_too():
    clock = Clock()

    def slow() -> None:
        clock.now += ANSWER_SECONDS + 0.1

    paced(ANSWER_SECONDS, slow, clock=clock, sleep=clock.sleep)
    assert clock.slept == []

    def refused() -> None:
        clock.now += 0.002
        raise ValueError("too many requests")

    with pytest.raises(ValueError):
        paced(ANSWER_SECONDS, refused, clock=clock, sleep=clock.sleep)
    assert clock.slept == [round(ANSWER_SECONDS - 0.002, 6)]
