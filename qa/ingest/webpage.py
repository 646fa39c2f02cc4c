"""Web page (.html/.htm) reader: the article only, with title and publish date from the page.

trafilatura finds the article; navigation, share/print links and footers are left out. A breadcrumb
(`当前位置: 首页 > 政务信息 > 魏都要闻`) is kept as the first line: `qa.ingest.document` marks it as boilerplate
that no passage holds, and reads the district it names.
"""

from __future__ import annotations

import re

from qa.errors import IngestError
from qa.ingest.extracted import Extracted, TableBlock, clean_inline, clean_title, join_blocks, join_wrapped
from qa.ingest.sections import match_heading

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.IGNORECASE)


_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_\-]+)""", re.IGNORECASE)


_GB_ALIASES = {"gb2312", "gbk", "gb_2312-80", "gb_2312", "x-gbk", "cp936", "euc-cn", "gb18030", "hz-gb-2312"}


_DATE_VALUE = r"\d{4}(?:-|/|\.|年)\d{1,2}(?:-|/|\.|月)\d{1,2}日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?"


_DATE_LINES = (
    re.compile(rf"(?:发布时间|信息时间|发布日期|发文日期|成文日期|更新时间)\s*[:：]\s*({_DATE_VALUE})"),
    re.compile(rf"(?<!当前)(?:时间|日期)\s*[:：]\s*({_DATE_VALUE})"),
)


_META_DATE_NAMES = ("article:published_time", "pubdate", "publishdate", "publish_date", "publishtime",
                    "datepublished", "dc.date", "dc.date.issued", "dcterms.issued", "dcterms.created",
                    "og:published_time", "firstpublishedtime", "created")


_META_TITLE_NAMES = ("articletitle", "og:title", "dc.title")


_TITLE_SITE_SUFFIX = re.compile(r"\s*(?:[_|｜]|\s[-–—]\s).*$")


def decode_html(data: bytes, source: str) -> str:
    """Decode a web page by its BOM, its declared charset (meta/XML declaration), else UTF-8 or GB18030.

    Raises:
        IngestError: the bytes decode as none of them.
    """
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom):].decode(encoding, errors="replace")
    head = data[:4096]
    declared = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    candidates: list[str] = []
    if declared:
        name = declared.group(1).decode("ascii", "ignore").lower()
        candidates.append("gb18030" if name in _GB_ALIASES else name)
    candidates += ["utf-8", "gb18030"]
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is not None:
            return str(best)
    except ImportError:  # pragma: no cover
        pass
    raise IngestError(source, "cannot decode the web page (no usable charset declared; not UTF-8 or GB18030)")


def read_html(data: bytes, source: str) -> Extracted:
    """Main content of a web page as text: its title and publish date first, then the article body.

    Raises:
        IngestError: undecodable page, or no main content.
    """
    try:
        import trafilatura
        from lxml import html as lxml_html
    except ImportError as e:  # pragma: no cover - dependency missing
        raise IngestError(source, "reading .html needs the trafilatura package") from e
    markup = decode_html(data, source)
    markup = re.sub(r"^\s*<\?xml[^>]*>", "", markup)
    try:
        tree = lxml_html.fromstring(markup)
    except Exception as e:
        raise IngestError(source, f"cannot parse the web page: {type(e).__name__}: {e}") from e
    page_title, page_date, date_line = _html_metadata(tree)
    crumb = _breadcrumb(tree)

    body = None
    meta_title = meta_date = None
    for recall in (False, True):
        try:
            result = trafilatura.bare_extraction(
                markup, with_metadata=True, include_tables=True, include_comments=False, include_images=False,
                include_links=False, include_formatting=False, deduplicate=False, favor_recall=recall,
                output_format="python", date_extraction_params={"extensive_search": False, "original_date": True},
                config=_trafilatura_config())
        except Exception:  # noqa: BLE001 - trafilatura gives up on some broken pages
            result = None
        if result is not None and result.body is not None and "".join(result.body.itertext()).strip():
            body, meta_title, meta_date = result.body, result.title, result.date
            break
    if body is None:
        raise IngestError(source, "no main content found in the web page")

    blocks = _trafilatura_blocks(body)
    # trafilatura drops <h1>-<h6> when it finds the article by its fallbacks (a `<div id="zoom">` of many government
    # sites): where its text sits in one element of the page, that element is read instead, headings and all.
    container = _main_container(tree, blocks)
    if container is not None:
        own = _html_blocks(container)
        if _similar_content(own, blocks):
            blocks = own
    # A breadcrumb inside the article box goes first too, out of the title block (see below).
    inside = [b for b in blocks[:5] if _CRUMB.match(b)]
    if inside:
        crumb = inside[0]
        blocks = [b for b in blocks if b not in inside]
    first_heading = match_heading(blocks[0]) if blocks and blocks[0].startswith("#") else None
    article_heading = re.sub(r"^#+\s*", "", blocks[0]) if first_heading and first_heading.rank < 10 else None
    title = clean_title(page_title or article_heading or clean_title(_strip_site(meta_title))
                         or _fallback_title(tree))
    date = page_date or meta_date
    lines: list[str] = []
    first = re.sub(r"^#+\s*", "", blocks[0]) if blocks else ""
    if title and first.strip() == title:
        lines.append(blocks.pop(0))
    elif title and _squeeze(title) not in _squeeze("".join(blocks[:3])):  # else the article opens with it already
        lines.append(title)
    opening = "\n".join(blocks[:3])
    if date and date not in opening and (not date_line or date_line not in opening):
        lines.append(date_line or f"发布时间：{date}")
    if not blocks and not lines:
        raise IngestError(source, "no main content found in the web page")
    # The breadcrumb goes first: `qa.ingest.document` marks it as page furniture (no passage holds it), and it names the site's
    # district or county (`当前位置: 首页 > 政务信息 > 魏都要闻`), which the document's place is read from.
    text = join_blocks(([crumb] if crumb else []) + lines + blocks)
    return Extracted(text, title=title, date=date)


_TRAFILATURA_CONFIG = None


def _trafilatura_config():
    """trafilatura's defaults, except that a short notice (under 250 characters) is still an article: below that size
    trafilatura would otherwise fall back to the text of the whole page, navigation included."""
    global _TRAFILATURA_CONFIG
    if _TRAFILATURA_CONFIG is None:
        from trafilatura.settings import use_config

        config = use_config()
        config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "40")
        _TRAFILATURA_CONFIG = config
    return _TRAFILATURA_CONFIG


def _html_metadata(tree) -> tuple[str | None, str | None, str | None]:
    """Title (from meta tags), publish date and the page's own date line (`信息时间:2020-04-30 08:40`)."""
    metas: dict[str, str] = {}
    for meta in tree.iter("meta"):
        name = (meta.get("name") or meta.get("property") or meta.get("itemprop") or "").strip().lower()
        content = (meta.get("content") or "").strip()
        if name and content and name not in metas:
            metas[name] = content
    title = next((metas[n] for n in _META_TITLE_NAMES if metas.get(n)), None)
    date = date_line = None
    for name in _META_DATE_NAMES:
        if metas.get(name):
            date = _normalize_date(metas[name])
            if date:
                break
    visible = _visible_text_lines(next(iter(tree.iter("body")), tree))
    for pattern in _DATE_LINES:
        found = next((m for m in map(pattern.search, visible) if m), None)
        if found:
            date_line = found.group(0).strip()
            date = date or _normalize_date(found.group(1))
            break
    return _one_line(title), date, date_line


_CRUMB = re.compile(r"^\s*(?:当前位置|您(?:现在)?的位置)\s*[:：]")  # as qa.ingest.document marks it


def _breadcrumb(tree) -> str | None:
    """`当前位置: 首页 > 政务信息 > 魏都要闻` as one line, when the page has one."""
    for el in next(iter(tree.iter("body")), tree).iter():
        if isinstance(el.tag, str) and el.text and _CRUMB.match(el.text):
            line = clean_inline(re.sub(r"\s+", " ", el.text_content()))
            return line if len(line) <= 120 else None
    return None


def _fallback_title(tree) -> str | None:
    """The page's <h1> when it has exactly one, else its <title> without the site name."""
    h1s = [el.text_content().strip() for el in tree.iter("h1") if el.text_content().strip()]
    if len(h1s) == 1 and len(h1s[0]) <= 80:
        return _one_line(h1s[0])
    title_el = next(iter(tree.iter("title")), None)
    if title_el is not None and title_el.text_content().strip():
        return _strip_site(title_el.text_content().strip())
    return _one_line(h1s[0]) if h1s else None


def _strip_site(title: str | None) -> str | None:
    """`我区召开全区领导干部会议_魏都区人民政府` -> `我区召开全区领导干部会议`."""
    return _one_line(_TITLE_SITE_SUFFIX.sub("", title)) if title else None


def _one_line(text: str | None) -> str | None:
    return re.sub(r"\s+", " ", text).strip() or None if text else None


def _visible_text_lines(body) -> list[str]:
    lines = []
    for el in body.iter():
        if el.tag in ("script", "style", "noscript") or not isinstance(el.tag, str):
            continue
        for piece in (el.text, el.tail):
            if piece and piece.strip():
                lines.append(piece.strip())
    return lines


def _normalize_date(value: str) -> str | None:
    """`2020-04-30T08:40:00+08:00` -> `2020-04-30 08:40`; `2020/4/30` -> `2020-04-30`; `2020年4月30日` kept."""
    value = value.strip()
    if re.match(r"^\d{4}年\d{1,2}月\d{1,2}日", value):
        return re.match(r"^\d{4}年\d{1,2}月\d{1,2}日", value).group(0)
    found = re.match(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T\s]+(\d{1,2}):(\d{2}))?", value)
    if not found:
        return None
    year, month, day, hour, minute = found.groups()
    date = f"{year}-{int(month):02d}-{int(day):02d}"
    if hour is not None and not (hour in ("0", "00") and minute == "00"):
        date += f" {int(hour):02d}:{minute}"
    return date


def _trafilatura_blocks(body) -> list[str]:
    """trafilatura's main-content tree as text blocks: headings as `#` lines, list items, tables as row lines."""
    blocks: list[str] = []

    def text_of(el) -> str:
        pieces: list[str] = []

        def walk(node) -> None:
            if node.text:
                pieces.append(node.text)
            for child in node:
                if child.tag == "lb":
                    pieces.append("\n")
                elif child.tag not in ("table", "list"):
                    walk(child)
                if child.tail:
                    pieces.append(child.tail)

        walk(el)
        text = ""
        for line in "".join(pieces).split("\n"):
            line = clean_inline(line)
            if line:
                text = join_wrapped(text, line)
        return text

    def visit(el) -> None:
        tag = el.tag
        if tag == "head":
            text = text_of(el)
            level = re.match(r"h([1-6])", el.get("rend") or "")
            if text:
                blocks.append(f"{'#' * (int(level.group(1)) if level else 2)} {text}")
        elif tag == "table":
            rows = []
            for row in el.iter("row"):
                cells = [text_of(cell) for cell in row if cell.tag == "cell"]
                if any(cells):
                    rows.append(" | ".join(cells).strip())
            if rows:
                blocks.append(TableBlock("\n".join(rows)))
        elif tag == "list":
            for item in el:
                if item.tag == "item":
                    text = text_of(item)
                    if text:
                        blocks.append(text)
                    for nested in item:
                        if nested.tag in ("list", "table"):
                            visit(nested)
        elif tag in ("p", "quote", "code", "item", "cell"):
            text = text_of(el)
            if text:
                blocks.append(text)
            for nested in el:
                if nested.tag in ("list", "table"):
                    visit(nested)
        else:
            if el.text and el.text.strip():
                blocks.append(clean_inline(el.text))
            for child in el:
                visit(child)
                if child.tail and child.tail.strip():
                    blocks.append(clean_inline(child.tail))

    for child in body:
        visit(child)
        if child.tail and child.tail.strip():
            blocks.append(clean_inline(child.tail))
    return [b for b in blocks if b]


_SKIP_TAGS = {"script", "style", "noscript", "nav", "footer", "form", "button", "select", "option", "iframe",
              "object", "svg", "input", "textarea", "template", "head", "title"}


_BLOCK_TAGS = {"p", "div", "section", "article", "main", "header", "blockquote", "pre", "ul", "ol", "li", "dl", "dt",
               "dd", "center", "figure", "figcaption", "address", "hr", "table", "tr", "td", "th", "tbody", "thead",
               "h1", "h2", "h3", "h4", "h5", "h6"}


_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _main_container(tree, blocks: list[str]):
    """The deepest element of the page that holds (nearly) every paragraph trafilatura kept, or None."""
    keys = [_squeeze(re.sub(r"^#+\s*", "", b.split("\n")[0]))[:24] for b in blocks]
    keys = [k for k in keys if len(k) >= 6]
    if len(keys) < 2:
        return None
    body = next(iter(tree.iter("body")), None)
    if body is None:
        return None
    scored = []
    for el in body.iter():
        if not isinstance(el.tag, str) or el.tag in _SKIP_TAGS or el.tag in ("p", "span", "a", "br"):
            continue
        text = _squeeze(el.text_content())
        hits = sum(1 for k in keys if k in text)
        if hits >= 2:
            scored.append((hits, len(text), el))
    if not scored:
        return None
    best = max(h for h, _, _ in scored)
    allowed = best // 10  # a stray paragraph (a title above the article box) may sit outside it
    return min((item for item in scored if item[0] >= max(2, best - allowed)), key=lambda item: item[1])[2]


def _similar_content(own: list[str], blocks: list[str]) -> bool:
    """The element's own text is trafilatura's text plus little more (headings, a date line), not a page of links."""
    mine, theirs = sum(len(_squeeze(b)) for b in own), sum(len(_squeeze(b)) for b in blocks)
    return theirs > 0 and theirs * 0.9 <= mine <= theirs * 1.3 + 150


def _html_blocks(container) -> list[str]:
    """Text blocks of a page element in order: paragraphs, headings as `#` lines, list items, tables as row lines."""
    blocks: list[str] = []
    line: list[str] = []

    def flush() -> None:
        text = ""
        for piece in "".join(line).split("\n"):
            piece = clean_inline(piece)
            if piece:
                text = join_wrapped(text, piece)
        if text:
            blocks.append(text)
        line.clear()

    def visit(el) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag or tag in _SKIP_TAGS or _HIDDEN.search(el.get("style") or ""):
            return
        if re.fullmatch(r"h[1-6]", tag):
            flush()
            text = clean_inline(re.sub(r"\s+", " ", el.text_content()))
            if text:
                blocks.append(f"{'#' * int(tag[1])} {text}")
            return
        if tag == "table" and _data_table(el):
            flush()
            rows = []
            for tr in el.iter("tr"):
                cells = [clean_inline(re.sub(r"\s+", " ", c.text_content())) for c in tr if c.tag in ("td", "th")]
                if any(cells):
                    rows.append(" | ".join(cells).strip())
            if rows:
                blocks.append(TableBlock("\n".join(rows)))
            return
        if tag == "br":
            line.append("\n")
            return
        block = tag in _BLOCK_TAGS
        if block:
            flush()
        if el.text:
            line.append(re.sub(r"\s+", " ", el.text))
        for child in el:
            visit(child)
            if child.tail:
                line.append(re.sub(r"\s+", " ", child.tail))
        if block:
            flush()

    visit(container)
    flush()
    return blocks


def _data_table(table) -> bool:
    """A table of data (short cells in several columns), not a layout grid holding the page's paragraphs."""
    cells = [c for tr in table.iter("tr") for c in tr if c.tag in ("td", "th")]
    if not cells or all(len(tr.findall("td")) + len(tr.findall("th")) <= 1 for tr in table.iter("tr")):
        return False
    return sum(1 for c in cells if len(_squeeze(c.text_content())) <= 80) >= 0.8 * len(cells)
