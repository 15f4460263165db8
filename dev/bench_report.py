"""BENCHMARKS.md from the results of one `make bench` run.

Everything is generated except the Findings section, which is written by people from the
figures and kept from one run to the next (between the two findings markers).
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

from dev.bench_util import median

FINDINGS_START = "<!-- findings:start (kept by make bench; edit freely) -->"
FINDINGS_END = "<!-- findings:end -->"
DEFAULT_FINDINGS = "_No findings written yet._"


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _kept_findings(path: pathlib.Path) -> str:
    if not path.exists():
        return DEFAULT_FINDINGS
    text = path.read_text()
    start, end = text.find(FINDINGS_START), text.find(FINDINGS_END)
    if start < 0 or end < start:
        return DEFAULT_FINDINGS
    return text[start + len(FINDINGS_START) : end].strip() or DEFAULT_FINDINGS


def _load_medians(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, runs in results["load"]["runs"].items():
        out[key] = {
            m: median([r[m] for r in runs])
            for m in (
                "rps",
                "p50_ms",
                "p99_ms",
                "server_cpu_ms",
                "pg_cpu_ms",
                "client_cpu_share",
                "connections_per_100",
            )
            if runs and m in runs[0]
        }
        hello_runs = results["load"]["runs"]["hello"]
        out[key]["round_ratios"] = [r["rps"] / h["rps"] for r, h in zip(runs, hello_runs, strict=False) if h["rps"]]
    return out


def targets_table(results: dict[str, Any], m: dict[str, dict[str, Any]]) -> list[str]:
    hello = m["hello"]["rps"]
    rows = [
        "| figure | measured (as shipped) | with the candidates | target | met as shipped |",
        "|---|---|---|---|---|",
    ]

    def row(figure: str, shown: str, candidate: str, target: str, ok: bool | None) -> None:
        met = "—" if ok is None else ("yes" if ok else "no")
        rows.append(f"| {figure} | {shown} | {candidate} | {target} | {met} |")

    rows_n = results["seed"]["total_tasks"]
    for key, figure in (
        ("progress", "progress callback req/s ÷ hello-world req/s"),
        ("active", f"active tasks ({rows_n:,} tasks) req/s ÷ hello-world"),
        ("metrics", "metrics req/s ÷ hello-world"),
    ):
        ratio = m[key]["rps"] / hello if hello else None
        cand = m.get(f"{key}+c", {}).get("rps")
        cand_ratio = cand / hello if cand and hello else None
        row(figure, _f(ratio, 2), _f(cand_ratio, 2), "≥ 0.6", None if ratio is None else ratio >= 0.6)
    trips = results["round_trips"]["progress"]["trips"]
    cand_trips = results.get("round_trips_candidates", {}).get("progress", {}).get("trips", "—")
    row("round trips per progress callback (pg8000)", str(trips), str(cand_trips), "≤ 3", trips <= 3)
    cold = results["cold_start"]
    dash = median([r["first_answer_s"] for r in cold.get("dashboard", [])])
    base = median([r["first_answer_s"] for r in cold.get("minimal (ff + SQLAlchemy + pg8000, SELECT 1)", [])])
    ratio = dash / base if base else None
    row(
        "cold start of the dashboard function ÷ minimal function",
        f"{_f(dash, 2)} s ÷ {_f(base, 2)} s = {_f(ratio, 2)}",
        "—",
        "≤ 1.3",
        None if ratio is None else ratio <= 1.3,
    )
    own = results["pipeline"]["own_ms_p50"]
    cand_own = results.get("pipeline_candidates", {}).get("own_ms_p50")
    row("Planter's own time per pipeline step, p50", f"{_f(own, 1)} ms", f"{_f(cand_own, 1)} ms", "≤ 10 ms", own <= 10)
    return rows


def write_report(results: dict[str, Any], path: pathlib.Path, *, write: bool = True) -> str:
    m = _load_medians(results)
    s = results["settings"]
    mc = results["machine"]
    seed = results["seed"]
    hello = m["hello"]["rps"]
    lines: list[str] = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`{results['command']}`, dev/bench.py) on **{results['date']}**, in "
        f"{results['elapsed_s'] / 60:.1f} minutes. Everything below is generated except the Findings, which the "
        "command keeps. These machines are shared and noisy: the figures that count are the **ratios measured "
        f"in the same run**, each from {s['reps']} interleaved repetitions (medians quoted).",
        "",
        "## How to run",
        "",
        "```",
        "make bench                      # the full run, rewrites this file (~6-8 minutes)",
        ".venv/bin/python -m dev.bench --quick   # a smoke run: 100k tasks, one short repetition, writes nothing",
        "WORKERS=2 THREADS=8 DB_POOL_SIZE=4 make bench   # other server settings",
        "```",
        "",
        "Raw results: `.local/bench/results.json`; py-spy profiles: `.local/bench/profile-*.raw` (collapsed stacks).",
        "",
        "## Machine, settings, method",
        "",
        f"- Machine: {mc['cpu']}, {mc['cores']} cores, {mc['memory']}, Linux {mc['kernel']}, Python {mc['python']}, "
        f"PostgreSQL {results.get('postgres', '?')} (pgserver, unix socket). Load average "
        f"{' / '.join(f'{x:.1f}' for x in mc['load_before'])} before, "
        f"{' / '.join(f'{x:.1f}' for x in mc['load_after'])} after (other jobs share the machine).",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in mc["packages"].items()) + ".",
        f"- Server settings (production defaults unless overridden): `WORKERS={s['WORKERS']}`, "
        f"`THREADS={s['THREADS']}` (functions-framework's gunicorn gthread), `DB_POOL_SIZE={s['DB_POOL_SIZE']}`, "
        f"`DB_MAX_OVERFLOW={s['DB_MAX_OVERFLOW']}`. The hot paths are served by the local gateway "
        "(dev/gateway.py, every route in one functions-framework process, the production code path); the "
        "ceiling by dev/bench_hello.py:hello under the same settings.",
        f"- Load: {s['connections']} keep-alive connections, one request in flight on each, "
        f"{s['warmup_s']:g} s warm-up then {s['duration_s']:g} s measured, {s['reps']} rounds; each round runs "
        "hello then every path, so drift hits the ceiling and the paths alike. Load generator: "
        "dev/bench_util.py (asyncio over raw sockets, in the bench process; see the generator check).",
        f"- Data: {seed['total_tasks']:,} tasks over 10,001 users, filled in SQL (dev/bench_seed.py, "
        f"{seed['seconds']:.0f} s). The bench user owns {seed['bench_tasks']:,} of them, {seed['bench_active']} "
        f"active; {seed['step_rows']:,} step rows (the bench user's tasks). Progress callbacks go to 64 tasks "
        "in turn, task reads to 64 of the bench user's tasks.",
        "- CPU per request: CPU time of the server's process tree and of PostgreSQL over the run, divided by the "
        "requests answered (warm-up included). New DB connections: `pg_stat_database.sessions` over the run, per 100 "
        "requests (a pool that closes and reopens connections pays a PostgreSQL backend start each time; through the "
        "Cloud SQL connector, a TLS handshake too).",
        '- **The candidates** (rows marked "with the candidates"): the Findings\' recommendations not yet in '
        "Planter, written out in dev/bench_candidates.py and measured next to the shipped code in the same run: "
        "the pipeline's claim committed without waiting for the WAL flush. A recommendation that lands leaves "
        "the list and is measured as shipped.",
        "",
        "## Targets",
        "",
        *targets_table(results, m),
        "",
        "## Hot paths against the HTTP ceiling (16 connections)",
        "",
        "| path | req/s | p50 ms | p99 ms | ÷ hello | per-round ÷ hello | server CPU ms/req | PostgreSQL CPU ms/req "
        "| DB round trips | new DB connections per 100 requests |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"hello": "**hello-world ceiling** (dev/bench_hello.py)"} | {
        k: v["name"] for k, v in results["paths"].items()
    }
    rt_shipped = results["round_trips"]
    rt_cand = results.get("round_trips_candidates", {})
    for key, med in m.items():
        base = key.removesuffix("+c")
        candidate = key.endswith("+c")
        if key == "hello":
            trips: Any = 0
        else:
            trips = (rt_cand if candidate else rt_shipped).get(base, {}).get("trips", "—")
        label = "↳ same, **with the candidates** (dev/bench_candidates.py)" if candidate else names[key]
        ratios = med["round_ratios"]
        ratio_range = "—" if key == "hello" or not ratios else f"{min(ratios):.2f}-{max(ratios):.2f}"
        status = results["load"]["first_status"].get(key)
        note = f" (answers {status})" if status not in (None, 200) else ""
        lines.append(
            f"| {label}{note} | {_f(med['rps'], 0)} | {_f(med['p50_ms'])} | {_f(med['p99_ms'])} "
            f"| {_f(med['rps'] / hello, 2) if hello else '—'} | {ratio_range} | {_f(med.get('server_cpu_ms'), 2)} "
            f"| {_f(med.get('pg_cpu_ms'), 2)} | {trips} | {_f(med.get('connections_per_100'), 1)} |"
        )
    gen = results["generator_check"]
    lines += [
        "",
        "### Generator check",
        "",
        f"The same generator against hello with `WORKERS=2`: **{_f(gen['rps'], 0)} req/s** "
        f"({_f(gen['rps'] / hello, 1) if hello else '—'} times the ceiling above) at p50 {_f(gen['p50_ms'])} ms, using "
        f"{_pct(gen['client_cpu_share'])} of one core ({_f(gen['client_cpu_us'], 0)} µs of CPU per request). "
        f"During the ceiling runs it used {_pct(m['hello']['client_cpu_share'])} of a core: the ceiling is the "
        "server's, not the generator's.",
        "",
    ]
    lines += _db_section(results)
    lines += _pipeline_section(results)
    lines += _cold_section(results)
    lines += _profile_section(results)
    lines += ["## Findings", "", FINDINGS_START, _kept_findings(path), FINDINGS_END, ""]
    text = "\n".join(lines)
    if write:
        path.write_text(text)
    return text


def _db_section(results: dict[str, Any]) -> list[str]:
    dbc = results["db_ceiling"]
    rt = results["round_trips"]
    trips_of = {"progress write": rt["progress"]["trips"], "task read": rt["get_task"]["trips"]}
    lines = [
        "## The database ceiling",
        "",
        f"The progress callback's write (and the task read) in a tight loop through the services: one process, "
        f"{dbc['threads']} threads, a pool of {dbc['pool']} pg8000 connections, no HTTP. The variants run in the "
        "same rounds: commits that do not wait for the WAL flush show what durability costs on this disk, and "
        "pg8000's own placeholder rewrite (when Planter caches it) shows what the cache saves.",
        "",
        "| variant | transactions/s | p50 ms | round trips |",
        "|---|---|---|---|",
    ]
    for name, data in dbc["variants"].items():
        trips = next((v for k, v in trips_of.items() if name.startswith(k)), "—")
        lines.append(f"| {name} | {_f(median(data['runs']), 0)} | {_f(median(data['p50_ms']), 2)} | {trips} |")
    checks = results.get("candidate_checks", {})
    if checks:
        lines += [
            "",
            "The one-statement candidate was checked against the service's behaviour in this run: "
            + ", ".join(f"{k.replace('_', ' ')} {'ok' if v else 'FAILED'}" for k, v in checks.items())
            + ".",
        ]
    prim = results.get("db_primitives", {})
    if prim:
        lines += [
            "",
            "What one exchange costs here (single thread, pg8000 on the unix socket, autocommit):",
            "",
            "| primitive | p50 ms |",
            "|---|---|",
            *[f"| {k} | {_f(v, 3)} |" for k, v in prim.items()],
        ]
    items = results.get("cpu_items", {})
    if items:
        lines += [
            "",
            "## Per-request work outside the database (single thread, in-process, µs per call)",
            "",
            "| item | µs |",
            "|---|---|",
            *[f"| {k} | {_f(v, 0)} |" for k, v in items.items()],
        ]
    lines += [
        "",
        "## Database round trips per request",
        "",
        "Counted in the bench process by a shim around pg8000 (each flush of its socket buffer waits for the "
        "server's answer), on a warm request through the gateway in-process (user cached, pool warm). pg8000 sends "
        "a statement with parameters as Parse/Sync, Describe/Sync, Bind/Execute/Sync: **three round trips**; "
        "its COMMIT is such a statement too (three), its BEGIN a simple query (one).",
        "",
        "The last two columns: the characters of SQL pg8000 scanned to rewrite `%s` into `$n` (in Python, one "
        "character at a time, on every execution) and the time that took, in this process.",
        "",
        "Planning and execution: what `EXPLAIN (ANALYZE, SUMMARY)` reports for the same statements with the same "
        "values (in a transaction rolled back). pg8000 sends every statement unnamed, so PostgreSQL plans it "
        "again on every request.",
        "",
        "| request | round trips | statements | SQL chars scanned | paramstyle rewrite ms | PostgreSQL planning ms "
        "| PostgreSQL execution ms |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "progress": "progress callback",
        "get_task": "GET task",
        "active": "active tasks",
        "metrics": "metrics",
        "healthz": "healthz",
        "get_task_first_sight": "GET task, the user's first request on an instance (user upsert)",
    }

    def cells(data: dict[str, Any]) -> str:
        chars = data.get("sql_chars")
        ms = data.get("paramstyle_ms")
        return (
            f"{data['trips']} | {data['statements']} | {'—' if chars is None else f'{chars:,}'} | {_f(ms, 2)} "
            f"| {_f(data.get('planning_ms'), 2)} | {_f(data.get('execution_ms'), 2)}"
        )

    for key, label in labels.items():
        if key in rt:
            lines.append(f"| {label} | {cells(rt[key])} |")
    for key, data in results.get("round_trips_candidates", {}).items():
        lines.append(f"| {labels.get(key, key)}, **with the candidates** | {cells(data)} |")
    lines.append("")
    return lines


def _pipeline_section(results: dict[str, Any]) -> list[str]:
    p = results["pipeline"]
    c = results.get("pipeline_candidates") or {}
    steps_per_task = max(1, len(p["trips_by_step"]))

    def cand(key: str, digits: int = 2) -> str:
        return _f(c.get(key), digits) + " ms" if c else "—"

    lines = [
        "## Pipeline overhead per step",
        "",
        f"`run_step` in-process over {p['steps']} steps ({steps_per_task} steps x {p['steps'] // steps_per_task} "
        f"tasks; outcomes: {', '.join(p['outcomes'])}) with the simulated provider at zero seconds and a recording "
        "enqueuer: Planter's own time is the step's time minus the provider's. The candidates column runs the same "
        "on as many other tasks of the same shape, task by task in turn with the shipped ones, with "
        "dev/bench_candidates.py applied in the bench process for those tasks only.",
        "",
        "| per step (p50) | as shipped | with the candidates |",
        "|---|---|---|",
        f"| **Planter's own time** (claim + heartbeat thread + record + hand-over) | **{_f(p['own_ms_p50'], 2)} ms** "
        f"(p99 {_f(p['own_ms_p99'], 2)} ms) | {cand('own_ms_p50')} |",
        f"| claim transaction | {_f(p['claim_ms_p50'], 2)} ms | {cand('claim_ms_p50')} |",
        f"| record transaction | {_f(p['record_ms_p50'], 2)} ms | {cand('record_ms_p50')} |",
        f"| hand-over to a recording enqueuer | {_f(p['handover_ms_p50'], 3)} ms | {cand('handover_ms_p50', 3)} |",
        f"| provider (simulated, zero seconds) | {_f(p['provider_ms_p50'], 3)} ms | {cand('provider_ms_p50', 3)} |",
        f"| database round trips | {_f(p['trips_median'], 0)} "
        f"({', '.join(f'{k} {v}' for k, v in p['trips_by_step'].items())}) "
        f"| {_f(c.get('trips_median'), 0) if c else '—'} |",
    ]
    enq = p.get("enqueue")
    if enq:
        lines += [
            f"| hand-over through the real Cloud Tasks client to the local stand-in | {_f(enq['call_p50_ms'], 2)} ms "
            f"(first call, with the client's import and channel: {_f(enq['first_call_ms'], 0)} ms) | |",
            f"| queue delivery (stand-in → step URL) | {_f(enq['delivery_p50_ms'], 1)} ms "
            f"({enq['delivered']} of 20 delivered) | |",
        ]
    lines += [
        "",
        f"Statements of a middle step: {p['statements_middle_step']}.",
        "",
        f"Statements of the last step: {p['statements_last_step']}.",
        "",
    ]
    if c:
        lines += [f"With the candidates, a middle step: {c['statements_middle_step']}.", ""]
    return lines


def _cold_section(results: dict[str, Any]) -> list[str]:
    cold = results["cold_start"]
    base_label = "minimal (ff + SQLAlchemy + pg8000, SELECT 1)"
    base = median([r["first_answer_s"] for r in cold.get(base_label, [])])
    lines = [
        "## Cold start: process start → first answer",
        "",
        "`functions-framework --source main.py --target <function>` started afresh, polled every 5 ms, timed to "
        "the first answer of a real request (the function's own route, authenticated, touching the database). "
        "The minimal function imports only functions-framework, SQLAlchemy and pg8000 and answers after one "
        "`SELECT 1` on a lazily created engine. Medians of the runs; the pages and bytecode were warmed by a "
        "discarded start first.",
        "",
        "| function | first answer (median) | ÷ minimal | listening after | runs (s) | status |",
        "|---|---|---|---|---|---|",
    ]
    for label, runs in cold.items():
        first = median([r["first_answer_s"] for r in runs])
        listen = median([r["listening_s"] for r in runs])
        statuses = sorted({r["status"] for r in runs})
        lines.append(
            f"| {label} | {_f(first, 2)} s | {_f(first / base, 2) if base else '—'} | {_f(listen, 2)} s "
            f"| {', '.join(_f(r['first_answer_s'], 2) for r in runs)} | {', '.join(map(str, statuses))} |"
        )
    probes = results.get("import_probes", {})
    if probes:
        lines += [
            "",
            "### What each function loads (fresh interpreter, first request in-process)",
            "",
            "`python -X importtime -m dev.bench_probe` per function: the time to import `main`, the time of the "
            "first request through the function's entry point (handler import, engine, connection, query), the "
            "heavy modules present after the import and those the first request added, and the packages with the "
            "most import self-time in that process (importtime's own overhead inflates these).",
            "",
            "| function | import main | first request | heavy at import | added by first request | top import "
            "self-time |",
            "|---|---|---|---|---|---|",
        ]
        for fn, info in probes.items():
            if "error" in info:
                lines.append(f"| {fn} | error: {info['error'][-120:]!r} | | | | |")
                continue
            top = ", ".join(f"{c['package']} {c['self_ms']:.0f}" for c in info["top_imports"][:5])
            lines.append(
                f"| {fn} | {_f(info['import_s'], 2)} s | {_f(info['first_request_s'], 2)} s "
                f"| {', '.join(info['heavy_at_import']) or '—'} "
                f"| {', '.join(info['heavy_after_first_request']) or '—'} "
                f"| {top} (ms) |"
            )
    imp = results.get("import_main")
    if imp:
        lines += [
            "",
            f'### `python -X importtime -c "import main"`: {_f(imp["main_cumulative_ms"], 0)} ms cumulative for '
            f"`main`, {_f(imp.get('main_total_ms'), 0)} ms of imports in all, against "
            f"{_f(imp.get('minimal_total_ms'), 0)} ms for `import functions_framework, sqlalchemy, pg8000`",
            "",
            "Top offenders (self time summed per top-level package), and what `main` imports beyond the minimal "
            "function (the difference per package):",
            "",
            "| package | self ms in `import main` | modules | | package | ms beyond the minimal function |",
            "|---|---|---|---|---|---|",
        ]
        beyond = imp.get("beyond_minimal", [])
        for i in range(max(len(imp["top"]), len(beyond))):
            left = imp["top"][i] if i < len(imp["top"]) else None
            right = beyond[i] if i < len(beyond) else None
            lcell = f"{left['package']} | {left['self_ms']:.0f} | {left['modules']}" if left else " | | "
            rcell = f"{right['package']} | {right['extra_ms']:.0f}" if right else " | "
            lines.append(f"| {lcell} | | {rcell} |")
        heavy = imp.get("heavy", {})
        if heavy:
            lines += [
                "",
                "The heavy libraries, each imported alone in a fresh interpreter (cumulative ms; importtime inflates "
                "all of these a little):",
                "",
                "| module | import ms | of which aiohttp | of which cryptography |",
                "|---|---|---|---|",
                *[
                    f"| `{m}` | {_f(h['cumulative_ms'], 0)} | {_f(h['aiohttp_ms'], 0)} "
                    f"| {_f(h['cryptography_ms'], 0)} |"
                    for m, h in heavy.items()
                ],
            ]
    lines.append("")
    return lines


def _profile_section(results: dict[str, Any]) -> list[str]:
    profiles = results.get("profiles", {})
    if not profiles:
        return []
    if "skipped" in profiles:
        return ["## Profiles", "", f"Skipped: {profiles['skipped']}.", ""]
    lines = [
        "## Profiles of the server under load (py-spy, GIL-holding samples)",
        "",
        "`py-spy record --gil --subprocesses --nonblocking --rate 250` on the functions process during a load run "
        "of each path. With one worker, the thread holding the GIL is what bounds throughput, so these shares say "
        "where a request's server CPU goes. Each sample is charged to the innermost frame in a known package (or in "
        "Planter's own code), looking outwards from the leaf past the standard library. GIL ms/request is samples "
        "÷ rate ÷ requests (py-spy in non-blocking mode misses some samples: a lower bound).",
        "",
    ]
    owners: list[str] = []
    for data in profiles.values():
        for name, _ in data["by_owner"]:
            if name not in owners:
                owners.append(name)
    keys = list(profiles)
    lines += [
        "| owner | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for owner in owners:
        cells = []
        for key in keys:
            share = dict(profiles[key]["by_owner"]).get(owner)
            cells.append(_pct(share) if share else "—")
        lines.append(f"| {owner} | " + " | ".join(cells) + " |")
    lines.append(
        "| **GIL ms per request** | " + " | ".join(_f(profiles[k]["gil_ms_per_request"], 2) for k in keys) + " |"
    )
    for key in keys:
        if key == "hello":
            continue
        data = profiles[key]
        lines += [
            "",
            f"**{key}**: Planter's frames, inclusive share of samples: "
            + "; ".join(f"`{name}` {_pct(share)}" for name, share in data["planter"][:10]),
            "",
            "Hottest leaf lines: " + "; ".join(f"`{name}` {_pct(share)}" for name, share in data["leaf"][:8]),
        ]
    lines.append("")
    return lines
