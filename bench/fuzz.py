"""Coverage-guided fuzzing of the wire decoder and the session rules (atheris + libFuzzer).

usage: python bench/fuzz.py [--count 1000000] [--seed 1] [--max-len 16384]

How it works
------------
The target (``bench/fuzz_target.py``) does with one input what a session does with a frame:
decode it (JSON text or msgpack binary), answer a bad frame, and put a decoded message
through the session rules (authorization, admission cost, the op engine's batch planning,
custom function compilation) - without a socket. The only documented failures are the
decoder's ``DecodeError`` and the rules' ``BatchError`` / ``FormulaError``.

- An *unhandled exception* is any other exception escaping the target: counted by type,
  the first few kept as examples (exception and the input's first bytes in hex).
- A *crash* is the fuzzing process dying: a signal in a C extension, libFuzzer's RSS limit
  (2 GiB) or its per-input timeout (20 s). The supervisor (this process) counts it, keeps
  libFuzzer's artifact and starts a new worker for the inputs left.

Inputs come from libFuzzer's byte mutations (with a dictionary of the wire's words) and
from the target's structural mutations (hostile values, dropped/added fields, swapped type
tags, lists past their limits, values nested thousands of levels deep, re-encoding in the
other encoding), starting from one valid frame of every client message type and every op
in both encodings. Coverage comes from instrumenting the ``protocol`` and ``server`` code.

Prints one JSON line: inputs, crashes, unhandled_exceptions (+ exception_types, examples),
what the inputs reached (decoded, decode_errors, refused, planned, batch_errors),
inputs_per_s, and the worker's RSS after start-up and at the end (MB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STATS_EVERY = 5000
"""The worker saves its counters this often, so a crash loses at most this many."""

MAX_EXAMPLES = 5

# --- the worker: one libFuzzer process ---------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


class Worker:
    """Counts inputs, records unhandled exceptions, saves stats, stops at ``count``."""

    def __init__(self, count: int, stats: Path, check: Any, counters: tuple[str, ...]) -> None:
        self.count = count
        self.stats_path = stats
        self.check = check
        self.counts = dict.fromkeys(("inputs", *counters), 0)
        self.unhandled = 0
        self.types: dict[str, int] = {}
        self.examples: list[dict[str, str]] = []
        self.rss_start = _rss_mb()
        self.started = time.perf_counter()

    def one_input(self, data: bytes) -> None:
        """libFuzzer's test function."""
        self.counts["inputs"] += 1
        try:
            self.check(data, self.counts)
        except Exception as exc:
            self.unhandled += 1
            name = type(exc).__name__
            self.types[name] = self.types.get(name, 0) + 1
            what = f"{name}: {str(exc)[:120]}"
            seen = {e["exception"] for e in self.examples}
            if len(self.examples) < MAX_EXAMPLES and what not in seen:
                self.examples.append({"exception": what, "input_head": data[:48].hex()})
        done = self.counts["inputs"]
        if done >= self.count:
            self.save(final=True)
            sys.stdout.flush()
            os._exit(0)  # libFuzzer never returns from Fuzz(); stop exactly at count
        if done % STATS_EVERY == 0:
            self.save(final=False)

    def save(self, *, final: bool) -> None:
        """Write the counters (atomically) for the supervisor."""
        figures = {
            **self.counts,
            "counters": [name for name in self.counts if name != "inputs"],
            "unhandled_exceptions": self.unhandled,
            "exception_types": self.types,
            "examples": self.examples,
            "seconds": time.perf_counter() - self.started,
            "rss_start_mb": self.rss_start,
            "rss_end_mb": _rss_mb(),
            "final": final,
        }
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(figures))
        os.replace(tmp, self.stats_path)


def run_worker(args: argparse.Namespace) -> None:
    """Fuzz ``args.count`` inputs in this process (never returns)."""
    import atheris

    with atheris.instrument_imports(include=["protocol", "server", "fuzz_target"]):
        import fuzz_target

    work = Path(args.workdir)
    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    for i, seed in enumerate(fuzz_target.seeds()):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    dictionary = work / "wire.dict"
    dictionary.write_text("".join(f"{json.dumps(w)}\n" for w in fuzz_target.WORDS))
    worker = Worker(args.count, Path(args.stats), fuzz_target.check, fuzz_target.COUNTERS)
    atheris.Setup(
        [
            sys.argv[0],
            f"-seed={args.seed}",
            f"-max_len={args.max_len}",
            f"-runs={args.count * 2 + 1000}",
            f"-dict={dictionary}",
            f"-artifact_prefix={work}/",
            "-timeout=20",
            "-rss_limit_mb=2048",
            "-print_final_stats=0",
            str(corpus),
        ],
        worker.one_input,
        custom_mutator=lambda data, max_size, seed: fuzz_target.mutate(
            data, max_size, seed, atheris.Mutate
        ),
    )
    atheris.Fuzz()


# --- the supervisor: restarts workers after crashes, prints the JSON line ---------------


def supervise(args: argparse.Namespace) -> dict[str, Any]:
    """Run workers until ``args.count`` inputs are done; sum their figures."""
    total: dict[str, Any] = {
        "inputs": 0,
        "crashes": 0,
        "unhandled_exceptions": 0,
        "exception_types": {},
        "examples": [],
        "crash_artifacts": [],
    }
    counters: list[str] = []  # what the target counts, as the workers report it
    seconds = 0.0
    rss_start = rss_end = None
    seed = args.seed
    with tempfile.TemporaryDirectory(prefix="hypertab-fuzz-") as tmp:
        while total["inputs"] < args.count and total["crashes"] <= args.max_crashes:
            work = Path(tmp) / f"w{seed}"
            work.mkdir()
            stats = work / "stats.json"
            command = [
                sys.executable,
                __file__,
                "--worker",
                f"--count={args.count - total['inputs']}",
                f"--seed={seed}",
                f"--max-len={args.max_len}",
                f"--workdir={work}",
                f"--stats={stats}",
            ]
            with open(work / "libfuzzer.log", "wb") as log:
                proc = subprocess.run(command, stdout=log, stderr=log, check=False)
            figures = json.loads(stats.read_text()) if stats.exists() else {}
            if figures.get("inputs", 0) == 0 and proc.returncode == 0:
                raise SystemExit(f"worker ran nothing; see {work / 'libfuzzer.log'}")
            crashed = proc.returncode != 0 or not figures.get("final")
            for name in figures.get("counters", []):
                if name not in counters:
                    counters.append(name)
                    total[name] = 0
            for name in ("inputs", "unhandled_exceptions", *counters):
                total[name] += figures.get(name, 0)
            for name, n in figures.get("exception_types", {}).items():
                total["exception_types"][name] = total["exception_types"].get(name, 0) + n
            total["examples"] = (total["examples"] + figures.get("examples", []))[:MAX_EXAMPLES]
            seconds += figures.get("seconds", 0.0)
            if rss_start is None:
                rss_start = figures.get("rss_start_mb")
            rss_end = figures.get("rss_end_mb", rss_end)
            if crashed:
                total["crashes"] += 1
                for artifact in sorted(work.glob("*-*")):
                    if artifact.name.split("-")[0] in ("crash", "oom", "timeout", "leak"):
                        total["crash_artifacts"].append(
                            {
                                "kind": artifact.name.split("-")[0],
                                "head": artifact.read_bytes()[:48].hex(),
                            }
                        )
                total["inputs"] += 1  # the input that killed the worker
            seed += 1
    total["inputs_per_s"] = round(total["inputs"] / seconds) if seconds else 0
    total["seconds"] = round(seconds, 1)
    total["rss_start_mb"] = rss_start
    total["rss_end_mb"] = rss_end
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="inputs to run")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer seed of the first worker")
    parser.add_argument("--max-len", type=int, default=16384, help="longest input, bytes")
    parser.add_argument("--max-crashes", type=int, default=20, help="stop after this many")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    print(json.dumps(supervise(args)))


if __name__ == "__main__":
    main()
