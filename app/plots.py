"""Pure plotly figure functions: plain lists and arrays in, a go.Figure out (no library objects, no app state)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.router_stats import entropy as mixture_entropy

TEMPLATE = "plotly_white"
PALETTE = px.colors.qualitative.Plotly + px.colors.qualitative.D3
BACKGROUND = "background"
WEIGHT_SCALE = "Viridis"
DIFF_SCALE = "RdBu"
TRUTH_LABEL_CHARS = 7  # ground-truth class names up to this long are written above the timeline
# For a tab's select event (browser code): a figure that arrives while its tab is hidden is drawn at plotly's default
# width, and the same figure sent again is not redrawn; a window resize makes plotly fit every plot to its container.
FIT_PLOTS_JS = "() => { requestAnimationFrame(() => window.dispatchEvent(new Event('resize'))); }"


def message(text: str, height: int = 260) -> go.Figure:
    """An empty figure that says why there is nothing to plot."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 15})
    fig.update_layout(template=TEMPLATE, height=height, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def _colours(names: Sequence[str]) -> dict[str, str]:
    distinct = sorted(set(names) - {BACKGROUND})
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(distinct)}
    colours[BACKGROUND] = "#c8c8c8"
    return colours


def ave_timeline(events: Sequence[Optional[str]], confidence: Sequence[float],
                 truth: Optional[Sequence[Optional[str]]] = None, title: str = "Event per second (AVE)") -> go.Figure:
    """One bar per second: height = confidence, colour and label = predicted event (None = background)."""
    names = [e or BACKGROUND for e in events]
    colours = _colours(names + [t or BACKGROUND for t in truth or ()])
    hover = [f"second {t}: {n}<br>confidence {c:.4f}" + (f"<br>truth: {truth[t] or BACKGROUND}" if truth else "")
             for t, (n, c) in enumerate(zip(names, confidence))]
    fig = go.Figure(go.Bar(x=list(range(len(names))), y=list(confidence), text=names, textposition="auto",
                           textangle=-90, cliponaxis=False, marker_color=[colours[n] for n in names],
                           hovertext=hover, hoverinfo="text", name="prediction"))
    if truth:
        short = max(len(t or "-") for t in truth) <= TRUTH_LABEL_CHARS  # longer names would overlap: hover only
        fig.add_trace(go.Scatter(x=list(range(len(truth))), y=[1.06] * len(truth),
                                 mode="markers+text" if short else "markers", text=[t or "-" for t in truth],
                                 textposition="top center", textfont={"size": 9},
                                 marker={"symbol": "square", "size": 11,
                                         "color": [colours[t or BACKGROUND] for t in truth]},
                                 hoverinfo="text", hovertext=[f"truth at {i} s: {t or BACKGROUND}"
                                                              for i, t in enumerate(truth)], name="ground truth"))
        # named at the row's end: a legend would show both traces in their first item's colour
        fig.add_annotation(text="ground truth", x=1, xref="paper", xanchor="left", y=1.06, showarrow=False,
                           font={"size": 11})
    fig.update_layout(template=TEMPLATE, title=title, height=320, showlegend=False, bargap=0.08,
                      xaxis={"title": "second", "dtick": 1}, yaxis={"title": "confidence", "range": [0, 1.18]},
                      margin={"t": 50, "b": 40, "l": 50, "r": 90 if truth else 10})
    return fig


def avvp_tracks(audio: Sequence[Sequence[str]], visual: Sequence[Sequence[str]],
                title: str = "Audio and visual events (AVVP)") -> go.Figure:
    """Two tracks of events over seconds: which classes are heard (audio) and seen (visual) in each second."""
    classes = sorted({c for row in [*audio, *visual] for c in row})
    if not classes:
        return message("No audio or visual event detected in any second")
    rows = [("audio", c) for c in classes] + [("visual", c) for c in classes]
    z = [[1.0 if c in (audio if track == "audio" else visual)[t] else 0.0 for t in range(len(audio))]
         for track, c in rows]
    hover = [[f"{track}: {c}, second {t}: {'yes' if z[i][t] else 'no'}" for t in range(len(audio))]
             for i, (track, c) in enumerate(rows)]
    fig = go.Figure(go.Heatmap(z=z, x=list(range(len(audio))), y=[f"{track[0].upper()} · {c}" for track, c in rows],
                               colorscale=[[0, "#f4f4f4"], [1, "#3461c1"]], zmin=0, zmax=1, showscale=False,
                               hovertext=hover, hoverinfo="text", xgap=2, ygap=2))
    fig.update_layout(template=TEMPLATE, title=title, height=min(720, max(220, 90 + 26 * len(rows))),
                      xaxis={"title": "second", "dtick": 1}, yaxis={"autorange": "reversed"},
                      margin={"t": 50, "b": 40, "l": 120, "r": 10})
    return fig


def entropy(weights: np.ndarray) -> np.ndarray:
    """Routing entropy (nats, analysis.router_stats.entropy) per layer, averaged over seconds: [L, T, E] -> [L]."""
    return np.array([np.mean([mixture_entropy(w) for w in layer]) for layer in np.asarray(weights, float)])


def router_heatmaps(panels: Sequence[tuple[str, np.ndarray]], experts: Sequence[str], layers: Sequence[int],
                    title: str = "Router weights") -> go.Figure:
    """Layer x second heat-maps of each expert's weight (rows) per panel (columns), plus panel 1 minus panel 2
    when there are two. Each panel's weights are [L, T, E]."""
    cols = list(panels) + ([(f"{panels[0][0]} − {panels[1][0]}", panels[0][1] - panels[1][1])]
                           if len(panels) == 2 else [])
    span = max(float(np.abs(cols[-1][1]).max()), 1e-3) if len(panels) == 2 else 1.0  # the difference's colour range
    fig = make_subplots(rows=len(experts), cols=len(cols), shared_xaxes=True, shared_yaxes=True,
                        horizontal_spacing=0.06, vertical_spacing=0.08,
                        subplot_titles=[f"{name} · {e}" for e in experts for name, _ in cols])
    for c, (name, w) in enumerate(cols):
        diff = len(panels) == 2 and c == 2
        for r, expert in enumerate(experts):
            fig.add_trace(go.Heatmap(
                z=w[:, :, r], x=list(range(w.shape[1])), y=[str(layer) for layer in layers],
                coloraxis="coloraxis2" if diff else "coloraxis",
                hovertemplate=f"{name}<br>expert {expert}<br>layer %{{y}}, second %{{x}}<br>"
                              f"{'difference' if diff else 'weight'} %{{z:.4f}}<extra></extra>"),
                row=r + 1, col=c + 1)
    for c in range(len(cols)):
        fig.update_xaxes(title_text="second", dtick=1, row=len(experts), col=c + 1)
    for r in range(len(experts)):
        fig.update_yaxes(title_text="layer", row=r + 1, col=1)
    fig.update_layout(template=TEMPLATE, title=title, height=110 + 170 * len(experts),
                      margin={"t": 80, "b": 40, "l": 60, "r": 80},
                      coloraxis={"colorscale": WEIGHT_SCALE, "cmin": 0, "cmax": 1,
                                 "colorbar": {"title": "weight", "x": 1.0, "len": 0.8}},
                      coloraxis2={"colorscale": DIFF_SCALE, "cmin": -span, "cmax": span,
                                  "colorbar": {"title": "difference", "x": 1.08, "len": 0.8}})
    return fig


def router_summary(panels: Sequence[tuple[str, np.ndarray]], experts: Sequence[str],
                   layers: Sequence[int]) -> go.Figure:
    """Per layer: each expert's mean weight (bars, one group per panel) and the routing entropy (lines)."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1,
                        subplot_titles=["expert usage (mean weight over seconds)", "routing entropy"])
    x = [str(layer) for layer in layers]
    dashes = ("solid", "dash")
    patterns = ("", "/")
    for p, (name, w) in enumerate(panels):
        usage = w.mean(axis=1)  # [L, E]
        for e, expert in enumerate(experts):
            fig.add_trace(go.Bar(x=x, y=usage[:, e], name=f"{expert} · {name}", offsetgroup=f"{p}",
                                 marker={"color": PALETTE[e % len(PALETTE)], "pattern": {"shape": patterns[p % 2]}},
                                 base=usage[:, :e].sum(-1), legendgroup=name,
                                 hovertemplate=f"{name}<br>{expert}, layer %{{x}}<br>mean weight %{{y:.4f}}"
                                               "<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=entropy(w), mode="lines+markers", name=f"entropy · {name}",
                                 line={"dash": dashes[p % 2], "color": "#444"}, legendgroup=name,
                                 hovertemplate=f"{name}<br>layer %{{x}}<br>entropy %{{y:.4f}} nats<extra></extra>"),
                      row=1, col=2)
    if experts:
        fig.add_hline(y=float(np.log(len(experts))), line={"dash": "dot", "color": "#999"}, row=1, col=2,
                      annotation_text="uniform", annotation_position="top left")
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="weight", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="nats", rangemode="tozero", row=1, col=2)
    fig.update_layout(template=TEMPLATE, barmode="group", height=360, margin={"t": 60, "b": 40, "l": 60, "r": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def comparison(rows: Sequence[dict], title: str = "Untouched vs intervened") -> go.Figure:
    """One subplot per row {"title", "x", "untouched", "intervened", "y_title"}: the two runs side by side."""
    if not rows:
        return message("No task outputs to compare")
    fig = make_subplots(rows=len(rows), cols=1, subplot_titles=[r["title"] for r in rows], vertical_spacing=0.12)
    for i, row in enumerate(rows):
        for name, colour in (("untouched", "#7f7f7f"), ("intervened", "#d62728")):
            fig.add_trace(go.Bar(x=row["x"], y=row[name], name=name, marker_color=colour, legendgroup=name,
                                 showlegend=i == 0, hovertemplate=f"{name}<br>%{{x}}: %{{y:.4f}}<extra></extra>"),
                          row=i + 1, col=1)
        fig.update_yaxes(title_text=row.get("y_title", ""), row=i + 1, col=1)
    fig.update_xaxes(type="category")  # every second (or answer) labelled
    fig.update_layout(template=TEMPLATE, title=title, barmode="group", height=80 + 220 * len(rows),
                      margin={"t": 80, "b": 40, "l": 60, "r": 10})
    return fig


def robustness_bars(rows: Sequence[dict], title: str = "Robustness") -> go.Figure:
    """Grouped bars of {variant, condition, metric, value} rows: conditions along x, one bar per variant, one panel
    per metric."""
    if not rows:
        return message("No results")
    fig = px.bar(list(rows), x="condition", y="value", color="variant", facet_row="metric", barmode="group",
                 hover_data={"value": ":.4f", "variant": True, "condition": True, "metric": True},
                 category_orders={"condition": list(dict.fromkeys(r["condition"] for r in rows))},
                 color_discrete_sequence=PALETTE)
    fig.update_yaxes(matches=None, title_text="")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    metrics = len({r["metric"] for r in rows})
    fig.update_layout(template=TEMPLATE, title=title, height=120 + 230 * metrics,
                      margin={"t": 60, "b": 40, "l": 60, "r": 40})
    return fig


def embedding(xy: np.ndarray, colour: Sequence[str], hover: Sequence[str], highlight: Sequence[bool],
              title: str = "Features") -> go.Figure:
    """A 2-D scatter of projected features coloured by a label; highlighted points are drawn as large stars."""
    highlight = np.asarray(highlight, dtype=bool)
    rest = ~highlight
    fig = px.scatter(x=xy[rest, 0], y=xy[rest, 1], color=[c for c, h in zip(colour, highlight) if not h],
                     hover_name=[t for t, h in zip(hover, highlight) if not h], color_discrete_sequence=PALETTE)
    if highlight.any():
        fig.add_trace(go.Scatter(x=xy[highlight, 0], y=xy[highlight, 1], mode="markers", name="current clip",
                                 marker={"symbol": "star", "size": 18, "color": "black", "line": {"width": 1,
                                                                                                   "color": "white"}},
                                 hovertext=[t for t, h in zip(hover, highlight) if h], hoverinfo="text"))
    fig.update_traces(selector={"mode": "markers"}, marker_line_width=0.5)
    fig.update_layout(template=TEMPLATE, title=title, height=520, legend_title_text="",
                      xaxis={"title": "", "showticklabels": False}, yaxis={"title": "", "showticklabels": False},
                      margin={"t": 60, "b": 20, "l": 20, "r": 10})
    return fig
