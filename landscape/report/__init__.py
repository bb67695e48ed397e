"""Interactive, offline HTML reports: one page from slices, Hessian, sharpness, probe results and runs.

``write_html(items, out_path, title=...)`` is what ``landscape report`` and every analysis
command's ``--html PATH`` call. ``items`` may mix result objects (anything with ``to_json``), dicts,
and paths to ``.h5`` slice files, ``.json`` results or run folders; the type of each is told from
its content (datasets, keys), never from the file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import LandscapeError
from .common import FigureBlock, Section, short_path
from .hessian import hessian_section, is_hessian
from .probes import first_step_section, is_first_step, is_spikes, spikes_section
from .run import run_section
from .sharpness import is_sharpness, sharpness_section
from .slices import read_slice_h5, slice_from_mapping, slice_section
from .toy import is_toy, toy_section

__all__ = ["Report", "build_report", "export_png", "load_sections", "write_html"]

Item = Union[str, Path, Mapping[str, Any], Any]


@dataclass(frozen=True)
class Report:
    """A built report: its title and sections (each with figures, tables and notes)."""

    title: str
    sections: Tuple[Section, ...]

    @property
    def figures(self) -> Tuple[Tuple[Section, FigureBlock], ...]:
        return tuple((s, f) for s in self.sections for f in s.figures)

    def html(self, *, generated: Optional[str] = None) -> str:
        from .html import render_page

        return render_page(self.sections, title=self.title, generated=generated)[0]


def _is_slice_mapping(d: Mapping[str, Any]) -> bool:
    return "train_loss" in d and any(k in d for k in ("xcoordinates", "alphas"))


Builder = Callable[..., Section]
BUILDERS: Dict[str, Builder] = {
    "adam_first_step": first_step_section,
    "hessian": hessian_section,
    "sharpness": sharpness_section,
    "sharpness_run": sharpness_section,
    "spikes": spikes_section,
    "toy": toy_section,
}


def section_from_mapping(d: Any, *, source: str, label: str) -> Section:
    """Dispatch a JSON result (dict or list) to its builder by its ``kind``
    (:func:`landscape.results.result`); files without one (older results, slices, the first-step
    probe) are told apart by their keys."""
    kind = d.get("kind") if isinstance(d, Mapping) else None
    if isinstance(kind, str) and kind in BUILDERS:
        return BUILDERS[kind](d, source=source, label=label)
    return _section_by_keys(d, source=source, label=label)


def _section_by_keys(d: Any, *, source: str, label: str) -> Section:
    """The fallback for results that carry no ``kind``: recognise them by their keys."""
    if isinstance(d, Mapping):
        if _is_slice_mapping(d):
            return slice_section(slice_from_mapping(d, source=source), source=source, label=label)
        if is_first_step(d):
            return first_step_section(d, source=source, label=label)
        if is_spikes(d):
            return spikes_section(d, source=source, label=label)
        if is_toy(d):
            return toy_section(d, source=source, label=label)
    if is_sharpness(d):
        return sharpness_section(d, source=source, label=label)
    if isinstance(d, Mapping) and is_hessian(d):
        return hessian_section(d, source=source, label=label)
    keys = ", ".join(list(d)[:8]) if isinstance(d, Mapping) else type(d).__name__
    raise LandscapeError(f"{label}: cannot tell what this result is (keys: {keys}); expected a slice, "
                         "Hessian, sharpness or probe result")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def section_from_path(path: Path) -> Section:
    label = short_path(path)
    if not path.exists():
        raise LandscapeError(f"{path}: no such file or folder")
    if path.is_dir():
        return run_section(path, label=label)
    if _is_hdf5(path):
        try:
            data = read_slice_h5(path)
        except OSError as exc:
            raise LandscapeError(f"{path}: unreadable HDF5 file ({exc})") from None
        return slice_section(data, source=str(path), label=label)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LandscapeError(f"{path}: neither an HDF5 slice file nor a JSON result") from None
    return section_from_mapping(d, source=str(path), label=label)


def load_sections(items: Iterable[Item]) -> List[Section]:
    """One section per item (paths, dicts, or result objects with ``to_json``)."""
    from ..results import jsonable

    out: List[Section] = []
    for i, item in enumerate(items, start=1):
        if isinstance(item, (str, Path)):
            out.append(section_from_path(Path(item)))
        elif isinstance(item, Section):
            out.append(item)
        else:
            d = jsonable(item)
            name = type(item).__name__ if not isinstance(item, (Mapping, list)) else f"result {i}"
            out.append(section_from_mapping(d, source=name, label=_object_label(name, d)))
    return out


def _object_label(name: str, d: Any) -> str:
    """``Surface (run/s.h5)``: the result's type and the file or checkpoint it is about."""
    if not isinstance(d, Mapping):
        return name
    prov = d.get("provenance") if isinstance(d.get("provenance"), Mapping) else {}
    where = d.get("out") or d.get("run_dir") or prov.get("checkpoint") or prov.get("run_dir")
    return f"{name} ({short_path(where)})" if where else name


def _as_list(items: Union[Item, Sequence[Item]]) -> List[Item]:
    if isinstance(items, (str, Path, Mapping)) or hasattr(items, "to_json") or not isinstance(items, (list, tuple)):
        return [items]
    return list(items)


def build_report(items: Union[Item, Sequence[Item]], *, title: Optional[str] = None) -> Report:
    """Load every item and build its figures (nothing is written)."""
    sections = load_sections(_as_list(items))
    if not sections:
        raise LandscapeError("nothing to report: give at least one slice file, JSON result or run folder")
    return Report(title=title or ("landscape report — " + sections[0].title if len(sections) == 1
                                  else f"landscape report ({len(sections)} inputs)"), sections=tuple(sections))


def write_html(items: Union[Item, Sequence[Item]], out_path: Union[str, Path], *,
               title: Optional[str] = None) -> Path:
    """Write one self-contained, offline HTML page for ``items``; returns the path written."""
    from ..distributed import is_main
    from .html import render_page

    report = build_report(items, title=title)
    out = Path(out_path)
    if is_main():
        text, _ = render_page(report.sections, title=report.title)
        from ..outputs import write_text_safely

        out = write_text_safely(out, text)
    return out


def export_png(report: Report, out_dir: Union[str, Path], *, width: int = 1200) -> List[Path]:
    """Static PNGs of every figure through kaleido; raises LandscapeError when it is unavailable."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        raise LandscapeError("PNG export needs kaleido (pip install kaleido, or the [export] extra)") from None
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    for i, (_, block) in enumerate(report.figures, start=1):
        path = d / f"{i:02d}-{block.name}.png"
        try:
            block.figure.write_image(str(path), width=width, height=block.figure.layout.height or 450)
        except Exception as exc:  # kaleido needs a browser; say what failed instead of a traceback
            raise LandscapeError(f"PNG export failed for {path.name}: {str(exc).splitlines()[0][:200]}") from None
        written.append(path)
    return written

# landscape.report(...) is also the notebook function (landscape.callable_package).
__import__("landscape.callable_package").callable_package.make_callable(__name__)
