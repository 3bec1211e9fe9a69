"""``tuneops kb build``: the prebuilt knowledge base, from cold tuning runs on PMLB datasets.

For every (dataset, family) the build runs an ordinary tuneops study (``tuning.run``, cold
multivariate TPE, the family's default space, fixed folds and seed) in an in-memory storage,
and keeps what the study recorded: its meta-features, its best configurations and the score of
every trial in the order they ran (the cold learning curve that ``benchmarks/bench_warmstart.py``
reuses), plus the score of the family's library defaults on the same folds (what the zero-shot
portfolio's first pick should beat). Finished jobs are appended to a checkpoint file, so an
interrupted build resumes: each record is one write of one line, and a last line torn by a
crash is skipped with a warning. The jobs run in worker processes that die with the build
(SIGTERM or SIGKILL to it), and SIGINT or SIGTERM stops the build with
:class:`BuildInterrupted`, which says how many jobs the checkpoint kept.
:func:`add_default_scores` measures the defaults of an existing base without running its
studies again.

The asset records what it was built from (``built_with``: datasets, families, trials, folds,
seed, library versions, the command).
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from threadpoolctl import threadpool_limits

from tuneops import runner
from tuneops._files import write_error
from tuneops.backends.local import die_with_parent
from tuneops.data import load_dataset
from tuneops.errors import UsageError
from tuneops.export import library_versions
from tuneops.knowledge.base import RELATED, Entry, KnowledgeBase, dedupe, entries_of_study, related
from tuneops.objective import SpecObjective
from tuneops.spec import load_spec
from tuneops.tuning import run

__all__ = [
    "BuildInterrupted",
    "DEFAULT_DATASETS",
    "DEFAULT_FAMILIES",
    "ZERO_SHOT_DATASETS",
    "RELATED",
    "build",
    "build_one",
    "cold_spec",
    "default_score",
    "add_default_scores",
    "related",
]

#: Small PMLB datasets (<= ~1000 rows), one of each group of near-duplicates (for example
#: wdbc but not breast_cancer_wisconsin, pima but not diabetes), so leave-one-out is honest;
#: cheapest first, so a time-boxed build covers as many datasets as it can.
DEFAULT_DATASETS: tuple[str, ...] = (
    # classification, smallest first (rows x sqrt(columns))
    "analcatdata_boxing1",
    "appendicitis",
    "iris",
    "mux6",
    "hayes_roth",
    "tae",
    "prnn_synth",
    "corral",
    "new_thyroid",
    "glass2",
    "analcatdata_lawsuit",
    "prnn_crabs",
    "biomed",
    "glass",
    "lymphography",
    "wine_recognition",
    "promoters",
    "penguins",
    "ecoli",
    "analcatdata_germangss",
    "heart_statlog",
    "auto",
    "backache",
    "heart_h",
    "solar_flare_1",
    "heart_c",
    "irish",
    "balance_scale",
    "spect",
    "schizo",
    "monk3",
    "monk1",
    "saheart",
    "monk2",
    "threeOf9",
    "analcatdata_dmft",
    "sonar",
    "horse_colic",
    "vote",
    "profb",
    "ionosphere",
    "dermatology",
    "pima",
    "calendarDOW",
    "spectf",
    "collins",
    "crx",
    "wdbc",
    "credit_g",
    # regression, smallest first
    "663_rabe_266",
    "210_cloud",
    "665_sleuth_case2002",
    "230_machine_cpu",
    "519_vinnie",
    "579_fri_c0_250_5",
    "195_auto_price",
    "229_pwLinear",
    "690_visualizing_galaxy",
    "602_fri_c3_250_10",
    "560_bodyfat",
    "522_pm10",
)
#: Every family the zero-shot warm start covers (issue 18); the shipped base has all of them.
DEFAULT_FAMILIES: tuple[str, ...] = (
    "knn",
    "linear",
    "hist_gradient_boosting",
    "lightgbm",
    "random_forest",
    "xgboost",
    "extra_trees",
    "mlp",
    "svm",
)
#: The shipped base's datasets for every family: the 35 smallest classification datasets of
#: :data:`DEFAULT_DATASETS` (31 groups once near-duplicates are merged), what a build on two
#: shared cores finishes; ``benchmarks/bench_warmstart.py`` leaves each out in turn.
ZERO_SHOT_DATASETS: tuple[str, ...] = DEFAULT_DATASETS[:35]
QUALITY = {"classification": "accuracy", "regression": "r2"}
_CHEAP = frozenset({"knn", "linear"})


def _distinct(entry: Entry) -> Entry:
    """``entry`` with repeated configurations dropped (bases built before deduplication)."""
    configs, costs = dedupe(entry.configs, entry.costs)
    if len(configs) == len(entry.configs):
        return entry
    return replace(entry, configs=tuple(configs), costs=tuple(costs))


def cold_spec(
    dataset: str, family: str, task: str, *, n_trials: int, cv_folds: int, seed: int
) -> dict[str, Any]:
    """The spec of the build's cold study (also what a benchmark compares warm runs against)."""
    source = dataset if dataset.startswith("pmlb:") else f"pmlb:{dataset}"
    return {
        "study": f"kb-build.{source.removeprefix('pmlb:')}.{family}",
        "data": {"source": source},
        "model": {"family": family},
        "objectives": [QUALITY[task]],
        "search": {
            "n_trials": n_trials,
            "cv_folds": cv_folds,
            "seed": seed,
            "sampler": "tpe",
            "pruner": "none",
        },  # every trial at full fidelity: the curve counts trials
        "storage": ":memory:",
    }


def default_score(
    dataset: str, family: str, *, cv_folds: int, seed: int, task: str | None = None
) -> float | None:
    """The CV score of ``family`` with its library defaults (``params = {}``) on ``dataset``.

    The folds, seed and metric are those of the build's cold study (:func:`cold_spec`), so the
    score is comparable with the entry's. ``task``: the entry's (default: inferred from the
    data, as the build does). None when the metric was not measured.

    Raises:
        Exception: whatever the data checks or the estimator raise (a class too rare for the
            folds; a family whose defaults the tuneops objective cannot train).
    """
    source = dataset if dataset.startswith("pmlb:") else f"pmlb:{dataset}"
    data = load_dataset(source, task=task or "auto")
    spec = load_spec(
        cold_spec(dataset, family, data.task, n_trials=1, cv_folds=cv_folds, seed=seed)
    )
    with threadpool_limits(1):
        metrics, _ = SpecObjective(spec, data).evaluate(family, {})
    value = metrics.get(QUALITY[data.task])
    return None if value is None else float(value)


def _safe_default(
    dataset: str, family: str, *, cv_folds: int, seed: int, task: str | None = None
) -> tuple[float | None, str | None]:
    """:func:`default_score`, or None and why: an entry without a default is still an entry."""
    try:
        return default_score(dataset, family, cv_folds=cv_folds, seed=seed, task=task), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {str(exc)[:160]}"


def build_one(
    dataset: str, family: str, *, n_trials: int, cv_folds: int, seed: int
) -> list[dict[str, Any]]:
    """Tune ``family`` on PMLB ``dataset`` cold; the entry (as a dict) its study yields, with
    the score of the family's defaults on the same folds (:func:`default_score`)."""

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_dataset(f"pmlb:{dataset}")
    spec = cold_spec(dataset, family, data.task, n_trials=n_trials, cv_folds=cv_folds, seed=seed)
    with tempfile.TemporaryDirectory() as out, threadpool_limits(1):
        result = run(spec, dataset=None, output_dir=out)
        entries = entries_of_study(result.study, keep=None)
    default, _ = _safe_default(dataset, family, cv_folds=cv_folds, seed=seed, task=data.task)
    return [dict(replace(e, default_score=default).to_dict(), source="shipped") for e in entries]


def _default_job(
    args: tuple[int, str, str, str, int, int],
) -> tuple[int, float | None, str | None, float]:
    index, dataset, family, task, cv_folds, seed = args
    started = time.time()
    score, error = _safe_default(dataset, family, cv_folds=cv_folds, seed=seed, task=task)
    return index, score, error, time.time() - started


def add_default_scores(
    kb: KnowledgeBase,
    *,
    families: Sequence[str] | None = None,
    n_jobs: int = 1,
    log: Callable[[str], None] = print,
) -> KnowledgeBase:
    """``kb`` with the default score (:func:`default_score`) of every entry that lacks one.

    Cheap next to the cold studies (one CV of the defaults per entry), so a base built before
    defaults were recorded gains them without running its studies again. Uses the folds and
    seed the base records (``built_with``; an entry's own build settings, 3 folds and seed 0,
    when it records none). ``families``: only these families' entries.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    built = dict(kb.built_with or {})
    cv_folds, seed = int(built.get("cv_folds", 3)), int(built.get("seed", 0))
    jobs = [
        (i, e.dataset, e.family, e.task, cv_folds, seed)
        for i, e in enumerate(kb.entries)
        if e.default_score is None and (families is None or e.family in families)
    ]
    log(f"kb defaults: {len(jobs)} entries to score, {n_jobs} process(es)")
    scores: dict[int, float | None] = {}
    with ProcessPoolExecutor(
        max(1, n_jobs), mp_context=multiprocessing.get_context("fork")
    ) as pool:
        for index, score, error, seconds in pool.map(_default_job, jobs):
            scores[index] = score
            e = kb.entries[index]
            what = f"FAILED {error}" if error else f"default {score}"
            log(f"  {e.dataset}/{e.family}: {what} ({seconds:.1f}s)")
    entries = tuple(
        replace(e, default_score=scores[i]) if i in scores else e for i, e in enumerate(kb.entries)
    )
    built["default_scores"] = (
        "score of the family's library defaults (params = {}) on the entry's CV folds"
    )
    return KnowledgeBase(entries, built)


class BuildInterrupted(runner.Interrupted):
    """:func:`build` was stopped by SIGINT or SIGTERM; its worker processes are stopped.

    ``kept`` of the ``total`` jobs are in ``checkpoint`` (None: no checkpoint, nothing kept);
    the same build with the same checkpoint runs only the others.
    """

    def __init__(self, signum: int, *, kept: int, total: int, checkpoint: Path | None) -> None:
        super().__init__(signum)
        self.kept, self.total, self.checkpoint = kept, total, checkpoint

    @property
    def summary(self) -> str:
        """What the interruption kept, and how to go on, in one sentence."""
        if self.checkpoint is None:
            return (
                f"{self.kept} of {self.total} jobs had finished and none was kept (no "
                "checkpoint); build with a checkpoint file to keep finished jobs for a rerun"
            )
        return (
            f"{self.kept} of {self.total} jobs kept in {self.checkpoint}; build again with the "
            "same checkpoint to resume"
        )


#: True in a worker process of :func:`build`'s pool (set by its initializer).
_IN_POOL = False


class _NoRequeueNotices(logging.Filter):
    """Drops the runner's notices that an interrupted trial is queued again (or is being given
    back): a build job's study is in memory and goes with its process, so nothing is queued."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return "queued again" not in text and "giving back the running trials" not in text


def _start_pool_worker(parent: int) -> None:
    """Initializer of :func:`build`'s worker processes."""
    global _IN_POOL
    _IN_POOL = True
    # SIGTERM when the build dies, even by SIGKILL or a SIGTERM to its pid alone (`kill PID`,
    # `timeout`, a scheduler): the worker must not tune on as an orphan of init.
    die_with_parent()
    if os.getppid() != parent:  # the build died before the request took effect
        os._exit(128 + signal.SIGTERM)
    # Between jobs, Ctrl-C is the build's to handle (it stops its workers); in a job,
    # SIGINT and SIGTERM end the job (see _job).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("tuneops").addFilter(_NoRequeueNotices())


def _job(
    args: tuple[str, str, int, int, int],
) -> tuple[str, str, list[dict[str, Any]], float, str | None]:
    dataset, family, n_trials, cv_folds, seed = args
    started = time.time()
    try:
        with runner.stop_on_signals():
            entries = build_one(dataset, family, n_trials=n_trials, cv_folds=cv_folds, seed=seed)
        return dataset, family, entries, time.time() - started, None
    except KeyboardInterrupt as exc:
        if not _IN_POOL:
            raise
        # The build stops (it was signalled too, or it died): leave now, build_one's temporary
        # folder removed on the way here. A pool worker that returned would wait for more work.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(runner.Interrupted.of(exc).exit_code)
    except Exception as exc:  # one bad dataset must not lose the others
        return dataset, family, [], time.time() - started, f"{type(exc).__name__}: {exc}"


def _read_checkpoint(
    path: Path, n_trials: int, log: Callable[[str], None]
) -> dict[tuple[str, str], tuple[list[dict[str, Any]], int]]:
    """The jobs a checkpoint holds: (dataset, family) -> (entries, n_trials).

    A last line without its newline that is not a whole record (the build was killed while
    appending it) is cut off the file with a warning: that job runs again, and the next record
    starts on a line of its own. Any other bad line is refused.

    Raises:
        UsageError: a line is not a record of a kb build job (and was not cut off).
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    done: dict[tuple[str, str], tuple[list[dict[str, Any]], int]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            done[(rec["dataset"], rec["family"])] = (
                rec["entries"],
                int(rec.get("n_trials", n_trials)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines):  # the last line, and the file does not end with a newline
                log(
                    f"kb build: warning: the last line of the checkpoint {path} (line {number}, "
                    f"{len(line)} bytes) was cut off while it was written ({type(exc).__name__}"
                    "); removed it from the file: that job runs again"
                )
                with open(path, "r+b") as fh:
                    fh.truncate(len(data) - len(line))
                continue
            raise UsageError(
                f"checkpoint {str(path)!r}, line {number}: expected a JSON record of a kb build "
                f"job (dataset, family, entries), received {line[:80]!r}. What to do: give "
                "the checkpoint file of a kb build, or another path to start afresh."
            ) from None
    return done


def _append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to the checkpoint with a single write, flushed to disk: a crash
    leaves at most the last line cut off (removed on reading), never a line between others."""
    data = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a last record without its newline
            data = b"\n" + data
        written = os.write(fd, data)
        if written != len(data):  # a full disk: the line is cut off, as by a crash
            raise OSError(errno.ENOSPC, "short write: " + os.strerror(errno.ENOSPC))
        os.fsync(fd)
    except OSError as exc:
        raise write_error(path, exc, what="append to the checkpoint") from exc
    finally:
        os.close(fd)


def _stop_workers(workers: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM to the build's worker processes (Ctrl-C reached them already, but SIGTERM to
    the build's pid alone did not, and an idle worker ignores SIGINT); SIGKILL to one that has
    not exited within 10 s (a signal waits for a long computation in C to return)."""
    for p in workers:
        if p.pid is not None and p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in workers:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(timeout=5)


def build(
    datasets: Sequence[str] = DEFAULT_DATASETS,
    families: Sequence[str] = DEFAULT_FAMILIES,
    *,
    n_trials: int = 30,
    cv_folds: int = 3,
    seed: int = 0,
    n_jobs: int = 1,
    checkpoint: str | Path | None = None,
    max_minutes: float | None = None,
    extend: KnowledgeBase | None = None,
    log: Callable[[str], None] = print,
) -> KnowledgeBase:
    """Run the cold studies and collect their entries; resumes from ``checkpoint`` (JSON lines).

    Cheap families (k-NN, linear) run first, then the others family by family in the order
    given, so a time-boxed build (``max_minutes``: no job starts after that) covers whole
    families first. The asset lists what was built (``built_with.built``).

    ``extend``: an earlier base to add to; its entries for a (dataset, family) built now are
    replaced, the others kept, and its ``built_with`` is kept under ``built_with.extends``, so
    the asset still says how every entry was made.
    """

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # HistGradientBoosting: one thread per job
    done: dict[tuple[str, str], list[dict[str, Any]]] = {}
    trials_of: dict[tuple[str, str], int] = {}  # what each (dataset, family) was built with
    if checkpoint and Path(checkpoint).is_file():
        for key, (stored, trials) in _read_checkpoint(Path(checkpoint), n_trials, log).items():
            done[key], trials_of[key] = stored, trials
    cheap = [f for f in families if f in _CHEAP]
    order = [(d, f) for f in cheap for d in datasets]
    order += [(d, f) for f in families if f not in _CHEAP for d in datasets]
    jobs = [(d, f, n_trials, cv_folds, seed) for d, f in order if (d, f) not in done]
    log(
        f"kb build: {len(jobs)} job{'' if len(jobs) == 1 else 's'} to run ({len(done)} from the "
        f"checkpoint), {n_jobs} process(es)"
    )
    started = time.time()

    def record(result: tuple[str, str, list[dict[str, Any]], float, str | None]) -> None:
        dataset, family, entries, seconds, error = result
        if error:
            log(f"  {dataset}/{family}: FAILED {error}")
            return
        done[(dataset, family)] = entries
        trials_of[(dataset, family)] = n_trials
        if checkpoint:
            _append_record(
                Path(checkpoint),
                {"dataset": dataset, "family": family, "n_trials": n_trials, "entries": entries},
            )
        best = entries[0]["configs"][0]["score"] if entries and entries[0]["configs"] else None
        log(
            f"  {dataset}/{family}: best {best} in {seconds:.1f}s ({len(done)} done, "
            f"{time.time() - started:.0f}s)"
        )

    deadline = started + 60 * max_minutes if max_minutes is not None else None
    before = {p.pid for p in multiprocessing.active_children()}
    pool = ProcessPoolExecutor(
        max(1, n_jobs),
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_pool_worker,
        initargs=(os.getpid(),),
    )
    try:
        with runner.stop_on_signals():
            pending: set[Any] = set()
            queue = list(jobs)
            while queue or pending:
                while (
                    queue
                    and len(pending) < max(1, n_jobs)
                    and (deadline is None or time.time() < deadline)
                ):
                    pending.add(pool.submit(_job, queue.pop(0)))
                if not pending:
                    log(
                        f"kb build: time is up; {len(queue)} jobs not started (rerun with the "
                        "checkpoint to resume)"
                    )
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    record(future.result())
    except KeyboardInterrupt as exc:
        stop = runner.Interrupted.of(exc)
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:  # a second signal must not cut the stopping of the workers short
            _stop_workers([p for p in multiprocessing.active_children() if p.pid not in before])
            pool.shutdown(wait=True, cancel_futures=True)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        raise BuildInterrupted(
            stop.signum,
            kept=sum(key in done for key in order),
            total=len(order),
            checkpoint=Path(checkpoint) if checkpoint else None,
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    entries = tuple(
        Entry.from_dict(e, "shipped")
        for f in families
        for d in datasets
        for e in done.get((d, f), [])
    )
    if extend is not None:
        fresh = {(e.dataset, e.family) for e in entries}
        kept = tuple(_distinct(e) for e in extend if (e.dataset, e.family) not in fresh)
        entries = kept + entries
    per_family = {
        f: sorted(
            {t for (d, g), t in trials_of.items() if g == f and (d, g) in done and d in datasets}
        )
        for f in families
    }
    built_with: dict[str, Any] = {
        "command": "tuneops kb build " + " ".join(sys.argv[3:])
        if sys.argv[1:3] == ["kb", "build"]
        else None,
        "datasets": [d for d in datasets if any((d, f) in done for f in families)],
        "built": {f: sum((d, f) in done for d in datasets) for f in families},
        "families": list(families),
        # one number when every job ran the same budget, else {family: [budgets]}
        "n_trials": (
            n_trials
            if all(v in ([], [n_trials]) for v in per_family.values())
            else {f: v for f, v in per_family.items() if v}
        ),
        "distinct": "configurations deduplicated by parameters rounded to 3 significant digits",
        "cv_folds": cv_folds,
        "seed": seed,
        "sampler": "tpe (multivariate, Optuna 5 defaults)",
        "metrics": QUALITY,
        "default_scores": (
            "score of the family's library defaults (params = {}) on the entry's CV folds"
        ),
        "source": "PMLB (Penn Machine Learning Benchmark, MIT), local copy",
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": library_versions(),
    }
    if extend is not None:
        built_with["extends"] = dict(extend.built_with or {})
        built_with["datasets"] = sorted(
            set(built_with["datasets"]) | set(built_with["extends"].get("datasets", []))
        )
    return KnowledgeBase(entries, built_with)
