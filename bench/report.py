"""``make bench``: every benchmark in one run, one report.

    python -m bench.report                 # all of them (~15 min here)
    python -m bench.report --quick         # fewer requests and rows
    python -m bench.report --from run.jsonl  # re-render a report

Runs ``bench.run`` (floors, hop, send_code, SCIM, recovery, logins),
``bench.registry`` (OneRoster import, registry verification),
``bench.curves`` and ``bench.pumping`` (SMS pumping beside a registration
day), each of which
measures its own floor in the same run, and writes to
``.artifacts/bench/<UTC time>/``:

* ``results.jsonl`` — every record the benchmarks printed;
* ``report.md`` — one row per target: the figure, the target, met or not;
* ``ratios.png`` — each figure against its target (1.0 = exactly on it).
"""

import argparse
import json
import operator
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (bench, the records it applies to, figure, comparison, target, why).
TARGETS = [
    ("project_hop", {"clients": 32, "load": "wrk"}, "ratio_to_bare_nameko", ">=", 2.0,
     "this project's RPC hop vs stock Nameko's"),
    ("project_hop", {"clients": 32, "load": "python"}, "ratio_to_bare_nameko", ">=", 1.4,
     "the same with the Python client"),
    ("floor", {"clients": 32, "load": "wrk"}, "ratio_to_bare_nameko", ">=", 1.6,
     "HTTP → gateway → RPC → INSERT vs stock Nameko's hop"),
    # Issue #23's table: send_code against the floor with wrk, and from one
    # network (the Python client; every request must succeed).
    ("send_code", {"load": "wrk"}, "ratio_to_floor", ">=", 0.6,
     "a code sent vs the floor (wrk, 32 connections)"),
    ("send_code", {"load": "wrk"}, "p99_over_p50", "<=", 4.0,
     "tail latency of code sends"),
    ("send_code", {"load": "wrk"}, "non_2xx", "<=", 0, "every code send answered 202"),
    ("send_code_one_network", {"load": "wrk"}, "ratio_to_floor", ">=", 0.6,
     "code sends from one school network vs the floor (wrk, 32 connections)"),
    ("send_code_one_network", {"load": "wrk"}, "non_2xx", "<=", 0,
     "none of them failed"),
    ("scim_create_user", {"load": "wrk"}, "ratio_to_floor", ">=", 0.5,
     "SCIM POST /Users vs the floor (wrk, 32 connections)"),
    ("login", {"clients": 16, "load": "wrk"}, "overhead_beyond_hash", "<=", 0.25,
     "platform CPU per login beyond its argon2id hash"),
    ("login", {"clients": 16, "load": "wrk"}, "ratio_to_hash_ceiling", ">=", 0.9,
     "logins/s vs cores ÷ hash time (wrk)"),
    ("login", {"clients": 16, "load": "wrk"}, "logins_per_core", ">=", 15,
     "Keycloak's published 15 password logins/s per vCPU"),
    ("oneroster_import", {}, "ratio_to_raw_copy", ">=", 0.7,
     "100k-student import vs raw COPY of the same rows"),
    ("registry_verification", {}, "inside_p99_ms", "<=", 20,
     "registry lookup p99 with 1M rows"),
    ("platform_rss", {}, "largest_service_mb", "<=", 120,
     "every service's RSS after the whole bench"),
    # Issue #24: pumping beside a registration day (bench/pumping.py).
    ("sms_pumping_simulation", {}, "real_refused", "<=", 0,
     "students refused while SMS pumping is suspended"),
]  # fmt: skip
# Figures reported without a target of their own.
REPORTED = [
    # send_code's rate with every delivery handed to the adapter (bench/run.py)
    ("send_code_delivery_lag", "ratio_to_floor_delivered"),
    ("send_code_delivery_lag", "queued_after_load"),
    ("reset_methods", "ratio_to_floor"),
    ("phone_recovery_flow", "flows_per_second"),
    ("register", "ratio_to_hash_ceiling"),
    ("login", "overhead_beyond_hash_with_broker_and_db"),
    ("argon2id_hash", "hash_cpu_ms"),
    ("sms_pumping_simulation", "pumping_through"),
    ("sms_pumping_simulation", "pumping_last_through_after_s"),
]
OPS = {">=": operator.ge, "<=": operator.le}


def run_benchmarks(quick, out):
    """Run each benchmark module; every JSON line it prints goes to ``out``."""
    commands = [[sys.executable, "-m", "bench.run", *(["--quick"] if quick else [])]]
    commands.append(
        [sys.executable, "-m", "bench.registry"]
        + (["--students", "20000", "--registry-rows", "200000"] if quick else [])
    )
    commands.append(
        [sys.executable, "-m", "bench.curves", *(["--quick"] if quick else [])]
    )
    commands.append(
        [sys.executable, "-m", "bench.pumping", *(["--quick"] if quick else [])]
    )
    # The login benchmark also profiles its path with py-spy (kept beside).
    env = {**os.environ, "BENCH_PROFILE_DIR": str(out.parent / "profiles")}
    with out.open("w", encoding="utf-8") as sink:
        for command in commands:
            print("[bench]", " ".join(command[1:]), flush=True)
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
            )
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith("{"):
                    sink.write(line)
            if proc.wait() != 0:
                raise SystemExit(f"[bench] {' '.join(command[1:])} failed")


def _label(record):
    parts = [record["bench"]]
    for key in ("load", "clients"):
        if key in record and record[key] is not None:
            parts.append(f"{key}={record[key]}")
    return " ".join(parts)


def evaluate(records):
    """Rows ``(label, figure, value, op, target, met, why)``."""
    rows = []
    for bench, selector, figure, op, target, why in TARGETS:
        for record in records:
            if record.get("bench") != bench or figure not in record:
                continue
            if any(record.get(k) != v for k, v in selector.items()):
                continue
            value = record[figure]
            rows.append(
                (_label(record), figure, value, op, target, OPS[op](value, target), why)
            )
    for bench, figure in REPORTED:
        for record in records:
            if record.get("bench") == bench and figure in record:
                rows.append(
                    (_label(record), figure, record[figure], "", None, None, "")
                )
    return rows


def markdown(rows, started):
    lines = [
        f"# Benchmark report — {started} UTC",
        "",
        "Each figure is measured against a floor or ceiling taken in the same run "
        "on this machine (see bench/*.py for what each one is).",
        "",
        "| benchmark | figure | value | target | met |",
        "|---|---|---|---|---|",
    ]
    for label, figure, value, op, target, met, _ in rows:
        shown_target = f"{op} {target}" if target is not None else "—"
        verdict = {True: "yes", False: "**no**", None: "—"}[met]
        lines.append(f"| {label} | {figure} | {value} | {shown_target} | {verdict} |")
    met = [r for r in rows if r[5] is not None]
    lines += ["", f"{sum(r[5] for r in met)} of {len(met)} targets met."]
    return "\n".join(lines) + "\n"


def chart(rows, path):
    """Each targeted figure as a share of its target (≥ 1: met)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targeted = [r for r in rows if r[4] is not None]
    labels = [f"{r[0]}\n{r[1]} {r[3]} {r[4]}" for r in targeted]
    scores = [
        (r[2] / r[4]) if r[3] == ">=" else (r[4] / r[2] if r[2] else 0.0)
        for r in targeted
    ]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(targeted) + 1.5))
    colours = ["#2e7d32" if r[5] else "#c62828" for r in targeted]
    ax.barh(range(len(targeted)), scores, color=colours)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(targeted)), labels, fontsize=7)
    ax.invert_yaxis()
    for y, (score, row) in enumerate(zip(scores, targeted, strict=True)):
        ax.text(score, y, f" {row[2]}", va="center", fontsize=7)
    ax.set_xlabel("figure ÷ target (≥ 1 meets it; for ≤ targets, target ÷ figure)")
    ax.set_title("Benchmarks against their targets (floors measured in the same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Curves: how a cost grows with the work. bench -> (x, x label, (y, y label),
# (second y, its label)).
CURVES = {
    "send_code_curve": ("connections", "connections (wrk)", ("rps", "req/s"),
                        ("p99_ms", "p99 ms")),
    "login_curve": ("connections", "connections (wrk)", ("rps", "req/s"),
                    ("p99_ms", "p99 ms")),
    "oneroster_import_curve": ("students", "students", ("seconds", "seconds"),
                               ("peak_pss_mib", "peak PSS MiB")),
    "registry_verification_curve": ("registry_rows", "registry rows",
                                    ("inside_p50_ms", "p50 ms"),
                                    ("inside_p99_ms", "p99 ms")),
    "burst_one_phone": ("concurrent", "concurrent sends to one phone",
                        ("sent", "codes sent"), ("seconds", "seconds")),
}  # fmt: skip


def curve_points(records, bench, x_key):
    points = sorted(
        (r[x_key], r) for r in records if r.get("bench") == bench and x_key in r
    )
    return [r for _, r in points]


def curves(records, path):
    """Each curve measured in this run, one panel each; None when none was."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [b for b, spec in CURVES.items() if curve_points(records, b, spec[0])]
    if not present:
        return None
    fig, axes = plt.subplots(
        1, len(present), figsize=(5.5 * len(present), 4), squeeze=False
    )
    for ax, bench in zip(axes[0], present, strict=True):
        x_key, x_label, (y_key, y_label), (y2_key, y2_label) = CURVES[bench]
        points = curve_points(records, bench, x_key)
        xs = [p[x_key] for p in points]
        nan = float("nan")  # a point wrk measured no latency for
        ax.plot(xs, [p.get(y_key, nan) for p in points], "o-", color="#1565c0")
        ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label, color="#1565c0")
        second = ax.twinx()
        second.plot(
            xs,
            [nan if p.get(y2_key) is None else p[y2_key] for p in points],
            "s--",
            color="#c62828",
        )
        second.set_ylabel(y2_label, color="#c62828")
        for p in points:
            if p.get("non_2xx"):
                ax.annotate(f"{p['non_2xx']} non-2xx", (p[x_key], p[y_key]), fontsize=7)
        ax.set_title(bench, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cell(value):
    if isinstance(value, dict):  # {"ok": 1194, "refused": 1} -> ok 1194, refused 1
        return ", ".join(f"{key} {count}" for key, count in sorted(value.items()))
    return str(value)


def curve_markdown(records):
    lines = []
    for bench, (x_key, _, (y_key, _), (y2_key, _)) in CURVES.items():
        points = curve_points(records, bench, x_key)
        if not points:
            continue
        extra = (
            "non_2xx" if bench.endswith("_curve") and "non_2xx" in points[0] else None
        )
        header = [x_key, y_key, y2_key] + ([extra] if extra else [])
        # what each non-2xx was: the callee's calls by outcome
        header += [key for key in points[0] if key.endswith("_outcomes")]
        lines += ["", f"## {bench}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]  # fmt: skip
        lines += [
            "| " + " | ".join(_cell(p.get(k)) for k in header) + " |" for p in points
        ]
    return "\n".join(lines) + ("\n" if lines else "")


def write_report(jsonl, out_dir, started):
    records = [json.loads(line) for line in jsonl.read_text().splitlines() if line]
    rows = evaluate(records)
    text = markdown(rows, started) + curve_markdown(records)
    if curves(records, out_dir / "curves.png"):
        text += "\n![curves](curves.png)\n"
    (out_dir / "report.md").write_text(text, encoding="utf-8")
    chart(rows, out_dir / "ratios.png")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--from", dest="source", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    out_dir = ROOT / ".artifacts" / "bench" / started
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / "results.jsonl"
    if args.source:
        jsonl.write_text(args.source.read_text())
    else:
        run_benchmarks(args.quick, jsonl)
    rows = write_report(jsonl, out_dir, started)
    print((out_dir / "report.md").read_text())
    print(f"[bench] report: {out_dir}/report.md, chart: {out_dir}/ratios.png")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
