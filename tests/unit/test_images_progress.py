"""Progress output in Docker's form: sizes, the bar string, and the throttled byte meter."""

from __future__ import annotations

import pytest

from cairn.images.progress import Meter, Progress, human_size, render_bar


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (1, "1B"),
        (999, "999B"),
        (1000, "1kB"),
        (1234, "1.234kB"),
        (123456, "123.5kB"),
        (1234567, "1.235MB"),
        (3_400_000, "3.4MB"),
        (64 << 20, "67.11MB"),
        (999_950, "1000kB"),  # go-units rounds after choosing the unit, as here
        (5_000_000_000, "5GB"),
    ],
)
def test_human_size_matches_go_units(size: int, expected: str) -> None:
    assert human_size(size) == expected


def _bar(equals: int) -> str:
    """Docker's 50-wide bar with ``equals`` ``=`` before the ``>``, and its trailing space."""
    return "[" + "=" * equals + ">" + " " * (50 - equals) + "] "


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [
        (0, 0, ""),
        (-1, 0, ""),
        (1234567, 3_400_000, _bar(18) + " 1.235MB/3.4MB"),  # int(36.3) // 2 = 18
        (0, 3_400_000, _bar(0) + "      0B/3.4MB"),
        (3_400_000, 3_400_000, _bar(50) + "   3.4MB/3.4MB"),
        (5000, 0, "     5kB"),
        (6_000_000, 3_400_000, _bar(50) + "     6MB"),
        (1, 100, _bar(0) + "      1B/100B"),
        (99, 100, _bar(49) + "     99B/100B"),
    ],
)
def test_render_bar_is_dockers_jsonprogress(current: int, total: int, expected: str) -> None:
    assert render_bar(current, total) == expected


def test_render_bar_literal() -> None:
    # One case spelled out in full, as ``docker pull`` prints it.
    assert render_bar(1234567, 3_400_000) == (
        "[==================>                                ]  1.235MB/3.4MB"
    )


def test_bar_width_is_constant() -> None:
    widths = {render_bar(n, 1000).index("]") for n in range(0, 1001, 7)}
    assert widths == {52}


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_meter_throttles_and_always_sends_first_and_last() -> None:
    sent: list[Progress] = []
    clock = _Clock()
    meter = Meter(sent.append, "abc123def456", "Downloading", 64 << 20, interval=0.1, clock=clock)
    for chunk in range(1, 65):  # 64 chunks of 1 MiB within 0.064 s
        meter.update(chunk << 20)
        clock.now += 0.001
    meter.finish()
    assert [m.current for m in sent] == [1 << 20, 64 << 20]
    assert all(m.id == "abc123def456" and m.status == "Downloading" for m in sent)
    assert sent[-1].progress == render_bar(64 << 20, 64 << 20)
    assert sent[-1].total == 64 << 20


def test_meter_sends_once_per_interval() -> None:
    sent: list[Progress] = []
    clock = _Clock()
    meter = Meter(sent.append, "x", "Pushing", 1000, interval=0.1, clock=clock)
    for n in range(1, 1001):
        meter.update(n)
        clock.now += 0.001  # 1 s in all: about 10 messages
    meter.finish()
    assert 10 <= len(sent) <= 12
    assert sent[-1].current == 1000
    currents = [m.current for m in sent]
    assert currents == sorted(currents)


def test_meter_never_reports_more_than_the_total() -> None:
    sent: list[Progress] = []
    meter = Meter(sent.append, "x", "Downloading", 10, interval=0.0)
    meter.update(5)
    meter.update(25)
    meter.finish()
    assert [m.current for m in sent] == [5, 10]
    assert all(m.current <= m.total for m in sent)


def test_finish_does_not_repeat_the_last_message() -> None:
    sent: list[Progress] = []
    meter = Meter(sent.append, "x", "Downloading", 10, interval=0.0)
    meter.update(10)
    meter.finish()
    assert len(sent) == 1


def test_reset_starts_again_without_a_message() -> None:
    sent: list[Progress] = []
    clock = _Clock()
    meter = Meter(sent.append, "x", "Pushing", 10, interval=1.0, clock=clock)
    meter.update(8)
    meter.reset(0)
    clock.now += 2
    meter.update(3)
    meter.finish()
    assert [m.current for m in sent] == [8, 3, 10]


def test_progress_defaults_are_empty() -> None:
    assert Progress() == Progress(id="", status="", progress="", current=0, total=0)
