"""The evaluation report: `report.md` with the figures per mode and per question type, the worst questions, and a
chart (`hit_at_k.png`: hit@k per mode, and per type the share of answers that hold the evidence and of answerable
questions wrongly called unanswerable).
"""

from __future__ import annotations

from pathlib import Path

from qa.evaluate.run import MAX_RANK, EvalReport, answer_holds_evidence, hit_curve

ALL = "all"


def write_report(reports: list[EvalReport], folder: Path, source: str, worst: int = 10) -> Path:
    """Write `report.md` (metrics and the worst questions) and `hit_at_k.png` (the chart) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_chart(reports, folder / "hit_at_k.png")

    lines = [f"# Retrieval evaluation: {source}", "",
             ("A passage hits when it contains an evidence string and, when the question names its document(s), "
              "comes from one of them. *answer holds evidence*: the answer text (what a chat user reads first) "
              "contains an evidence string; *wrongly unanswerable*: answerable questions answered 不知道."), "",
             "![hit@k, answer holds evidence, wrongly unanswerable](hit_at_k.png)", "",
             ("| mode | n | hit@1 | hit@3 | hit@5 | MRR@10 | answer holds evidence | wrongly unanswerable | "
              "unanswerable flagged | p50 ms |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        s = r.summary
        lines.append(f"| {r.mode} | {s['n']} | {s['hit@1']:.3f} | {s['hit@3']:.3f} | {s['hit@5']:.3f} | "
                     f"{s['mrr@10']:.3f} | {_share(s['answer_contains_evidence'])} | "
                     f"{s['wrongly_unanswerable']:.3f} | {_share(s['unanswerable']['flagged'] if s['unanswerable']['n'] else None)} | "
                     f"{s['latency_ms']['p50']:.1f} |")
    lines += ["", "## By question type (answerable questions)", "",
              "| mode | type | n | hit@1 | hit@3 | hit@5 | MRR@10 | answer holds evidence | wrongly unanswerable |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        for qtype, t in r.summary["by_type"].items():
            lines.append(f"| {r.mode} | {qtype} | {t['n']} | {t['hit@1']:.3f} | {t['hit@3']:.3f} | {t['hit@5']:.3f} "
                         f"| {t['mrr@10']:.3f} | {_share(t['answer_contains_evidence'])} | "
                         f"{t['wrongly_unanswerable']:.3f} |")
    for r in reports:
        lines += ["", f"## Worst questions ({r.mode})", ""]
        misses = sorted((x for x in r.results if x.question.answerable),
                        key=lambda x: (x.rank is not None, -(x.rank or 0)))[:worst]
        wrong_flags = [x for x in r.results if x.question.answerable != x.answerable]
        for x in misses:
            if x.rank == 1:
                continue
            expected = " / ".join(x.question.evidence) or ", ".join(sorted(x.question.relevant_docs))
            where = f" in {', '.join(x.question.docs)}" if x.question.docs else ""
            lines += [f"### {x.question.qid} ({x.question.type}): {x.question.question}",
                      f"- rank of first hit: {x.rank or 'none in top 10'}",
                      f"- expected: {expected}{where}",
                      f"- got first: {_one_line(x.top_passages[0]) if x.top_passages else '(nothing)'}", ""]
        found_not_said = [x for x in r.results if x.question.answerable and x.question.evidence and x.answerable
                          and x.rank is not None and not answer_holds_evidence(x)][:worst]
        if found_not_said:
            lines += [f"### Found but not in the answer text ({r.mode})", ""]
            lines += [f"- {x.question.qid} ({x.question.type}) {x.question.question}: first hit at rank {x.rank}; "
                      f"expected {' / '.join(x.question.evidence)}; answer: {_one_line(x.answer)}"
                      for x in found_not_said]
            lines.append("")
        if wrong_flags:
            lines += [f"### Wrong 不知道 decisions ({r.mode})", ""]
            lines += [f"- {x.question.qid} ({x.question.type}) {x.question.question}: said "
                      f"{'answerable' if x.answerable else 'unanswerable'}; answer: {_one_line(x.answer)}"
                      for x in wrong_flags]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_chart(reports: list[EvalReport], path: Path) -> None:
    """Three panels, top to bottom: hit@k per mode; per type (and all) and mode, the share of answers holding the
    evidence and of answerable questions wrongly called unanswerable."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    types = [ALL] + sorted({t for r in reports for t in r.summary["by_type"]})
    # Stacked, so that many types x modes widen the bars' rows without squeezing the curve.
    width = max(7.0, 2.0 + 0.3 * len(types) * len(reports))
    fig, (curve, held, wrong) = plt.subplots(3, 1, figsize=(width, 11), dpi=120)
    for report in reports:
        curve.plot(range(1, MAX_RANK + 1), hit_curve(report.results), marker="o", label=report.mode)
    curve.set_xlabel("k")
    curve.set_ylabel("hit@k")
    curve.set_ylim(0, 1.02)
    curve.set_xticks(range(1, MAX_RANK + 1))
    curve.grid(alpha=0.3)
    curve.legend()
    curve.set_title("hit@k by search mode")

    width = 0.8 / max(len(reports), 1)
    for ax, key, title in ((held, "answer_contains_evidence", "answer text holds the evidence"),
                           (wrong, "wrongly_unanswerable", "wrongly unanswerable (lower is better)")):
        for i, report in enumerate(reports):
            values = [_metric(report, t, key) for t in types]
            ax.bar([x + (i - (len(reports) - 1) / 2) * width for x in range(len(types))],
                   [0.0 if v is None else v for v in values], width, label=report.mode)
        ax.set_xticks(range(len(types)))
        ax.set_xticklabels(types, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(title, fontsize=10)  # ASCII only: a CJK font may be missing on the machine
    held.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _metric(report: EvalReport, qtype: str, key: str) -> float | None:
    return report.summary[key] if qtype == ALL else report.summary["by_type"].get(qtype, {}).get(key)


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
