"""What every bench shares: a progress bar on stderr, PNG plots, and the one JSON line.

How it works
------------
A bench measures, then calls ``emit(figures, plots)``: the JSON line goes to stdout (the one
machine-readable output, unchanged), the same figures to ``<out>/<bench>.json``, and each
plot to ``<out>/<bench>-<name>.png`` beside it. ``<out>`` is ``bench/out/`` (gitignored),
or ``$HYPERTAB_BENCH_OUT``. Plots are built from plain data by the helpers below
(``cdf_plot``, ``series_plot``, ``bar_plot``) with matplotlib's Agg backend (no display
needed); a plot that fails to draw is reported on stderr and never loses the JSON line.

``progress(total, what)`` is a tqdm bar on stderr, shown only when stderr is a terminal:
``make bench 2> log`` and CI logs stay free of carriage returns.

``quick()`` is true under ``make bench`` (it sets ``HYPERTAB_BENCH_QUICK=1``): the few
benches whose default run is long (a million fuzz inputs) take a smaller default count then.
An explicit flag always wins.

``RssSampler(pid)`` records a process's resident memory over time (psutil) for the
"RSS over time" plots.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, StrMethodFormatter
from tqdm import tqdm

OUT_DIR = Path(__file__).resolve().parent / "out"
QUICK_ENV = "HYPERTAB_BENCH_QUICK"
OUT_ENV = "HYPERTAB_BENCH_OUT"
SIZE = (7.0, 4.6)  # inches at 100 dpi: readable on a page, ~40-70 KB as PNG


def quick() -> bool:
    """True when the bench runs under ``make bench`` (smaller defaults for long benches)."""
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


def out_dir() -> Path:
    """Where the JSON copy and the PNGs go (made on first use)."""
    path = Path(os.environ.get(OUT_ENV) or OUT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def bar(total: int | None, what: str, unit: str = "it") -> tqdm[Any]:
    """A progress bar on stderr (only when stderr is a terminal); ``.update(n)``, then
    ``.close()`` it (or use ``progress``)."""
    return tqdm(
        total=total,
        desc=what,
        unit=unit,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        leave=False,
        dynamic_ncols=True,
        mininterval=0.2,
    )


@contextmanager
def progress(total: int | None, what: str, unit: str = "it") -> Iterator[tqdm[Any]]:
    """``bar`` as a context manager: closed on the way out."""
    bar_ = bar(total, what, unit)
    try:
        yield bar_
    finally:
        bar_.close()


# --- plots -----------------------------------------------------------------------------------


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=SIZE, dpi=100, layout="constrained")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def cdf_plot(
    title: str,
    samples_ms: Mapping[str, Sequence[float]],
    xlabel: str = "latency (ms)",
    log_x: bool = False,
    unit: str = "ms",
) -> Figure:
    """Latency CDFs, one line per series (milliseconds), with the p50 and p99 marked."""
    fig, ax = _figure(title, xlabel, "fraction of samples ≤ x")
    for label, raw in samples_ms.items():
        values = sorted(raw)
        if not values:
            continue
        n = len(values)
        p50 = values[n // 2]
        p99 = values[min(n - 1, int(n * 0.99))]
        # Half a million deliveries draw no better than ~4,000 ranks (the tail kept whole).
        ranks = sorted({*range(0, n, max(1, n // 4000)), *range(max(0, n - 200), n)})
        ax.step(
            [values[i] for i in ranks],
            [(i + 1) / n for i in ranks],
            where="post",
            label=f"{label} (n={n:,}, p50 {_short(p50)} {unit}, p99 {_short(p99)} {unit})",
        )
    ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
    ax.set_ylim(0, 1.01)
    if log_x:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
    fig.legend(loc="outside lower center", fontsize="small")  # below: CDF lines fill the axes
    return fig


def series_plot(
    title: str,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ylabel: str,
    xlabel: str = "time since start (s)",
    steps: bool = False,
) -> Figure:
    """Values over time (throughput, RSS), one line per series: ``{label: (xs, ys)}``."""
    fig, ax = _figure(title, xlabel, ylabel)
    for label, (xs, ys) in series.items():
        if steps:
            ax.step(xs, ys, where="post", label=label)
        else:
            few = len(xs) <= 12  # a handful of rounds: mark each one
            ax.plot(xs, ys, label=label, linewidth=1.2, marker="o" if few else None)
        if all(isinstance(x, int) for x in xs):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    if len(series) > 1:
        ax.legend(fontsize="small")
    return fig


def bar_plot(
    title: str,
    groups: Mapping[str, Mapping[str, float]],
    ylabel: str,
    log_y: bool = False,
) -> Figure:
    """Grouped bars: ``{group: {series: value}}`` (e.g. hub against its baselines per case),
    each bar labelled with its value."""
    labels = list(groups)
    names: list[str] = []
    for values in groups.values():
        names += [n for n in values if n not in names]
    fig, ax = _figure(title, "", ylabel)
    width = 0.8 / max(1, len(names))
    for k, name in enumerate(names):
        xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(labels))]
        ys = [groups[g].get(name, 0.0) for g in labels]
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, labels=[_short(y) for y in ys], fontsize="x-small", padding=2)
    ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 4 else 0, ha="right"
                  if len(labels) > 4 else "center")  # fmt: skip
    ax.grid(True, axis="y", alpha=0.3)
    ax.grid(False, axis="x")
    if log_y:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    else:
        ax.margins(y=0.12)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.4g}"))
    if len(names) > 1:
        ax.legend(fontsize="small")
    return fig


def _plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks as plain numbers (0.5, 20, 300), not powers of ten."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: _short(v) if f"{v:.1e}"[0] in "25" else ""))


def _short(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def rate_over_time(
    stamps: Sequence[float],
    start: float,
    bin_s: float | None = None,
    counts: Sequence[int] | None = None,
) -> tuple[list[float], list[float]]:
    """Events per second in ``bin_s`` bins (default: about 40 over the span, at least 50 ms)
    from event timestamps (seconds, same clock as ``start``), plotted at each bin's middle;
    the last, partial bin is left out. ``counts`` gives the events each stamp stands for
    (one frame carrying many changes)."""
    if not stamps:
        return [], []
    span = max(stamps) - start
    if bin_s is None:
        bin_s = max(0.05, span / 40)
    bins = [0] * (int(span / bin_s) + 1)
    for k, t in enumerate(stamps):
        bins[max(0, int((t - start) / bin_s))] += 1 if counts is None else counts[k]
    if len(bins) > 1:
        bins.pop()  # the last bin is partial: its rate would read as a drop
    return [(i + 0.5) * bin_s for i in range(len(bins))], [c / bin_s for c in bins]


@dataclass
class RssSampler:
    """Samples a process's resident set size every ``interval`` seconds in a thread."""

    pid: int
    interval: float = 0.1
    times: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        import psutil

        process = psutil.Process(self.pid)
        began = time.monotonic()

        def run() -> None:
            while not self._stop.is_set():
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    return
                self.times.append(time.monotonic() - began)
                self.rss_mib.append(rss / 2**20)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=run, daemon=True, name="rss-sampler")
        self._thread.start()
        return self

    def stop(self) -> tuple[list[float], list[float]]:
        """Stop sampling; the (seconds, MiB) series."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.times, self.rss_mib


# --- output ----------------------------------------------------------------------------------


Plot = Callable[[], Figure]


def emit(figures: Mapping[str, Any], plots: Mapping[str, Plot] | None = None) -> None:
    """Print the JSON line; write it and each plot (``<bench>-<name>.png``) to the out dir.

    ``plots`` maps a name to a function drawing the figure: it runs after the JSON line is
    out, so a plot that fails to draw costs that plot only."""
    line = json.dumps(figures)
    print(line, flush=True)
    name = str(figures.get("bench", Path(sys.argv[0]).stem))
    try:
        directory = out_dir()
        (directory / f"{name}.json").write_text(line + "\n")
    except OSError as exc:
        print(f"bench: could not write {name}.json: {exc}", file=sys.stderr)
        return
    for plot_name, draw in (plots or {}).items():
        path = directory / f"{name}-{plot_name}.png"
        try:
            fig = draw()
        except Exception as exc:  # a plot is a by-product: report it, keep the others
            print(f"bench: could not draw {path.name}: {exc!r}", file=sys.stderr)
            continue
        try:
            fig.savefig(path)
        except (OSError, ValueError) as exc:
            print(f"bench: could not write {path.name}: {exc}", file=sys.stderr)
        finally:
            plt.close(fig)
    if plots:
        print(f"# plots: {directory}/{name}-*.png", file=sys.stderr)
