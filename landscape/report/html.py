"""Assemble sections into one self-contained HTML page that works with no network.

plotly.js is inlined once in ``<head>``; each figure is a JSON document in a
``<script type="application/json">`` block (``<``, ``>`` and ``&`` written as ``\\u003c`` etc., so
no string inside can close the tag), drawn by one small script at the end of the page. Figure
templates are stored once and shared. There are no external scripts, fonts, styles or links;
every user string (file names, labels, verdicts) is HTML-escaped. A figure that fails to draw
shows its error in place (and on the console) instead of blanking the page; when all figures are
drawn the body gets ``data-rendered="N"`` (what the browser test checks). Under each figure two
buttons save it as a static SVG or PNG, made in the browser by plotly's ``toImage`` (no server).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .common import FigureBlock, Section, TableBlock, TextBlock

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0; color: #222; background: #fafafa; }
header { background: #243447; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px 0; font-size: 1.5em; }
header p { margin: 0; opacity: 0.8; font-size: 0.9em; }
main { max-width: 1280px; margin: 0 auto; padding: 12px 24px 40px 24px; }
nav ul { columns: 2; font-size: 0.92em; padding-left: 18px; }
section { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; margin: 22px 0;
          padding: 6px 20px 16px 20px; }
section h2 { font-size: 1.2em; border-bottom: 1px solid #eee; padding-bottom: 6px; }
figure { margin: 14px 0 22px 0; }
figcaption { font-size: 0.88em; color: #444; margin-top: 4px; }
.plot { width: 100%; min-height: 300px; }
.prov { font-size: 0.78em; color: #666; margin: 4px 0 0 0; font-family: ui-monospace, Menlo, Consolas, monospace;
        word-break: break-all; }
table { border-collapse: collapse; font-size: 0.88em; margin: 10px 0; }
caption { text-align: left; color: #555; padding-bottom: 4px; }
th, td { border: 1px solid #ddd; padding: 4px 9px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f4f7; }
.note { font-size: 0.92em; color: #333; }
.verdict { background: #fff8e1; border-left: 4px solid #f0a000; padding: 6px 12px; }
.warning { background: #fdecea; border-left: 4px solid #d62728; padding: 6px 12px; }
.fig-error { color: #b00020; font-family: monospace; padding: 10px; }
.dl-row { margin: 2px 0 0 0; }
button.dl { font-size: 0.8em; padding: 2px 8px; margin-right: 6px; border: 1px solid #bbb; border-radius: 4px;
            background: #f5f6f8; color: #234; cursor: pointer; }
button.dl:hover { background: #e8ecf2; }
button.dl[data-state="failed"] { border-color: #d62728; }
"""

_RENDER_JS = """
(function () {
  var templates = JSON.parse(document.getElementById('landscape-templates').textContent);
  var specs = document.querySelectorAll('script.landscape-figure');
  var jobs = [], failed = 0;
  function fail(div, err) {
    failed += 1;
    var msg = 'figure could not be drawn: ' + (err && err.message ? err.message : err);
    console.error(msg);
    var p = document.createElement('p'); p.className = 'fig-error'; p.textContent = msg;
    div.appendChild(p);
  }
  Array.prototype.forEach.call(specs, function (s) {
    var div = document.getElementById(s.getAttribute('data-target'));
    try {
      var fig = JSON.parse(s.textContent);
      if (fig.template !== undefined) { fig.layout.template = templates[fig.template]; }
      jobs.push(Promise.resolve(Plotly.newPlot(div, fig.data, fig.layout, fig.config))
        .catch(function (e) { fail(div, e); }));
    } catch (e) { fail(div, e); }
  });
  // "download" buttons: the figure as a static SVG or PNG, made in the browser by plotly
  window.landscapeImage = function (div, format) {
    return Plotly.toImage(div, {format: format, width: div.offsetWidth || 900, height: div.offsetHeight || 450});
  };
  document.addEventListener('click', function (ev) {
    var b = ev.target && ev.target.closest ? ev.target.closest('button.dl') : null;
    if (!b) { return; }
    var div = document.getElementById(b.getAttribute('data-target'));
    var format = b.getAttribute('data-format');
    b.setAttribute('data-state', 'working');
    window.landscapeImage(div, format).then(function (url) {
      var a = document.createElement('a');
      a.href = url; a.download = b.getAttribute('data-name') + '.' + format;
      document.body.appendChild(a); a.click(); a.remove();
      b.setAttribute('data-state', 'done');
    }).catch(function (e) {
      b.setAttribute('data-state', 'failed');
      console.error('download failed: ' + (e && e.message ? e.message : e));
    });
  });
  Promise.all(jobs).then(function () {
    document.body.setAttribute('data-rendered', String(specs.length - failed));
    document.body.setAttribute('data-failed', String(failed));
  });
})();
"""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating,)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """Replace non-finite floats by None (plotly draws gaps; JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.floating):
        return _clean(float(obj))
    return obj


def script_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``: no ``<``, ``>``, ``&``."""
    text = json.dumps(_clean(obj), default=_json_default, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_payload(block: FigureBlock, templates: Dict[str, int]) -> Dict[str, Any]:
    """The figure as {data, layout, config, template-index} with its template stored once."""
    spec = block.figure.to_plotly_json()
    layout = dict(spec.get("layout") or {})
    payload: Dict[str, Any] = {"data": spec.get("data") or [], "layout": layout}
    tpl = layout.pop("template", None)
    if tpl is not None:
        key = json.dumps(_clean(tpl), default=_json_default, sort_keys=True)
        payload["template"] = templates.setdefault(key, len(templates))
    payload["config"] = {"displaylogo": False, "responsive": True,
                         "toImageButtonOptions": {"format": "png", "filename": block.name, "scale": 2}}
    return payload


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _provenance_html(prov: Mapping[str, Any]) -> str:
    if not prov:
        return ""
    parts = []
    for k, v in prov.items():
        val = str(v)
        if k in ("sha256", "checkpoint_sha256") and len(val) > 16:
            val = val[:16] + "…"
        parts.append(f"{_esc(k)}: {_esc(val)}")
    return '<p class="prov">' + " · ".join(parts) + "</p>"


def _table_html(t: TableBlock) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    cap = f"<caption>{_esc(t.caption)}</caption>" if t.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _download_buttons(fid: str, name: str) -> str:
    """Buttons that save the drawn figure as a static SVG or PNG (client-side, plotly's toImage)."""
    return '<div class="dl-row">' + "".join(
        f'<button type="button" class="dl" data-target="{fid}" data-format="{f}" data-name="{_esc(name)}">'
        f"download {f.upper()}</button>" for f in ("svg", "png")) + "</div>"


def _text_html(t: TextBlock) -> str:
    if not t.lines:
        return ""
    cls = t.style if t.style in ("note", "verdict", "warning") else "note"
    if len(t.lines) == 1:
        return f'<p class="{cls}">{_esc(t.lines[0])}</p>'
    items = "".join(f"<li>{_esc(line)}</li>" for line in t.lines)
    return f'<div class="{cls}"><ul>{items}</ul></div>'


def render_page(sections: Sequence[Section], *, title: str, plotly_js: Optional[str] = None,
                generated: Optional[str] = None) -> Tuple[str, int]:
    """The whole page as a string, and the number of figures in it."""
    if plotly_js is None:
        from plotly.offline import get_plotlyjs

        plotly_js = get_plotlyjs()
    plotly_js = plotly_js.replace("</script", "<\\/script")  # cannot end its own <script> early
    from ..version import __version__

    templates: Dict[str, int] = {}
    body: List[str] = []
    toc: List[str] = []
    n_fig = 0
    for si, sec in enumerate(sections, start=1):
        sid = f"sec-{si}"
        toc.append(f'<li><a href="#{sid}">{_esc(sec.title)}</a></li>')
        parts = [f'<section id="{sid}"><h2>{_esc(sec.title)}</h2>']
        prov = _provenance_html(sec.provenance)
        for block in sec.blocks:
            if isinstance(block, FigureBlock):
                n_fig += 1
                fid = f"fig-{n_fig}"
                payload = script_json(figure_payload(block, templates))
                cap = f"<figcaption>{_esc(block.caption)}</figcaption>" if block.caption else ""
                parts.append(f'<figure><div class="plot" id="{fid}"></div>'
                             f'<script type="application/json" class="landscape-figure" data-target="{fid}">'
                             f"{payload}</script>{_download_buttons(fid, f'{n_fig:02d}-{block.name}')}"
                             f"{cap}{prov}</figure>")
            elif isinstance(block, TableBlock):
                parts.append(_table_html(block))
            elif isinstance(block, TextBlock):
                parts.append(_text_html(block))
        if not sec.figures:
            parts.append(prov)
        parts.append("</section>")
        body.append("".join(parts))
    tpl_list = [json.loads(k) for k, _ in sorted(templates.items(), key=lambda kv: kv[1])]
    when = generated or _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{plotly_js}</script>',
        "</head><body>",
        f"<header><h1>{_esc(title)}</h1><p>landscape {_esc(__version__)} · {_esc(when)} · "
        f"{len(sections)} section(s), {n_fig} figure(s) · works offline</p></header>",
        "<main>",
        f"<nav><ul>{''.join(toc)}</ul></nav>" if len(sections) > 1 else "",
        *body,
        "</main>",
        f'<script type="application/json" id="landscape-templates">{script_json(tpl_list)}</script>',
        f"<script>{_RENDER_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(page), n_fig
