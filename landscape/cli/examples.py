"""One example per command, shown at the end of its ``--help`` (the click epilog).

Kept in one place so that the examples form one small story on the bundled digits (train two
runs, then analyse them) and so that a test can check every command has one whose flags exist.
A command that sets its own ``epilog`` keeps it.
"""

from __future__ import annotations

from typing import Dict

EXAMPLES: Dict[str, str] = {
    "landscape demo": "landscape demo --out demo_out",
    "landscape train": "landscape train --model cnn --optimizer sgd --momentum 0.9 --lr 0.05 --epochs 10 --out runs/sgd",
    "landscape inspect": "landscape inspect runs/sgd/epoch_010.pt",
    "landscape hessian": "landscape hessian runs/sgd/epoch_010.pt --top-k 3 --json hessian.json",
    "landscape slice": "landscape slice runs/sgd/epoch_010.pt --dirs 2 --range -1:1:21 --out slice.h5",
    "landscape interpolate": "landscape interpolate runs/adam/epoch_010.pt runs/sgd/epoch_010.pt --out interp.h5",
    "landscape sharpness": "landscape sharpness runs/adam/epoch_010.pt runs/sgd/epoch_010.pt --json sharpness.json",
    "landscape probe adam-first-step": "landscape probe adam-first-step --model cnn --loss mse --lr 0.1 --lr 0.001",
    "landscape probe spikes": "landscape probe spikes runs/sgd --json spikes.json",
    "landscape report": "landscape report slice.h5 hessian.json runs/sgd --out report.html",
    "landscape toy": "landscape toy basin --optimizer adam --optimizer sgd --lr 2.1 --html toy.html",
    "landscape figure": "landscape figure slice.h5 --out slice.pdf",
    "landscape table": "landscape table sharpness.json hessian.json --latex --out tables.tex",
    "landscape export-vtk": "landscape export-vtk slice.h5 --out slice.vtp --log",
}


def epilog_for(name: str) -> str:
    """The epilog text for command ``name`` ('' when there is no example); ``\\b`` keeps click
    from re-wrapping the command line."""
    example = EXAMPLES.get(name)
    return f"\b\nExample:\n  {example}" if example else ""
