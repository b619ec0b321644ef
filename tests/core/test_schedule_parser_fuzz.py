"""The schedule parser under hostile input: only the project's error type comes out, and nothing
is built before the entry count is checked against the depth."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidtldr_deploy.core.schedule import parse_schedule, resolve_schedule
from vidtldr_deploy.errors import InputError, VidTLDRError

PRESETS = {"msrvtt": [600, 200, 100]}
ALPHABET = "0123456789.,x- eE+naifNI"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(alphabet=ALPHABET, max_size=40), st.text(max_size=20)),
       st.integers(min_value=1, max_value=48))  # fmt: skip
def test_only_the_project_error_comes_out(spec, depth):
    try:
        rs = parse_schedule(spec, depth, PRESETS, owner="umt-b16")
        resolve_schedule(spec, depth, 1568, PRESETS, owner="umt-b16")
    except VidTLDRError:
        return
    assert len(rs) == depth


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("1x100000000", "has 100000000 layers"),
        ("1" + "0" * 320, "larger than any token count"),
        ("1" + "0" * 320 + "x2", "larger than any token count"),
        ("2x" + "9" * 5000, "digits"),
        ("1" + "0" * 5000, "larger than any token count"),
        ("1.5x2", "neither a fraction below 1 nor a whole token count"),
        ("3,1.5", "neither a fraction below 1"),
        (",".join(["1"] * 100000), "has 100000 layers"),
    ],
    ids=["1x1e8", "1e320", "1e320x2", "2x5000-digits", "1e5000", "1.5x2", "3,1.5", "1e5-entries"],
)
def test_hostile_schedules_are_input_errors(spec, needle):
    with pytest.raises(InputError, match=needle):
        parse_schedule(spec, 12)


def test_long_schedule_is_refused_before_any_list_is_built():
    tracemalloc.start()
    try:
        with pytest.raises(InputError):
            parse_schedule("1x100000000", 12)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # not the 800 MB list of a hundred million entries


def test_whole_and_fractional_r_still_parse():
    assert parse_schedule("2x2", 4) == [2, 2, 0, 0]
    assert parse_schedule("0.25x1", 2) == [0.25, 0]
    assert parse_schedule("2.0,0.5", 3) == [2, 0.5, 0]


def test_preset_at_another_frame_count_says_so():
    from vidtldr_deploy.models.presets import PRESET_FRAMES, schedule_for

    at_12 = schedule_for("msrvtt", "umt-b16", 12, 1568, frames=PRESET_FRAMES)
    at_8 = schedule_for("msrvtt", "umt-b16", 12, 1568, frames=8)
    assert at_12.notes == () and "notes" not in at_12.to_dict()
    (note,) = at_8.notes
    assert "published for 12 frames" in note and "8 frames" in note
    assert at_8.to_dict()["notes"] == [note]  # reports and graph metadata record it
