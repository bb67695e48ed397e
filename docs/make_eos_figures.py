"""Edge-of-stability figures for the README, from run folders written by
``landscape train ... --track-sharpness K`` (their ``sharpness.csv``).

    python docs/make_eos_figures.py --gd RUN_A --gd RUN_B --adam RUN_C --out docs

writes ``eos_gd.png`` (λ_max against 2/η for each gradient-descent run) and ``eos_adam.png``
(Adam's preconditioned sharpness λ₁(P⁻¹H) against 38/η), and prints the hover numbers of
:func:`landscape.hessian.tracking.edge_of_stability_summary`. PNG export uses plotly + kaleido
(``pip install -e .[export]``; kaleido drives a local Chrome/Chromium).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import click
import plotly.graph_objects as go

from landscape.hessian.tracking import edge_of_stability_summary, read_sharpness

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _figure(runs: Sequence[str], *, key: str, label: str, title: str, log_y: bool) -> go.Figure:
    fig = go.Figure()
    for i, run in enumerate(runs):
        cols = read_sharpness(Path(run) / "sharpness.csv")
        color = COLORS[i % len(COLORS)]
        lr = cols["lr"][0]
        fig.add_trace(go.Scatter(x=cols["step"], y=cols[key], mode="lines+markers", name=f"{label}, η={lr:g}",
                                 line={"color": color}, marker={"size": 4}))
        fig.add_trace(go.Scatter(x=cols["step"], y=cols["threshold"], mode="lines",
                                 name=f"threshold {cols['rule'][0]} = {cols['threshold'][0]:.4g}",
                                 line={"color": color, "dash": "dash"}))
    fig.update_layout(title=title, template="plotly_white", width=800, height=420,
                      xaxis_title="step", yaxis_title=label, legend={"x": 0.62, "y": 0.05})
    if log_y:
        fig.update_yaxes(type="log")
    return fig


@click.command()
@click.option("--gd", "gd_runs", multiple=True, help="Full-batch GD run folder (repeatable).")
@click.option("--adam", "adam_runs", multiple=True, help="Full-batch Adam run folder (repeatable).")
@click.option("--out", default="docs", show_default=True)
def main(gd_runs: Sequence[str], adam_runs: Sequence[str], out: str) -> None:
    out_dir = Path(out)
    numbers = {}
    if gd_runs:
        _figure(gd_runs, key="lambda_max", label="λ_max", log_y=False,
                title="Full-batch GD, digits, tanh MLP, mse-sum: λ_max against 2/η").write_image(out_dir / "eos_gd.png")
    if adam_runs:
        _figure(adam_runs, key="preconditioned_lambda_max", label="λ₁(P⁻¹H)", log_y=True,
                title="Full-batch Adam (β₁=0.9): preconditioned sharpness against 38/η").write_image(out_dir / "eos_adam.png")
    for run in (*gd_runs, *adam_runs):
        numbers[run] = edge_of_stability_summary(read_sharpness(Path(run) / "sharpness.csv"))
    click.echo(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
