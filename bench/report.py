"""The results: ratios to the ceilings, the issue's targets, a table for stdout, a JSON file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

# Issue 5's targets on the 2-core reference machine (100-patient set, PostgreSQL).
INGEST_MIN = 1500.0  # resources/s
READ_MIN = 1000.0  # requests/s at 16 clients
READ_P99_MAX = 50.0  # ms at 16 clients
READ_CEILING_MIN = 0.5  # of the minimal WSGI app at 16 clients
READ_TOKEN_MIN = 0.85  # read with a valid bearer token, of the same read with auth off (issue #8)
# Issue #9: the read with a token, audited (an AuditEvent per read, buffered), against the same
# read with auth and the audit trail off (FHIR_AUDIT=false: the read-unaudited server).
READ_AUDITED_MIN = 0.75
SEARCH_P95_MAX = 30.0  # ms at 4 clients
EVERYTHING_LONG_MAX = 100.0  # ms: $everything of a patient with 500 resources (issue 14)
COUNT_MAX = 500.0  # ms (the issue asks it over 100k matching Observations)
MEMORY_GROWTH_MAX_PCT = 5.0  # "flat": less than this over the measured mixed phase


def _by(results: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [w for w in results.get("workloads", []) if w["group"] == group]


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ingest = results.get("ingest")
    copy = (results.get("ceilings") or {}).get("copy")
    if ingest and copy:
        out["ingest_vs_copy"] = round(ingest["resources_per_s"] / copy["resources_per_s"], 4)
    levels = results.get("ingest_levels") or {}
    if levels.get("full_vs_standard"):
        out["ingest_full_vs_standard"] = levels["full_vs_standard"]
    lastn = {w["name"]: w for w in _by(results, "lastn")}
    vitals = lastn.get("$lastn Observation?patient&category=vital-signs&max=3")
    yardstick = next((w for name, w in lastn.items() if "yardstick" in name), None)
    if vitals and yardstick and vitals["p95_ms"] and yardstick["p95_ms"]:
        out["lastn_vs_plain_search_p95"] = round(vitals["p95_ms"] / yardstick["p95_ms"], 3)
    for key, ours, theirs in (
        ("read_vs_ceiling", "read", "ceiling-read"),
        ("read_token_vs_open", "read-token", "read"),
        ("read_audited_vs_unaudited", "read-token", "read-unaudited"),
        ("read_consent_vs_token", "read-token-consent", "read-token"),
        ("read_consent_vs_unaudited", "read-token-consent", "read-unaudited"),
    ):
        ratio = _throughput_ratio(results, ours, theirs)
        if ratio:
            out[key] = ratio
    return out


def _throughput_ratio(results: dict[str, Any], ours: str, theirs: str) -> dict[str, float]:
    """Throughput of workload group `ours` over `theirs`, per concurrency measured in both."""
    baseline = {w["concurrency"]: w for w in _by(results, theirs)}
    out = {}
    for mine in _by(results, ours):
        other = baseline.get(mine["concurrency"])
        if other and other["throughput"]:
            out[str(mine["concurrency"])] = round(mine["throughput"] / other["throughput"], 3)
    return out


def _target(name: str, goal: str, measured: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    return {"target": name, "goal": goal, "measured": measured, "met": ok, "note": note}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    ingest = results.get("ingest")
    if ingest:
        rate = ingest["resources_per_s"]
        out.append(
            _target(
                "ingest",
                f">= {INGEST_MIN:.0f} resources/s",
                rate,
                rate >= INGEST_MIN,
                "" if ingest["errors"] == 0 else f"{ingest['errors']} failed bundles",
            )
        )
    reads = {w["concurrency"]: w for w in _by(results, "read")}
    top = reads.get(16) or (reads[max(reads)] if reads else None)
    if top:
        c = top["concurrency"]
        out.append(
            _target(
                f"read by id, {c} clients",
                f">= {READ_MIN:.0f} requests/s",
                top["throughput"],
                top["throughput"] >= READ_MIN,
            )
        )
        out.append(
            _target(
                f"read by id p99, {c} clients",
                f"< {READ_P99_MAX:.0f} ms",
                top["p99_ms"],
                top["p99_ms"] is not None and top["p99_ms"] < READ_P99_MAX,
            )
        )
        ratio = results.get("ratios", {}).get("read_vs_ceiling", {}).get(str(c))
        if ratio is not None:
            out.append(
                _target(
                    f"read by id vs ceiling, {c} clients",
                    f">= {READ_CEILING_MIN:.0%} of the ceiling",
                    ratio,
                    ratio >= READ_CEILING_MIN,
                )
            )
    token_ratio = results.get("ratios", {}).get("read_token_vs_open", {})
    if token_ratio:
        c = "16" if "16" in token_ratio else max(token_ratio, key=int)
        out.append(
            _target(
                f"read by id with a bearer token vs auth off, {c} clients",
                f">= {READ_TOKEN_MIN:.0%} of the same read with auth off",
                token_ratio[c],
                token_ratio[c] >= READ_TOKEN_MIN,
            )
        )
    audited_ratio = results.get("ratios", {}).get("read_audited_vs_unaudited", {})
    if audited_ratio:
        c = "16" if "16" in audited_ratio else max(audited_ratio, key=int)
        out.append(
            _target(
                f"audited read by id with a bearer token vs auth and audit off, {c} clients (issue 9)",
                f">= {READ_AUDITED_MIN:.0%} of the same read with auth and the audit trail off",
                audited_ratio[c],
                audited_ratio[c] >= READ_AUDITED_MIN,
            )
        )
    for search in _by(results, "search"):
        ok = search["p95_ms"] is not None and search["p95_ms"] < SEARCH_P95_MAX and not search["errors"]
        out.append(
            _target(
                search["name"],
                f"p95 < {SEARCH_P95_MAX:.0f} ms at 4 clients",
                search["p95_ms"],
                ok,
                f"{search['errors']} errors" if search["errors"] else "",
            )
        )
    for count in _by(results, "count"):
        ok = count["p95_ms"] is not None and count["p95_ms"] < COUNT_MAX and not count["errors"]
        out.append(
            _target(
                count["name"],
                f"< {COUNT_MAX:.0f} ms (over 100k matches)",
                count["p95_ms"],
                ok,
                f"p95 over {count.get('matches_mean', '?')} matches, not 100k",
            )
        )
    for chart in _by(results, "everything-long"):
        ok = chart["p95_ms"] is not None and chart["p95_ms"] < EVERYTHING_LONG_MAX and not chart["errors"]
        out.append(_target(chart["name"] + " (issue 14)", f"p95 < {EVERYTHING_LONG_MAX:.0f} ms, one client",
                           chart["p95_ms"], ok, f"{chart['errors']} errors" if chart["errors"] else ""))
    memory = results.get("memory")
    if memory and "growth_pct" in memory:
        growth = memory["growth_pct"]
        out.append(
            _target(
                "memory flat under mixed load",
                f"growth < {MEMORY_GROWTH_MAX_PCT:.0f}%",
                growth,
                growth is not None and growth < MEMORY_GROWTH_MAX_PCT,
                f"{memory['growth_mb']} MB over {memory['seconds']} s, {memory['slope_mb_per_min']} MB/min",
            )
        )
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(results: dict[str, Any]) -> str:
    rows = [("workload", "clients", "throughput", "p50 ms", "p95 ms", "p99 ms", "errors", "note")]
    ingest = results.get("ingest")
    if ingest:
        rows.append(
            (
                "ingest: transaction bundle per patient",
                _fmt(ingest["concurrency"]),
                f"{_fmt(ingest['resources_per_s'])} res/s",
                _fmt(ingest["p50_ms"]),
                _fmt(ingest["p95_ms"]),
                _fmt(ingest["p99_ms"]),
                _fmt(ingest["errors"]),
                f"{ingest['bundles']} bundles: {ingest['resources_created']} resources created "
                f"in {ingest['seconds']:.1f} s ({ingest['entries_per_s']} entries/s)",
            )
        )
    for level, figures in (results.get("ingest_levels") or {}).items():
        if isinstance(figures, dict):
            rows.append(
                (
                    f"ingest at FHIR_VALIDATION_LEVEL={level}",
                    "",
                    f"{_fmt(figures['resources_per_s'])} res/s",
                    "",
                    "",
                    "",
                    _fmt(figures["errors"]),
                    f"{figures['resources_created']} resources in {figures['seconds']:.1f} s, by turns with the "
                    "other level",
                )
            )
    for key, label in (
        ("copy", "ceiling: PostgreSQL COPY, bare text table"),
        ("copy_jsonb", "ceiling: PostgreSQL COPY, bare jsonb table"),
    ):
        copy = (results.get("ceilings") or {}).get(key)
        if copy:
            rows.append(
                (
                    label,
                    "1",
                    f"{_fmt(copy['resources_per_s'])} res/s",
                    "",
                    "",
                    "",
                    "",
                    f"{copy['resources']} rows, {copy['mb_per_s']} MB/s",
                )
            )
    for w in results.get("workloads", []):
        note = ""
        if "matches_mean" in w:
            note = f"matches avg {w['matches_mean']}, max {w['matches_max']}"
            if w.get("empty_results"):
                note += f", {w['empty_results']} empty"
        if w["operations"] != w["requests"]:
            note = (note + "; " if note else "") + f"{w['operations']} ops"
        rows.append(
            (
                w["name"],
                _fmt(w["concurrency"]),
                f"{_fmt(w['throughput'])} req/s",
                _fmt(w["p50_ms"]),
                _fmt(w["p95_ms"]),
                _fmt(w["p99_ms"]),
                _fmt(w["errors"]),
                note,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = (
            [row[0].ljust(widths[0])] + [c.rjust(widths[i]) for i, c in enumerate(row[1:-1], 1)] + [row[-1]]
        )
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    text = "\n".join(lines)

    extra = []
    r = results.get("ratios", {})
    if "ingest_vs_copy" in r:
        extra.append(f"ingest / COPY ceiling: {r['ingest_vs_copy']:.1%}")
    if "read_token_vs_open" in r:
        extra.append(
            "read with a bearer token / auth off: "
            + ", ".join(f"{c} clients {v:.0%}" for c, v in r["read_token_vs_open"].items())
        )
    for key, label in (("read_audited_vs_unaudited", "audited read with a token / auth and audit off"),
                       ("read_consent_vs_token", "token read with a Consent on every patient / without"),
                       ("read_consent_vs_unaudited", "token read with a Consent on every patient / auth and audit off")):
        if key in r:
            extra.append(f"{label}: " + ", ".join(f"{c} clients {v:.0%}" for c, v in r[key].items()))
    if "read_vs_ceiling" in r:
        extra.append(
            "read / minimal WSGI ceiling: "
            + ", ".join(f"{c} clients {v:.0%}" for c, v in r["read_vs_ceiling"].items())
        )
    memory = results.get("memory")
    if memory and "growth_mb" in memory:
        extra.append(
            f"memory (workers' RSS, mixed load {memory['seconds']} s, {memory['requests']} requests): "
            f"{memory['rss_start_mb']} -> {memory['rss_end_mb']} MB ({memory['growth_mb']:+} MB, "
            f"{memory['slope_mb_per_min']:+} MB/min)"
        )
    if extra:
        text += "\n\n" + "\n".join(extra)
    checks = results.get("targets") or []
    if checks:
        text += "\n\ntargets (issue 5):\n"
        for t in checks:
            mark = {True: "met ", False: "MISS", None: "n/a "}[t["met"]]
            text += f"  [{mark}] {t['target']}: {t['goal']}; measured {_fmt(t['measured'], 2)}"
            text += f" ({t['note']})\n" if t["note"] else "\n"
    for note in results.get("notes", []):
        text += f"\nnote: {note}"
    return text.rstrip() + "\n"


def write_json(results: dict[str, Any], directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path
