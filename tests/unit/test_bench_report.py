"""``make bench``'s report: each figure judged against its target, the
Markdown table and the chart written (pure; no benchmark is run here)."""

from bench.report import chart, evaluate, markdown

RECORDS = [
    {"bench": "floor", "clients": 32, "load": "wrk", "ratio_to_bare_nameko": 1.49},
    {"bench": "floor", "clients": 1, "load": "wrk", "ratio_to_bare_nameko": 9.0},
    {"bench": "login", "clients": 16, "overhead_beyond_hash": 0.228},
    {"bench": "login", "clients": 2, "overhead_beyond_hash": 0.9},
    {"bench": "registry_verification", "inside_p99_ms": 31.0},
    {"bench": "scim_create_user", "clients": 32, "ratio_to_floor": 0.31},
]


def test_each_figure_is_judged_against_its_own_target(tmp_path):
    rows = {(r[0], r[1]): r for r in evaluate(RECORDS)}
    floor = rows[("floor load=wrk clients=32", "ratio_to_bare_nameko")]
    assert floor[2:6] == (1.49, ">=", 1.6, False)
    assert rows[("login clients=16", "overhead_beyond_hash")][5] is True
    assert rows[("registry_verification", "inside_p99_ms")][5] is False  # <= 20
    # Only the records a target names are judged (clients=1 and 2 are not).
    assert ("floor load=wrk clients=1", "ratio_to_bare_nameko") not in rows
    assert ("login clients=2", "overhead_beyond_hash") not in rows
    assert rows[("scim_create_user clients=32", "ratio_to_floor")][5] is None
    text = markdown(list(rows.values()), "2026-12-02T00-00-00")
    assert (
        "| floor load=wrk clients=32 | ratio_to_bare_nameko | 1.49 | >= 1.6 | **no** |"
        in text
    )
    assert "1 of 3 targets met." in text
    chart(list(rows.values()), tmp_path / "ratios.png")
    assert (tmp_path / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
