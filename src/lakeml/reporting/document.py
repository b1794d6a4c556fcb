"""A small document model rendered to self-contained HTML or to Markdown.

Every number shown is a `Num` carrying the key of where it came from (`metric:test_roc_auc`,
`table:scores:version`, ...): the HTML keeps it as a `data-key` attribute, so a test can check
each number against its source.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Num:
    key: str
    text: str


Part = str | Num


@dataclass(frozen=True)
class Para:
    parts: list[Part]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Part]]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    name: str
    png: bytes
    alt: str


@dataclass
class Section:
    title: str
    blocks: list[Para | Table | Image] = field(default_factory=list)

    def para(self, *parts: Part) -> None:
        self.blocks.append(Para(list(parts)))


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111;
       max-width: 980px; margin: 2em auto; padding: 0 1em; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #0072B2;
     padding-bottom: 0.2em; margin-top: 1.8em; }
.lead { font-size: 1.15em; } .muted { color: #555; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #999; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #e8f1f8; } td[data-key] { font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
@media print { body { margin: 0; max-width: none; } section { break-inside: avoid-page; }
               h2 { break-after: avoid; } a { color: inherit; } }
"""


def _html_part(p: Part) -> str:
    if isinstance(p, Num):
        return f'<span data-key="{html.escape(p.key)}">{html.escape(p.text)}</span>'
    return html.escape(p)


def _html_cell(p: Part) -> str:
    if isinstance(p, Num):
        return f'<td data-key="{html.escape(p.key)}">{html.escape(p.text)}</td>'
    return f"<td>{html.escape(p)}</td>"


def to_html(title: str, subtitle: str, sections: list[Section]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        # Nothing may load from anywhere: styles and images are inline.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">{html.escape(subtitle)}</p>',
    ]
    for s in sections:
        out.append(f"<section><h2>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if isinstance(b, Para):
                out.append(f"<p>{''.join(_html_part(p) for p in b.parts)}</p>")
            elif isinstance(b, Table):
                out.append("<table>")
                if b.caption:
                    out.append(f"<caption>{html.escape(b.caption)}</caption>")
                out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b.header))
                for row in b.rows:
                    out.append("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>")
                out.append("</table>")
            else:
                data = base64.b64encode(b.png).decode()
                out.append(f'<img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">')
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def _md_text(p: Part) -> str:
    text = p.text if isinstance(p, Num) else p
    return text.replace("|", "\\|")


def to_markdown(
    title: str, subtitle: str, sections: list[Section], folder: str
) -> tuple[str, dict[str, bytes]]:
    """Markdown, and the PNG files it links to (names relative to the Markdown's folder, under
    `folder`)."""
    out = [f"# {title}", "", f"_{subtitle}_", ""]
    files: dict[str, bytes] = {}
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Para):
                out += ["".join(_md_text(p) for p in b.parts), ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"**{b.caption}**", ""]
                out.append("| " + " | ".join(b.header) + " |")
                out.append("|" + "---|" * len(b.header))
                out += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in b.rows]
                out.append("")
            else:
                name = f"{folder}/{b.name}.png"
                files[name] = b.png
                out += [f"![{b.alt}]({name})", ""]
    return "\n".join(out), files
