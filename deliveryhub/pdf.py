"""
PDF layout for reports and exports, on ReportLab.

Two ways to lay out a document:

- `TableWriter`: a long table drawn straight onto the canvas, row by row: fixed columns, text wrapped to the
  column width with the font's metrics, a header band on every page, "page N of M" in the footer. No layout
  engine in between, which is what makes a 10,000-entry audit log take seconds rather than minutes (WeasyPrint
  laid out about 60 rows a second here; this draws several thousand).
- `story_pdf()`: short documents (reports, summaries) built from ReportLab flowables (headings, paragraphs,
  small tables) with `h1`, `para`, `table` helpers.

Text is set in DejaVu Sans when the system has it (wide Unicode coverage), else in the Bitstream Vera fonts that
ReportLab ships. Every PDF that leaves the platform is then signed (`deliveryhub.signing.sign_pdf`).
"""

import io
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

SANS, SANS_BOLD, MONO = "DH-Sans", "DH-Sans-Bold", "DH-Mono"
_SYSTEM_FONTS = Path("/usr/share/fonts/truetype/dejavu")
_BUNDLED_FONTS = Path(rl_config.__file__).resolve().parent / "fonts"
_FONT_FILES = (
    (SANS, ("DejaVuSans.ttf", "Vera.ttf")),
    (SANS_BOLD, ("DejaVuSans-Bold.ttf", "VeraBd.ttf")),
    (MONO, ("DejaVuSansMono.ttf", "Vera.ttf")),
)
INK = colors.HexColor("#111111")
MUTED = colors.HexColor("#666666")
RULE = colors.HexColor("#cccccc")
HEADER_FILL = colors.HexColor("#eeeeee")
OK_COLOUR = colors.HexColor("#146c2e")
BAD_COLOUR = colors.HexColor("#b00020")
WATCH_COLOUR = colors.HexColor("#9a6700")


def register_fonts():
    """Register the three fonts once per process (DejaVu from the system, else ReportLab's Vera)."""
    if SANS in pdfmetrics.getRegisteredFontNames():
        return
    for name, candidates in _FONT_FILES:
        for file_name in candidates:
            path = _SYSTEM_FONTS / file_name if file_name.startswith("DejaVu") else _BUNDLED_FONTS / file_name
            if path.exists():
                pdfmetrics.registerFont(TTFont(name, str(path)))
                break


def wrap(text, font, size, width):
    """Lines of `text` that fit `width` points: words kept whole where they fit, long tokens broken anywhere.

    Monospaced text is cut by character count (every glyph has the same advance), the rest by the font's metrics.
    """
    if font == MONO:
        return _wrap_fixed(text or "", max(1, int(width // pdfmetrics.stringWidth("M", MONO, size))))
    lines = []
    measure = pdfmetrics.stringWidth
    for paragraph in (text or "").split("\n"):
        if measure(paragraph, font, size) <= width:
            lines.append(paragraph)
            continue
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if measure(candidate, font, size) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            while measure(word, font, size) > width:  # a token longer than the column: cut it
                cut = _longest_prefix(word, font, size, width)
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _wrap_fixed(text, columns):
    lines = []
    for paragraph in text.split("\n"):
        while len(paragraph) > columns:
            cut = paragraph.rfind(" ", 0, columns + 1)
            cut = cut if cut > columns // 2 else columns
            lines.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip(" ")
        lines.append(paragraph)
    return lines


def _longest_prefix(word, font, size, width):
    low, high = 1, len(word)
    while low < high:
        mid = (low + high + 1) // 2
        if pdfmetrics.stringWidth(word[:mid], font, size) <= width:
            low = mid
        else:
            high = mid - 1
    return low


class _NumberedCanvas(canvas.Canvas):
    """A canvas whose footer says "page N of M": the total is a form drawn once, after the last page."""

    footer_left = ""

    def draw_footer(self):
        width, _ = self._pagesize
        self.setFont(SANS, 7)
        self.setFillColor(MUTED)
        self.drawString(10 * mm, 7 * mm, self.footer_left)
        label = f"Page {self.getPageNumber()} of "
        right = width - 10 * mm - 18
        self.drawRightString(right, 7 * mm, label)
        self.saveState()
        self.translate(right, 7 * mm)
        self.doForm("page-total")
        self.restoreState()
        self.setFillColor(INK)

    def finish(self):
        self.beginForm("page-total")
        self.setFont(SANS, 7)
        self.setFillColor(MUTED)
        self.drawString(0, 0, str(self.getPageNumber()))
        self.endForm()


class TableWriter:
    """A long table drawn page by page: `add_row(cells)` as rows stream in, `close()` returns the PDF bytes.

    `columns` is a list of (title, relative width, monospaced?) tuples; `cover(draw)` may draw a first page.
    """

    FONT_SIZE = 6.5
    LEADING = 7.8
    PAD = 1.5
    MARGIN = 10 * mm

    def __init__(self, columns, *, title, footer, pagesize=None):
        register_fonts()
        self.buffer = io.BytesIO()
        self.pagesize = pagesize or landscape(A4)
        self.canvas = _NumberedCanvas(self.buffer, pagesize=self.pagesize, pageCompression=1)
        self.canvas.footer_left = footer
        self.canvas.setTitle(title)
        self.canvas.setAuthor("DeliveryHub")
        usable = self.pagesize[0] - 2 * self.MARGIN
        total = sum(width for _, width, _ in columns)
        self.columns = [(name, usable * width / total, MONO if mono else SANS) for name, width, mono in columns]
        self.y = None
        self.rows = 0

    # -- pages ----------------------------------------------------------------------------------------------------
    def _new_page(self, with_header=True):
        if self.y is not None:
            self.canvas.draw_footer()
            self.canvas.showPage()
        self.y = self.pagesize[1] - 12 * mm
        if with_header:
            self._header()

    def _header(self):
        c = self.canvas
        height = self.LEADING + 2 * self.PAD + 1
        c.setFillColor(HEADER_FILL)
        c.rect(self.MARGIN, self.y - height, self.pagesize[0] - 2 * self.MARGIN, height, stroke=0, fill=1)
        c.setFillColor(INK)
        c.setFont(SANS_BOLD, self.FONT_SIZE + 0.5)
        x = self.MARGIN
        for name, width, _ in self.columns:
            c.drawString(x + self.PAD, self.y - self.PAD - self.LEADING + 1.5, name)
            x += width
        self.y -= height + 1

    def cover(self, lines, *, heading):
        """A first page: a heading and (label, value, colour or None) lines."""
        self._new_page(with_header=False)
        c = self.canvas
        c.setFont(SANS_BOLD, 18)
        c.drawString(self.MARGIN, self.y - 18, heading)
        y = self.y - 40
        for label, value, colour in lines:
            c.setFont(SANS_BOLD, 9)
            c.setFillColor(INK)
            c.drawString(self.MARGIN, y, label)
            c.setFont(SANS, 9)
            c.setFillColor(colour or INK)
            for line in wrap(str(value), SANS, 9, self.pagesize[0] - 2 * self.MARGIN - 50 * mm):
                c.drawString(self.MARGIN + 50 * mm, y, line)
                y -= 13
            y -= 3
        c.setFillColor(INK)
        self._new_page()  # the table starts on the next page

    def add_row(self, cells):
        if self.y is None:
            self._new_page()
        wrapped = [
            wrap(str(value), font, self.FONT_SIZE, width - 2 * self.PAD)
            for value, (_, width, font) in zip(cells, self.columns, strict=True)
        ]
        height = max(len(lines) for lines in wrapped) * self.LEADING + 2 * self.PAD
        bottom = 14 * mm
        if self.y - height < bottom:
            if height > self.pagesize[1] - 30 * mm:  # taller than a page: clip to what a page holds
                keep = int((self.pagesize[1] - 40 * mm) // self.LEADING)
                wrapped = [lines[:keep] + (["…"] if len(lines) > keep else []) for lines in wrapped]
                height = max(len(lines) for lines in wrapped) * self.LEADING + 2 * self.PAD
            self._new_page()
        c = self.canvas
        x = self.MARGIN
        text = c.beginText()
        for lines, (_, width, font) in zip(wrapped, self.columns, strict=True):
            if lines and any(lines):
                text.setTextOrigin(x + self.PAD, self.y - self.PAD - self.LEADING + 1.8)
                text.setFont(font, self.FONT_SIZE, self.LEADING)
                for line in lines:
                    text.textLine(line)
            x += width
        c.drawText(text)
        self.y -= height
        c.setStrokeColor(RULE)
        c.setLineWidth(0.3)
        c.line(self.MARGIN, self.y, self.pagesize[0] - self.MARGIN, self.y)
        self.rows += 1

    def note(self, text):
        """A line of text after the rows (e.g. "No entries match")."""
        if self.y is None:
            self._new_page()
        self.canvas.setFont(SANS, 9)
        self.canvas.drawString(self.MARGIN, self.y - 14, text)
        self.y -= 20

    def close(self):
        if self.y is None:
            self._new_page()
        self.canvas.draw_footer()
        self.canvas.showPage()
        self.canvas.finish()
        self.canvas.save()
        return self.buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------------
# Short documents
# ---------------------------------------------------------------------------------------------------------------------


def _styles():
    register_fonts()
    return {
        "h1": ParagraphStyle("h1", fontName=SANS_BOLD, fontSize=17, leading=21, spaceAfter=6, textColor=INK),
        "h2": ParagraphStyle("h2", fontName=SANS_BOLD, fontSize=12, leading=15, spaceBefore=10, spaceAfter=4,
                             keepWithNext=1),
        "body": ParagraphStyle("body", fontName=SANS, fontSize=9, leading=12, textColor=INK),
        "small": ParagraphStyle("small", fontName=SANS, fontSize=7.5, leading=9.5, textColor=MUTED),
        "cell": ParagraphStyle("cell", fontName=SANS, fontSize=7.5, leading=9.2, textColor=INK),
        "cellbold": ParagraphStyle("cellbold", fontName=SANS_BOLD, fontSize=7.5, leading=9.2, textColor=INK),
        "mono": ParagraphStyle("mono", fontName=MONO, fontSize=7, leading=8.6, textColor=INK),
    }


class Story:
    """Flowables of a short document, added with `h1`, `h2`, `para`, `table`; `render()` gives PDF bytes."""

    def __init__(self, *, title, footer, landscape_pages=False):
        self.styles = _styles()
        self.flowables = []
        self.title, self.footer = title, footer
        self.pagesize = landscape(A4) if landscape_pages else A4

    def h1(self, text):
        self._add(Paragraph(escape(text), self.styles["h1"]))

    def h2(self, text):
        """A section heading, kept on the page of what follows it (keepWithNext: never alone at a page's foot)."""
        self._add(Paragraph(escape(text), self.styles["h2"]))

    def _add(self, flowable):
        self.flowables.append(flowable)

    def para(self, text, style="body", colour=None):
        markup = escape(str(text))
        if colour is not None:
            markup = f'<font color="#{colour.hexval()[2:]}">{markup}</font>'
        self._add(Paragraph(markup, self.styles[style]))

    def space(self, height=4):
        self._add(Spacer(1, height * mm))

    def table(self, header, rows, widths=None, mono_columns=(), status_column=None):
        """A table with a header row; `widths` relative; cells wrap; `status_column` colours ok/bad words."""
        usable = self.pagesize[0] - 30 * mm
        widths = widths or [1] * len(header)
        total = sum(widths)
        col_widths = [usable * w / total for w in widths]
        data = [[Paragraph(escape(str(h)), self.styles["cellbold"]) for h in header]]
        for row in rows:
            cells = []
            for index, value in enumerate(row):
                style = self.styles["mono"] if index in mono_columns else self.styles["cell"]
                text = escape("" if value is None else str(value))
                if index == status_column:
                    word = str(value).lower()
                    colour = OK_COLOUR if word in ("ok", "within") else WATCH_COLOUR if word == "watch" else BAD_COLOUR
                    text = f'<font color="#{colour.hexval()[2:]}">{text}</font>'
                cells.append(Paragraph(text, style))
            data.append(cells)
        table = Table(data, colWidths=col_widths, repeatRows=1)
        table.setStyle(TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), HEADER_FILL),
            ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#999999")),
            ("LINEBELOW", (0, 1), (-1, -1), 0.3, RULE),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ("TOPPADDING", (0, 0), (-1, -1), 2),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]))  # fmt: skip
        self._add(table)

    def render(self):
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(
            buffer, pagesize=self.pagesize, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
            bottomMargin=16 * mm, title=self.title, author="DeliveryHub",
        )  # fmt: skip
        footer = self.footer

        def on_page(c, document):
            c.saveState()
            c.setFont(SANS, 7)
            c.setFillColor(MUTED)
            c.drawString(15 * mm, 8 * mm, footer)
            c.drawRightString(self.pagesize[0] - 15 * mm, 8 * mm, f"Page {document.page}")
            c.restoreState()

        doc.build(list(self.flowables), onFirstPage=on_page, onLaterPages=on_page)
        return buffer.getvalue()


def utc_now_text():
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
