"""The model-family contract.

A family turns parameters into an unfitted scikit-learn estimator and declares the search
space a practitioner would start from. Subclasses set class attributes and implement two
methods; everything else (preprocessing, the pipeline) is built here.

Contract:

* ``default_space(task)`` returns ``{name: Param}``; spec overrides replace entries by name.
* ``estimator(params, task, seed)`` returns an unfitted estimator with ``n_jobs=1`` where the
  estimator has it: latency is measured single-threaded, and tuneops parallelises across trials.
* ``threads`` says how a family's fit can use more than one thread: ``joblib`` (``n_jobs`` runs
  Python threads: forests), ``openmp`` (OpenMP: histogram boosting through the thread-pool
  limit, LightGBM and XGBoost through ``n_jobs`` as well) or None. :meth:`Family.fit_steps`
  fits with ``threads=N`` threads and leaves the estimator at ``n_jobs=1`` afterwards, so the
  fitted model serves single-threaded (:func:`fit_threads` gives a trial's share of the cores).
* ``scale = True`` when the model needs standardised inputs (linear, SVM, k-NN, MLP).
* ``fidelity`` names how the family trains step by step, so pruners see real intermediate
  quality: ``rounds`` (boosting), ``trees`` (forests, ``warm_start``), ``epochs``
  (``partial_fit``) or ``fraction`` (the fallback: the model is refit on a growing, nested
  share of the training rows). A family implements ``advance(estimator, X, y, fraction,
  state)``, which trains the estimator up to ``fraction`` of its full budget; the base's
  default is the training-set fraction. :meth:`Family.fit_steps` drives it over
  :data:`FIDELITY_STEPS`; the last step is exactly the fully trained model, so a trial's final
  model does not depend on whether it was trained step by step (refit uses the same path).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import ThreadpoolController

from tuneops.space import Param, parents_first

__all__ = [
    "Family",
    "build_pipeline",
    "build_preprocessor",
    "int_param",
    "float_param",
    "choice",
    "FIDELITY_STEPS",
    "budget",
    "single_threaded",
    "limit_threads",
    "serving_threads",
    "fit_threads",
    "available_cores",
]

# Steps in units of 1/27 of the full training budget (trees, rounds, epochs or rows): geometric
# with factor 3, so the rungs of `auto` (successive halving, reduction factor 3, at 1/9 and 1/3
# of the budget: tuneops.pruning) fall exactly on steps 3 and 9, and a pruner told to cut from
# 1/27 can (issue 18; eighths before).
FIDELITY_STEPS: tuple[int, ...] = (1, 3, 9, 27)


def int_param(name: str, low: int, high: int, *, log: bool = False) -> Param:
    return Param(name, "int", low=low, high=high, log=log)


def float_param(name: str, low: float, high: float, *, log: bool = False) -> Param:
    return Param(name, "float", low=low, high=high, log=log)


def choice(name: str, *choices: Any, when: Mapping[str, Any] | None = None) -> Param:
    cond = tuple((k, tuple(v) if isinstance(v, list) else (v,)) for k, v in (when or {}).items())
    return Param(name, "categorical", choices=tuple(choices), when=cond)


class Family:
    """Base class of a model family. Subclass, set ``name``, and implement two methods."""

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")
    scale: ClassVar[bool] = False
    extra: ClassVar[str | None] = None  # the pip extra this family needs, if any
    description: ClassVar[str] = ""
    threads: ClassVar[str | None] = None  # how fit uses threads: "joblib", "openmp" or None
    probabilities: ClassVar[bool] = True  # its classifier gives class probabilities (log_loss)

    def default_space(self, task: str) -> dict[str, Param]:
        raise NotImplementedError

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        raise NotImplementedError

    # -- fidelity ----------------------------------------------------------------------------
    fidelity: ClassVar[str] = "fraction"

    def advance(
        self, estimator: Any, X: Any, y: Any, fraction: float, state: dict[str, Any]
    ) -> None:
        """Train ``estimator`` up to ``fraction`` (0 < f <= 1) of its full training budget.

        Called with increasing fractions on the same estimator; ``state`` is a dict private to
        one :meth:`fit_steps` run. This default refits on a nested, class-interleaved share of
        the rows (every prefix holds every class), and on all rows, unpermuted, at 1.
        """
        if fraction >= 1.0:
            estimator.fit(X, y)
            return
        if "order" not in state:
            from sklearn.base import is_classifier

            state["order"] = _interleaved_order(
                np.asarray(y), state.get("seed", 0), is_classifier(estimator)
            )
        n_rows = len(state["order"])
        n = min(n_rows, max(math.ceil(fraction * n_rows), self.min_rows(estimator)))
        if n == state.get("rows"):
            return  # the same rows as the previous step: nothing more to learn
        state["rows"] = n
        if n == n_rows:
            estimator.fit(X, y)
            return
        rows = np.sort(state["order"][:n])
        estimator.fit(X[rows], y.iloc[rows] if hasattr(y, "iloc") else y[rows])

    def min_rows(self, estimator: Any) -> int:
        """Fewest training rows a fraction step may use (the fraction fallback)."""
        return 30

    def fit_steps(
        self,
        model: Any,
        X: Any,
        y: Any,
        *,
        steps: tuple[int, ...] = FIDELITY_STEPS,
        seed: int = 0,
        threads: int = 1,
        preprocessed: Any = None,
    ) -> Iterator[int]:
        """Train the pipeline ``model`` step by step; yields each step once it is trained.

        After a yield the pipeline predicts as trained on ``step / steps[-1]`` of its budget.
        Preprocessing is fitted once, on all of ``X``. Closing the generator (or simply not
        resuming it) stops training: a pruned trial trains no further. ``threads`` (>= 1):
        threads the estimator's fit may use when the family can (``Family.threads``); the
        estimator is left with ``n_jobs=1`` so it predicts single-threaded.
        ``preprocessed``: the pipeline's preprocessing step already fitted on these rows, ``X``
        being its output; it becomes the pipeline's step (a study fits it once per fold, since
        it depends on the rows and never on a trial's parameters).

        Example::

            >>> from sklearn.datasets import load_iris
            >>> from tuneops.families import get_family
            >>> X, y = load_iris(return_X_y=True, as_frame=True)
            >>> fam = get_family("random_forest")
            >>> model = build_pipeline(fam, {"n_estimators": 16}, "classification", 0,
            ...                        numeric=tuple(X.columns), categorical=())
            >>> [(step, len(model[-1].estimators_)) for step in fam.fit_steps(model, X, y)]
            [(1, 1), (3, 2), (9, 6), (27, 16)]
        """
        pre, estimator = model[:-1], model[-1]
        if preprocessed is None:
            with single_threaded():
                Xt = np.asarray(pre.fit_transform(X, y))
        else:
            if len(model.steps) != 2:
                raise ValueError("preprocessed: expected a pipeline of preprocessing and model")
            model.steps[0] = (model.steps[0][0], preprocessed)
            Xt = X
        n_jobs, pool = _thread_plan(self.threads, threads)
        jobs = n_jobs > 1 and "n_jobs" in estimator.get_params()
        state: dict[str, Any] = {"seed": seed}
        try:
            for step in steps:
                if jobs:
                    estimator.set_params(n_jobs=n_jobs)
                with limit_threads(pool):
                    self.advance(estimator, Xt, y, step / steps[-1], state)
                if jobs:
                    estimator.set_params(n_jobs=1)
                yield step
        finally:
            if jobs:
                estimator.set_params(n_jobs=1)

    def fit(
        self,
        model: Any,
        X: Any,
        y: Any,
        *,
        seed: int = 0,
        threads: int = 1,
        preprocessed: Any = None,
    ) -> Any:
        """Train the pipeline fully (the model trials end with); returns it.

        A ``fraction`` family's last step refits on all rows from scratch, so the steps before
        it would only be thrown away: it is fitted once (svm, knn and linear fitted four times
        per fold with no pruner to read the steps, and again at the final refit). The other
        families train incrementally and go through every step, the path trials take.
        """
        steps = FIDELITY_STEPS[-1:] if self.fidelity == "fraction" else FIDELITY_STEPS
        for _ in self.fit_steps(
            model, X, y, steps=steps, seed=seed, threads=threads, preprocessed=preprocessed
        ):
            pass
        return model

    def space(
        self,
        task: str,
        overrides: Mapping[str, Param] | None = None,
        *,
        train_rows: int | None = None,
    ) -> dict[str, Param]:
        """The default space with spec overrides applied (override entries replace by name),
        fitted to folds of ``train_rows`` training rows when given (:meth:`fit_to_rows`)."""
        space = {p.name: p for p in self.default_space(task).values()}
        if train_rows is not None:
            space = self.fit_to_rows(space, train_rows)
        space.update(overrides or {})  # the spec's own ranges are as written, unless no fold
        if train_rows is not None and overrides:  # can hold them
            space.update(self.fit_written_to_rows(dict(overrides), train_rows))
        return parents_first(space)

    def fit_to_rows(self, space: dict[str, Param], train_rows: int) -> dict[str, Param]:
        """The default space where a value cannot fit ``train_rows`` rows (k-NN's neighbours)
        is bounded by them; most families need no change."""
        return space

    def fit_written_to_rows(
        self, written: dict[str, Param], train_rows: int
    ) -> dict[str, Param]:
        """The spec's own ranges (``written``) where a fold of ``train_rows`` training rows
        cannot hold some of their values: bounded with a warning, or refused with a
        :class:`~tuneops.errors.SpecError` when it holds none; most families need no change."""
        return written


_CONTROLLER: Any = None
# Set in a process forked after this module loaded (the local backend's workers). GNU libgomp
# is not fork-safe: a child whose parent already ran an OpenMP pool deadlocks in its first
# multi-threaded parallel region (see tuneops.backends.local), so forked workers keep OpenMP
# at one thread and thread only through joblib (Python threads).
_FORKED = False


def _mark_forked() -> None:
    global _FORKED
    _FORKED = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def _controller() -> Any:
    # Building the controller costs ~20 ms (it scans the loaded libraries); once per process.
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def single_threaded() -> Any:
    """Limit OpenMP/BLAS pools to one thread (a context manager).

    tuneops runs trials in parallel, one per worker; estimators without ``n_jobs`` (histogram
    gradient boosting uses OpenMP) would otherwise start a thread per core in every worker. On
    a busy machine each OpenMP barrier then waits for a descheduled thread: a histogram
    boosting fit on iris measured 27-74 s instead of about a second. Entering a limit costs
    ~0.1 ms.
    """
    return _controller().limit(limits=1)


def limit_threads(n: int) -> Any:
    """Limit OpenMP/BLAS pools to ``n`` threads (a context manager)."""
    return _controller().limit(limits=max(1, int(n)))


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def fit_threads(cpu: float | None, n_workers: int) -> int:
    """Threads one trial's fit may use: ``search.resources.cpu``, else cores / workers (>= 1)."""
    if cpu is not None:
        return max(1, int(cpu))
    return max(1, available_cores() // max(1, n_workers))


def _thread_plan(kind: str | None, threads: int) -> tuple[int, int]:
    """``(n_jobs, OpenMP/BLAS limit)`` for a family that threads by ``kind`` with ``threads``."""
    threads = max(1, int(threads))
    if kind == "joblib":
        return threads, 1
    if kind == "openmp" and not _FORKED:
        return threads, threads
    return 1, 1


@contextmanager
def serving_threads(model: Any, threads: int) -> Iterator[None]:
    """Run ``model`` (a pipeline or an estimator) with ``threads`` threads inside the block.

    Sets ``n_jobs`` of the final estimator where it has one and limits OpenMP/BLAS pools;
    both are restored on exit. One thread is what tuneops measures and exports by default.
    """
    estimator = model[-1] if hasattr(model, "steps") else model
    params = estimator.get_params() if hasattr(estimator, "get_params") else {}
    before = params.get("n_jobs")
    pool = threads if not _FORKED else 1
    if "n_jobs" in params and before != threads:
        estimator.set_params(n_jobs=threads)
    try:
        with limit_threads(pool):
            yield
    finally:
        if "n_jobs" in params and before != threads:
            estimator.set_params(n_jobs=before)


def _interleaved_order(y: np.ndarray, seed: int, stratify: bool) -> np.ndarray:
    """A permutation of rows whose every prefix holds the classes in proportion.

    Rows are shuffled, then ordered by their rank within their class divided by the class
    size, so a prefix of n rows takes about n * share of each class (and at least one of each
    as soon as n >= number of classes). For regression targets the order is a plain shuffle.
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    if not stratify:
        return perm
    _, codes = np.unique(y[perm], return_inverse=True)
    counts = np.bincount(codes)
    rank = np.zeros(len(y))
    seen = np.zeros(len(counts), dtype=int)
    for i, c in enumerate(codes):
        rank[i] = seen[c] / counts[c]
        seen[c] += 1
    return perm[np.argsort(rank, kind="stable")]


def budget(total: int, fraction: float) -> int:
    """The share ``fraction`` of an integer budget (trees, rounds, epochs): at least 1."""
    return max(1, min(total, math.ceil(total * fraction)))


def build_pipeline(
    family: Family,
    params: Mapping[str, Any],
    task: str,
    seed: int,
    *,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
) -> Any:
    """Preprocessing (impute, encode, optionally scale) followed by the family's estimator.

    Imputation and encoding happen inside the pipeline, so each CV fold learns them from its
    own training rows only.
    """
    from tuneops.families._preprocess import ServingPipeline

    pre = build_preprocessor(family, numeric=numeric, categorical=categorical)
    return ServingPipeline([("pre", pre), ("model", family.estimator(params, task, seed))])


def build_preprocessor(
    family: Family, *, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> Any:
    """The (unfitted) preprocessing step of ``family``'s pipelines on these columns.

    A :class:`~tuneops.families._preprocess.Preprocessor`: a ``ColumnTransformer`` that serves
    small inputs through its compiled fitted state, with identical output. It depends on the
    columns and on whether the family scales (``Family.scale``), never on its parameters.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # Loaded here, not with the module: it imports scikit-learn, which spec loading (which
    # reads the family table) must not pay for.
    from tuneops.families._preprocess import Preprocessor

    numeric_steps: list[Any] = [SimpleImputer(strategy="median", keep_empty_features=True)]
    if family.scale:
        numeric_steps.append(StandardScaler())
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("num", make_pipeline(*numeric_steps), list(numeric)))
    if categorical:
        categorical_steps = make_pipeline(
            SimpleImputer(strategy="most_frequent", keep_empty_features=True),
            OneHotEncoder(
                handle_unknown="infrequent_if_exist", max_categories=32, sparse_output=False
            ),
        )
        transformers.append(("cat", categorical_steps, list(categorical)))
    return Preprocessor(transformers, remainder="drop", verbose_feature_names_out=False)
