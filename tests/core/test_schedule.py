"""Schedule strings -> per-layer merge table (docs/design.md, "Schedules")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtldr_deploy.core.schedule import (
    parse_schedule,
    resolve_schedule,
    unmerged_schedule,
)
from vidtldr_deploy.errors import VidTLDRError
from vidtldr_deploy.models.presets import PRESETS, presets_for, schedule_for

N_B16 = 12 * 14 * 14  # UMT-B/16, 12 frames of 224 px, tubelet 1: 2352 tokens


def table(schedule):
    return [
        (row.layer, row.tokens_in, row.r_requested, row.r, row.tokens_out, row.clamped)
        for row in schedule.layers
    ]


# ----------------------------------------------------------------------------------------------
# Grammar


@pytest.mark.parametrize(
    ("spec", "depth", "expected"),
    [
        ("16x12", 12, [16] * 12),
        ("16x12", 24, [16] * 12 + [0] * 12),
        ("8x3", 5, [8, 8, 8, 0, 0]),
        ("0.25x2", 4, [0.25, 0.25, 0, 0]),
        (".5x1", 2, [0.5, 0]),
        ("600,200,100", 12, [600, 200, 100] + [0] * 9),
        (" 600 , 200,100 ", 4, [600, 200, 100, 0]),
        ("7", 3, [7, 0, 0]),
        ("0.1,0.2", 3, [0.1, 0.2, 0]),
        ("none", 4, [0, 0, 0, 0]),
        ("None", 4, [0, 0, 0, 0]),
        ("", 2, [0, 0]),
        ("0", 3, [0, 0, 0]),
        ("5x0", 2, [0, 0]),
    ],
)
def test_parse_forms(spec, depth, expected):
    assert parse_schedule(spec, depth) == expected


def test_integral_counts_are_ints_and_fractions_stay_fractions():
    rs = parse_schedule("600,0.25,1.0", 4)
    assert rs == [600, 0.25, 1, 0]
    assert isinstance(rs[0], int) and isinstance(rs[2], int) and isinstance(rs[1], float)


# The schedules published with vid-TLDR (mlvlab/vid-TLDR README, vidTLDR_r per dataset).
PUBLISHED = {
    ("umt-b16", "msrvtt"): [600, 200, 100],
    ("umt-b16", "msvd"): [450, 250, 200],
    ("umt-b16", "anet"): [500],
    ("umt-b16", "didemo"): [250, 150, 150, 150],
    ("umt-b16", "lsmdc"): [400, 150, 150],
    ("umt-b16", "ssv2-label"): [200, 200, 200, 100],
    ("umt-b16", "ssv2-template"): [400, 300],
    ("umt-b16", "qa-msrvtt"): [600, 200],
    ("umt-b16", "qa-msvd"): [600, 200],
    ("umt-l16", "msrvtt"): [550, 400],
    ("umt-l16", "msvd"): [600, 200, 100, 100],
    ("umt-l16", "anet"): [600, 300],
    ("umt-l16", "didemo"): [800, 100],
    ("umt-l16", "lsmdc"): [250, 250, 200, 200],
    ("umt-l16", "ssv2-label"): [450, 250, 100],
    ("umt-l16", "ssv2-template"): [350, 300, 100, 50],
    ("umt-l16", "qa-msrvtt"): [400, 400, 100],
    ("umt-l16", "qa-msvd"): [400, 400, 100],
}
DEPTH = {"umt-b16": 12, "umt-l16": 24}


@pytest.mark.parametrize(("arch", "name"), sorted(PUBLISHED))
def test_presets_match_published(arch, name):
    depth = DEPTH[arch]
    rs = PUBLISHED[(arch, name)]
    assert parse_schedule(name, depth, presets_for(arch), arch) == rs + [0] * (depth - len(rs))


def test_preset_table_has_no_extra_entries():
    assert {(a, n) for a, names in PRESETS.items() for n in names} == set(PUBLISHED)


def test_named_presets():
    assert (
        parse_schedule("msrvtt", 12, presets_for("umt-b16"), "umt-b16") == [600, 200, 100] + [0] * 9
    )
    assert parse_schedule("didemo", 24, presets_for("umt-l16"), "umt-l16") == [800, 100] + [0] * 22
    assert (
        parse_schedule("MSRVTT", 12, presets_for("umt-b16"), "umt-b16") == [600, 200, 100] + [0] * 9
    )
    # the same name means different schedules for different architectures
    assert parse_schedule("msrvtt", 24, presets_for("umt-l16"), "umt-l16")[:3] == [550, 400, 0]


# ----------------------------------------------------------------------------------------------
# Per-layer table


def test_table_msrvtt_umt_b16():
    # 2352 -600-> 1752 -200-> 1552 -100-> 1452, then unchanged
    s = schedule_for("msrvtt", "umt-b16", 12, N_B16)
    assert table(s)[:4] == [
        (0, 2352, 600, 600, 1752, False),
        (1, 1752, 200, 200, 1552, False),
        (2, 1552, 100, 100, 1452, False),
        (3, 1452, 0, 0, 1452, False),
    ]
    assert all(row[1] == row[4] == 1452 and row[3] == 0 for row in table(s)[3:])
    assert len(s.layers) == 12
    assert s.rs == [600, 200, 100] + [0] * 9
    assert s.tokens_out == 1452
    assert s.merges


def test_table_didemo_umt_l16():
    # 2352 -800-> 1552 -100-> 1452
    s = schedule_for("didemo", "umt-l16", 24, N_B16)
    assert table(s)[:3] == [
        (0, 2352, 800, 800, 1552, False),
        (1, 1552, 100, 100, 1452, False),
        (2, 1452, 0, 0, 1452, False),
    ]
    assert s.tokens_out == 1452 and len(s.layers) == 24


def test_table_rxl():
    # 16 per layer for 12 layers: 2352 - 12 * 16 = 2160
    s = resolve_schedule("16x12", 12, N_B16)
    assert [row.tokens_in for row in s.layers] == [2352 - 16 * i for i in range(12)]
    assert s.rs == [16] * 12
    assert s.tokens_out == 2160
    assert not any(row.clamped for row in s.layers)


def test_table_fractions_resolve_against_current_n():
    # layer 0: int(2352 * 0.25) = 588 -> 1764; layer 1: int(1764 * 0.25) = 441 -> 1323
    s = resolve_schedule("0.25x2", 12, N_B16)
    assert table(s)[:3] == [
        (0, 2352, 0.25, 588, 1764, False),
        (1, 1764, 0.25, 441, 1323, False),
        (2, 1323, 0, 0, 1323, False),
    ]


def test_table_clamps_and_says_so():
    # N = 1000: 600 > 500 -> 500 (clamped); 600 > 250 -> 250; 600 > 125 -> 125; then 0
    s = resolve_schedule("600x3", 4, 1000)
    assert table(s) == [
        (0, 1000, 600, 500, 500, True),
        (1, 500, 600, 250, 250, True),
        (2, 250, 600, 125, 125, True),
        (3, 125, 0, 0, 125, False),
    ]
    # odd N: 9 // 2 = 4
    assert table(resolve_schedule("5", 1, 9)) == [(0, 9, 5, 4, 5, True)]
    # exactly N // 2 is not a clamp
    assert table(resolve_schedule("4", 1, 9)) == [(0, 9, 4, 4, 5, False)]
    # fraction above one half: int(10 * 0.9) = 9 -> 5
    assert table(resolve_schedule("0.9", 1, 10)) == [(0, 10, 0.9, 5, 5, True)]
    # a class token is never a source: (1001 - 1) // 2 = 500
    assert table(resolve_schedule("600", 1, 1001, protected=1)) == [(0, 1001, 600, 500, 501, True)]


def test_unmerged_schedule():
    s = unmerged_schedule(12, N_B16)
    assert s.rs == [0] * 12
    assert s.tokens_out == N_B16
    assert not s.merges
    assert all(row.tokens_in == row.tokens_out == N_B16 for row in s.layers)


def test_to_dict_round_trips_the_table():
    d = resolve_schedule("600,200", 3, 1000).to_dict()
    assert d == {
        "spec": "600,200",
        "layers": [
            {
                "layer": 0,
                "tokens_in": 1000,
                "r_requested": 600,
                "r": 500,
                "tokens_out": 500,
                "clamped": True,
            },
            {
                "layer": 1,
                "tokens_in": 500,
                "r_requested": 200,
                "r": 200,
                "tokens_out": 300,
                "clamped": False,
            },
            {
                "layer": 2,
                "tokens_in": 300,
                "r_requested": 0,
                "r": 0,
                "tokens_out": 300,
                "clamped": False,
            },
        ],
    }


@settings(deadline=None, max_examples=60, derandomize=True, database=None)
@given(
    rs=st.lists(
        st.one_of(st.integers(0, 3000), st.sampled_from([0.1, 0.25, 0.5, 0.75])), max_size=12
    ),
    depth_extra=st.integers(0, 12),
    n=st.integers(1, 3000),
    protected=st.sampled_from([0, 1]),
)
def test_table_chain_property(rs, depth_extra, n, protected):
    depth = len(rs) + depth_extra
    spec = ",".join(str(r) for r in rs) or "none"
    s = resolve_schedule(spec, depth, n, protected=protected)
    assert len(s.layers) == depth
    current = n
    for i, row in enumerate(s.layers):
        requested = rs[i] if i < len(rs) else 0
        wanted = int(current * requested) if 0 < requested < 1 else int(requested)
        assert row.layer == i and row.tokens_in == current
        assert 0 <= row.r <= (current - protected) // 2
        assert row.r == min(wanted, max(0, (current - protected) // 2))
        assert row.tokens_out == current - row.r
        assert row.clamped == (row.r < wanted)
        current = row.tokens_out
    assert s.tokens_out == (current if depth else 0)


# ----------------------------------------------------------------------------------------------
# Errors: VidTLDRError, with a message that says what was expected


@pytest.mark.parametrize(
    ("spec", "depth", "fragments"),
    [
        ("1,2,3,4,5", 4, ["5 layers", "4", "at most 4"]),
        ("16x13", 12, ["13 layers", "at most 12"]),
        (",".join(["1"] * 25), 24, ["25 layers", "at most 24"]),
    ],
)
def test_longer_than_depth(spec, depth, fragments):
    with pytest.raises(VidTLDRError) as info:
        parse_schedule(spec, depth)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_preset_longer_than_depth():
    with pytest.raises(VidTLDRError, match="at most 3"):
        parse_schedule("didemo", 3, presets_for("umt-b16"), "umt-b16")  # 4 published layers


@pytest.mark.parametrize("spec", ["-5", "1,-2", "-0.5", "600,200,-1"])
def test_negative(spec):
    with pytest.raises(VidTLDRError, match=">= 0"):
        parse_schedule(spec, 12)


@pytest.mark.parametrize(
    "spec", ["abc", "16x", "x12", "1,,2", "1e3", "16x12x2", "16 x 12", "-1x2", "1;2", "nan", "600,"]
)
def test_unparsable(spec):
    with pytest.raises(VidTLDRError) as info:
        parse_schedule(spec, 12, presets_for("umt-b16"), "umt-b16")
    message = str(info.value)
    assert "expected" in message
    assert "RxL" in message and "600,200,100" in message and "none" in message
    assert "msrvtt" in message  # the presets that would have been accepted


def test_unknown_preset():
    with pytest.raises(VidTLDRError) as info:
        parse_schedule("kinetics", 12, presets_for("umt-b16"), "umt-b16")
    message = str(info.value)
    assert "kinetics" in message and "expected" in message
    assert "msrvtt" in message and "didemo" in message


def test_preset_without_architecture():
    # a preset is defined per architecture: without one there are none to choose from
    with pytest.raises(VidTLDRError, match="expected") as info:
        parse_schedule("msrvtt", 12)
    assert "none for architecture" in str(info.value)
    with pytest.raises(VidTLDRError):
        parse_schedule("msrvtt", 12, presets_for("videomae-b16"), "videomae-b16")


def test_resolve_raises_the_same_errors():
    with pytest.raises(VidTLDRError):
        resolve_schedule("1,2,3", 2, 100)
    with pytest.raises(VidTLDRError):
        resolve_schedule("-3", 2, 100)
    with pytest.raises(VidTLDRError):
        resolve_schedule("bogus", 2, 100)
