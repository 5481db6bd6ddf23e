"""The bench's table, ratios and JSON: what was measured and exactly what ran."""

from __future__ import annotations

from typing import Any

from pipeline.bench.targets.base import Measurement

KINDS = ("float", "int8", "binary")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _parity(m: Measurement) -> str:
    if not m.parity:
        return "—"
    if m.parity.get("ok") is None:
        return "not checked"
    word = "ok" if m.parity["ok"] else "FAIL"
    diff = m.parity.get("max_abs_diff")
    return word if diff is None else f"{word} ({diff:.1e})"


def table(measurements: list[Measurement]) -> str:
    """A markdown table, one row per model, then the lines saying what ran."""
    head = ["model", "kind", "size KiB", "min ms", "median ms", "p90 ms", "instr/inference",
            "parity", "kernels"]  # fmt: skip
    rows = []
    for m in measurements:
        lat = m.latency()
        icount = "—" if m.instructions_per_invoke is None else f"{m.instructions_per_invoke:,}"
        rows.append([
            m.model.rsplit("/", 1)[-1], m.kind, f"{m.size_bytes / 1024:.1f}",
            _ms(lat["min_ms"]), _ms(lat["median_ms"]), _ms(lat["p90_ms"]),
            icount, _parity(m), m.kernels,
        ])  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    first = measurements[0]
    lines += [
        "",
        f"target: {first.target}; CPU: {first.cpu}; OS: {first.os}",
        f"threads: {first.threads}; {first.runs} timed runs after {first.warmup} warm-up; "
        "each inference = set input + invoke + read output",
    ]
    for note in dict.fromkeys(n for m in measurements for n in m.notes):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def ratios(measurements: list[Measurement]) -> dict[str, dict[str, float | None]]:
    """Each model against the float one: speed-up, size reduction, instruction reduction."""
    by_kind = {m.kind: m for m in measurements}
    base = by_kind.get("float")
    if base is None:
        return {}
    out = {}
    for kind, m in by_kind.items():
        if kind == "float":
            continue
        out[f"float/{kind}"] = {
            "latency": _ratio(base.latency()["median_ms"], m.latency()["median_ms"]),
            "size": _ratio(base.size_bytes, m.size_bytes),
            "instructions": _ratio(base.instructions_per_invoke, m.instructions_per_invoke),
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def ratio_table(r: dict[str, dict[str, float | None]]) -> str:
    def cell(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f}×"

    lines = ["| ratio | latency (median) | size | instructions |", "|---|---|---|---|"]
    for name, v in r.items():
        lines.append(f"| {name} | {cell(v['latency'])} | {cell(v['size'])} | "
                     f"{cell(v['instructions'])} |")  # fmt: skip
    return "\n".join(lines)


def to_json(target: str, settings: Any, measurements: list[Measurement]) -> dict[str, Any]:
    return {
        "target": target,
        "settings": {k: getattr(settings, k) for k in ("runs", "warmup", "threads", "engine")},
        "measurements": [m.to_dict() for m in measurements],
        "ratios": ratios(measurements),
    }
