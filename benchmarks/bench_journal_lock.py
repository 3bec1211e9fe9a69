"""The journal file's lock: the stall a killed writer causes, and what the lock costs per append.

    nice -n 10 python benchmarks/bench_journal_lock.py   # 5 kills per lock, 3 x 2,000 appends
    nice -n 10 python benchmarks/bench_journal_lock.py --kills 2 --no-doc

Side by side in one run, Optuna's default journal lock (``JournalFileSymlinkLock``, what a plain
``JournalFileBackend`` takes) and tuneops' (``tuneops._journal_lock.JournalLock``, what every
tuneops journal storage takes):

1. **Stall after a killed writer.** A child process takes the lock and is SIGKILLed while it
   holds it (as a worker killed within an append). A waiter that started waiting before the
   kill then takes the lock: the seconds from the kill to the moment it holds it. Optuna breaks
   a lock left behind after 30 s without change (its grace period); every worker of the study
   waits that long.
2. **Cost per append.** One process appends ``--appends`` one-entry logs through the backend
   (``JournalFileBackend`` with Optuna's lock; tuneops' ``SnapshotJournalFile``: its lock and the
   torn-tail check), CPU microseconds per append, interleaved, ``--repeats`` times. The fsync
   of each append is in both.
3. **Exclusion under contention.** ``--writers`` processes append concurrently through tuneops'
   backend: every entry must be read back whole and once.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, render_table, stamp, write_doc_block  # noqa: E402

SECTION = "## Faults (issue 14)"


def _lock(kind: str, path: str):
    if kind == "optuna":
        from optuna.storages.journal import JournalFileSymlinkLock

        return JournalFileSymlinkLock(path)
    from tuneops._journal_lock import JournalLock

    return JournalLock(path)


def _hold(kind: str, path: str, ready) -> None:
    _lock(kind, path).acquire()
    ready.set()
    time.sleep(3600)


def stall_after_kill(kind: str, path: str) -> float:
    """Seconds from SIGKILL of the holder to a waiter holding the lock."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(kind, path, ready))
    holder.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the holder never took the lock")
        got: list[float] = []
        waiter = _lock(kind, path)

        def wait() -> None:
            waiter.acquire()
            got.append(time.monotonic())
            waiter.release()

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        time.sleep(0.3)  # the waiter is waiting
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        thread.join(120)
        if not got:
            raise RuntimeError(f"{kind}: the waiter never took the lock")
        return got[0] - killed
    finally:
        holder.kill()
        holder.join()


def append_cost(kind: str, path: str, n: int) -> float:
    """CPU microseconds per one-entry append."""
    if kind == "optuna":
        from optuna.storages.journal import JournalFileBackend

        backend = JournalFileBackend(path)
    else:
        from tuneops.storage import SnapshotJournalFile

        backend = SnapshotJournalFile(path, use_snapshot=False)
    start = time.process_time()
    for i in range(n):
        backend.append_logs([{"op_code": 0, "worker_id": "bench", "i": i}])
    return (time.process_time() - start) / n * 1e6


def _writer(path: str, writer: int, n: int) -> None:
    from tuneops.storage import SnapshotJournalFile

    backend = SnapshotJournalFile(path, use_snapshot=False)
    for i in range(n):
        backend.append_logs([{"writer": writer, "i": i, "pad": "x" * 256}])


def contention(path: str, writers: int, n: int) -> tuple[int, int, int]:
    """(entries expected, entries read back whole and once, lines that did not decode)."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, n)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    seen, bad = set(), 0
    for line in Path(path).read_bytes().splitlines():
        try:
            entry = json.loads(line)
            seen.add((entry["writer"], entry["i"]))
        except (ValueError, KeyError):
            bad += 1
    return writers * n, len(seen), bad


def _order(ratio: float) -> str:
    """``ratio`` as an order of magnitude: "over 1,000x" for 1,065 or 5,784."""
    if ratio < 10:
        return f"{ratio:.1f}x"
    return f"over {10 ** int(math.log10(ratio)):,}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="killed holders per lock")
    parser.add_argument("--appends", type=int, default=2000, help="appends per cost measurement")
    parser.add_argument("--repeats", type=int, default=3, help="cost measurements per lock")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer processes")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    command = command_line([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(command, flush=True)
    load_start = os.getloadavg()[0]
    started = stamp()
    tmp = Path(tempfile.mkdtemp(prefix="tuneops-journal-lock-"))
    stalls: dict[str, list[float]] = {"optuna": [], "tuneops": []}
    costs: dict[str, list[float]] = {"optuna": [], "tuneops": []}
    for k in range(args.kills):
        for kind in ("optuna", "tuneops") if k % 2 == 0 else ("tuneops", "optuna"):
            path = tmp / f"stall-{kind}-{k}.journal"
            path.touch()
            stalls[kind].append(stall_after_kill(kind, str(path)))
            print(f"kill {k + 1}: {kind} waiter held the lock {stalls[kind][-1]:.3f} s after "
                  "the holder's SIGKILL", flush=True)
    for r in range(args.repeats):
        for kind in ("optuna", "tuneops") if r % 2 == 0 else ("tuneops", "optuna"):
            costs[kind].append(append_cost(kind, str(tmp / f"cost-{kind}-{r}.journal"),
                                           args.appends))
            print(f"repeat {r + 1}: {kind} {costs[kind][-1]:.1f} CPU us per append", flush=True)
    expected, whole, bad = contention(str(tmp / "contention.journal"), args.writers, 500)
    print(f"{args.writers} writers: {whole} of {expected} entries whole and once, {bad} bad lines",
          flush=True)
    load_end = os.getloadavg()[0]

    def spread(values: list[float], fmt: str) -> str:
        return (f"{fmt.format(statistics.median(values))} "
                f"({fmt.format(min(values))}-{fmt.format(max(values))})")

    table = render_table(
        ["lock", "stall after a killed holder, s: median (min-max)",
         "CPU us per append: median (min-max)"],
        [
            ["Optuna's default (JournalFileSymlinkLock)", spread(stalls["optuna"], "{:.2f}"),
             spread(costs["optuna"], "{:.0f}")],
            ["tuneops (flock + Optuna's lock file)", spread(stalls["tuneops"], "{:.3f}"),
             spread(costs["tuneops"], "{:.0f}")],
        ],
    )
    ratio = statistics.median(stalls["optuna"]) / max(statistics.median(stalls["tuneops"]), 1e-6)
    extra = statistics.median(costs["tuneops"]) - statistics.median(costs["optuna"])
    text = "\n".join([
        f"`{command}` ({started}; load average {load_start:.1f} at the start, {load_end:.1f} at the end, on "
        f"{os.cpu_count()} cores; {args.kills} killed holders and {args.repeats} x "
        f"{args.appends} appends per lock, interleaved)",
        "",
        table,
        "",
        f"A writer killed while it holds the journal's lock stalls every other writer "
        f"{statistics.median(stalls['optuna']):.1f} s with Optuna's lock and "
        f"{statistics.median(stalls['tuneops']) * 1e3:.0f} ms with tuneops': "
        f"{_order(ratio)} shorter (this run {ratio:,.0f}x; the ratio divides by a stall of a few "
        f"milliseconds and moves several-fold between runs). An append costs {statistics.median(costs['tuneops']):.0f} CPU us against "
        f"{statistics.median(costs['optuna']):.0f} ({extra:+.0f} us: the flock, the lock file "
        f"naming its writer, the check for a torn last entry; the fsync is in both). "
        f"{args.writers} processes appending concurrently through tuneops' backend: {whole} of "
        f"{expected} entries read back whole and once, {bad} lines that did not decode.",
    ])
    print("\n" + text)
    if not args.no_doc:
        write_doc_block("bench_journal_lock", text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
