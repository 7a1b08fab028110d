"""``make bench``'s report: each figure judged against its target, the
Markdown table and the chart written; and the accounts a run registers
(pure; no benchmark is run here)."""

from bench.report import chart, curve_markdown, curves, evaluate, markdown

RECORDS = [
    {"bench": "floor", "clients": 32, "load": "wrk", "ratio_to_bare_nameko": 1.49},
    {"bench": "floor", "clients": 1, "load": "wrk", "ratio_to_bare_nameko": 9.0},
    {"bench": "login", "clients": 16, "load": "wrk", "overhead_beyond_hash": 0.228},
    {"bench": "login", "clients": 16, "load": "python", "overhead_beyond_hash": 0.3},
    {"bench": "login", "clients": 2, "overhead_beyond_hash": 0.9},
    {"bench": "registry_verification", "inside_p99_ms": 31.0},
    {
        "bench": "scim_create_user",
        "clients": 32,
        "load": "python",
        "ratio_to_floor": 0.6,
    },
    {"bench": "scim_create_user", "clients": 32, "load": "wrk", "ratio_to_floor": 0.31},
    {
        "bench": "platform_rss",
        "rss_mb": {"identity": 146.0},
        "largest_service_mb": 146.0,
    },
]


def test_each_figure_is_judged_against_its_own_target(tmp_path):
    rows = {(r[0], r[1]): r for r in evaluate(RECORDS)}
    floor = rows[("floor load=wrk clients=32", "ratio_to_bare_nameko")]
    assert floor[2:6] == (1.49, ">=", 1.6, False)
    assert rows[("login load=wrk clients=16", "overhead_beyond_hash")][5] is True
    assert ("login load=python clients=16", "overhead_beyond_hash") not in rows
    assert rows[("registry_verification", "inside_p99_ms")][5] is False  # <= 20
    # Only the records a target names are judged (clients=1 and 2 are not).
    assert ("floor load=wrk clients=1", "ratio_to_bare_nameko") not in rows
    assert ("login clients=2", "overhead_beyond_hash") not in rows
    # The wrk figure is judged, not the Python client's.
    scim = rows[("scim_create_user load=wrk clients=32", "ratio_to_floor")]
    assert scim[5] is False  # >= 0.5
    assert ("scim_create_user load=python clients=32", "ratio_to_floor") not in rows
    assert rows[("platform_rss", "largest_service_mb")][5] is False  # <= 120
    text = markdown(list(rows.values()), "2026-12-02T00-00-00")
    assert (
        "| floor load=wrk clients=32 | ratio_to_bare_nameko | 1.49 | >= 1.6 | **no** |"
        in text
    )
    assert "1 of 5 targets met." in text
    chart(list(rows.values()), tmp_path / "ratios.png")
    assert (tmp_path / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


CURVE = [
    {"bench": "send_code_curve", "connections": c, "rps": r, "p50_ms": p / 2,
     "p99_ms": p, "non_2xx": n}
    for c, r, p, n in ((16, 700.0, 40.0, 0), (1, 90.0, 14.0, 0), (256, 650.0, 900.0, 3))
]  # fmt: skip


def test_a_curve_is_tabled_in_load_order_and_plotted(tmp_path):
    text = curve_markdown(CURVE + RECORDS)
    assert (
        text.index("| 1 | 90.0 |")
        < text.index("| 16 | 700.0 |")
        < text.index("| 256 | 650.0 | 900.0 | 3 |")
    )
    assert (
        curves(CURVE, tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    )
    assert curves(RECORDS, tmp_path / "none.png") is None
    burst = [
        {"bench": "burst_one_phone", "concurrent": 1000, "sent": 5, "seconds": 9.1}
    ]
    assert "| 1000 | 5 | 9.1 |" in curve_markdown(burst)
    assert curve_markdown(RECORDS) == ""


def test_a_curve_point_says_what_its_non_2xx_answers_were():
    point = {**CURVE[2], "issue_code_outcomes": {"refused": 3, "ok": 5197}}
    assert "| 256 | 650.0 | 900.0 | 3 | ok 5197, refused 3 |" in curve_markdown([point])


def test_the_pumping_simulation_is_judged_on_real_users_refused():
    records = [
        {"bench": "sms_pumping_simulation", "real_refused": 0, "pumping_through": 394},
        {"bench": "sms_pumping_simulation", "real_refused": 3, "pumping_through": 145},
    ]
    judged = [r for r in evaluate(records) if r[1] == "real_refused"]
    assert [(r[2], r[5]) for r in judged] == [(0, True), (3, False)]
    reported = [r for r in evaluate(records) if r[1] == "pumping_through"]
    assert [r[2] for r in reported] == [394, 145]


def test_a_bench_run_never_registers_one_id_number_twice(monkeypatch):
    """The platform refuses a second account on one number: the login and
    recovery benchmarks draw theirs from ``fresh_resident_id``."""
    from bench import harness
    from services.common.plumbing import testing

    drawn = iter(["110101199001011234", "110101199001011234", "11010119900101123X"])
    monkeypatch.setattr(testing, "random_resident_id", lambda: next(drawn))
    monkeypatch.setattr(harness, "_issued_id_numbers", set())
    assert [harness.fresh_resident_id() for _ in range(2)] == [
        "110101199001011234",
        "11010119900101123X",
    ]
