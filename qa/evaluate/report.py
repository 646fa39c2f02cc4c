"""The evaluation report: `report.md` with the figures per mode and the worst questions, and a hit@k chart.
"""

from __future__ import annotations

from pathlib import Path

from qa.evaluate.run import MAX_RANK, EvalReport, hit_curve


def write_report(reports: list[EvalReport], folder: Path, source: str, worst: int = 10) -> Path:
    """Write `report.md` (metrics and the worst questions) and `hit_at_k.png` (hit@k per mode) into `folder`."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for report in reports:
        ax.plot(range(1, MAX_RANK + 1), hit_curve(report.results), marker="o", label=report.mode)
    ax.set_xlabel("k")
    ax.set_ylabel("hit@k")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(range(1, MAX_RANK + 1))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("hit@k by search mode")
    fig.tight_layout()
    fig.savefig(folder / "hit_at_k.png")
    plt.close(fig)

    lines = [f"# Retrieval evaluation: {source}", "", "![hit@k](hit_at_k.png)", "",
             "| mode | n | hit@1 | hit@3 | hit@5 | MRR@10 | unanswerable flagged | answerable flagged | p50 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        s = r.summary
        lines.append(f"| {r.mode} | {s['n']} | {s['hit@1']:.3f} | {s['hit@3']:.3f} | {s['hit@5']:.3f} | "
                     f"{s['mrr@10']:.3f} | {s['unanswerable']['flagged']:.3f} | {s['answerable_flagged']:.3f} | "
                     f"{s['latency_ms']['p50']:.1f} |")
    for r in reports:
        lines += ["", f"## Worst questions ({r.mode})", ""]
        misses = sorted((x for x in r.results if x.question.answerable),
                        key=lambda x: (x.rank is not None, -(x.rank or 0)))[:worst]
        wrong_flags = [x for x in r.results if x.question.answerable != x.answerable]
        for x in misses:
            if x.rank == 1:
                continue
            expected = " / ".join(x.question.evidence) or ", ".join(sorted(x.question.relevant_docs))
            lines += [f"### {x.question.qid} ({x.question.type}): {x.question.question}",
                      f"- rank of first hit: {x.rank or 'none in top 10'}",
                      f"- expected: {expected}",
                      f"- got first: {_one_line(x.top_passages[0]) if x.top_passages else '(nothing)'}", ""]
        if wrong_flags:
            lines += [f"### Wrong 不知道 decisions ({r.mode})", ""]
            lines += [f"- {x.question.qid} ({x.question.type}) {x.question.question}: said "
                      f"{'answerable' if x.answerable else 'unanswerable'}; answer: {_one_line(x.answer)}"
                      for x in wrong_flags]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _one_line(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
