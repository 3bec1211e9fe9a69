"""The model-family contract.

A family turns parameters into an unfitted scikit-learn estimator and declares the search
space a practitioner would start from. Subclasses set class attributes and implement two
methods; everything else (preprocessing, the pipeline) is built here.

Contract:

* ``default_space(task)`` returns ``{name: Param}``; spec overrides replace entries by name.
* ``estimator(params, task, seed)`` returns an unfitted estimator with ``n_jobs=1`` where the
  estimator has it: tuneops parallelises across trials, and latency is measured single-threaded.
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
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import ThreadpoolController

from tuneops.space import Param

__all__ = ["Family", "build_pipeline", "int_param", "float_param", "choice", "FIDELITY_STEPS", "budget", "single_threaded"]

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

    def default_space(self, task: str) -> dict[str, Param]:
        raise NotImplementedError

    def estimator(self, params: Mapping[str, Any], task: str, seed: int) -> Any:
        raise NotImplementedError

    # -- fidelity ----------------------------------------------------------------------------
    fidelity: ClassVar[str] = "fraction"

    def advance(self, estimator: Any, X: Any, y: Any, fraction: float, state: dict[str, Any]) -> None:
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

            state["order"] = _interleaved_order(np.asarray(y), state.get("seed", 0), is_classifier(estimator))
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
        self, model: Any, X: Any, y: Any, *, steps: tuple[int, ...] = FIDELITY_STEPS, seed: int = 0
    ) -> Iterator[int]:
        """Train the pipeline ``model`` step by step; yields each step once it is trained.

        After a yield the pipeline predicts as trained on ``step / steps[-1]`` of its budget.
        Preprocessing is fitted once, on all of ``X``. Closing the generator (or simply not
        resuming it) stops training: a pruned trial trains no further.

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
        with single_threaded():
            Xt = np.asarray(pre.fit_transform(X, y))
        state: dict[str, Any] = {"seed": seed}
        for step in steps:
            with single_threaded():
                self.advance(estimator, Xt, y, step / steps[-1], state)
            yield step

    def fit(self, model: Any, X: Any, y: Any, *, seed: int = 0) -> Any:
        """Train the pipeline through every step (the same path trials take); returns it."""
        for _ in self.fit_steps(model, X, y, seed=seed):
            pass
        return model

    def space(self, task: str, overrides: Mapping[str, Param] | None = None) -> dict[str, Param]:
        """The default space with spec overrides applied (override entries replace by name)."""
        space = {p.name: p for p in self.default_space(task).values()}
        space.update(overrides or {})
        return space


_CONTROLLER: Any = None


def single_threaded() -> Any:
    """Limit OpenMP/BLAS pools to one thread (a context manager).

    tuneops runs trials in parallel, one per worker; estimators without ``n_jobs`` (histogram
    gradient boosting uses OpenMP) would otherwise start a thread per core in every worker. On
    a busy machine each OpenMP barrier then waits for a descheduled thread: a histogram
    boosting fit on iris measured 27-74 s instead of about a second. The controller is built
    once per process (building it costs ~20 ms; entering a limit ~0.1 ms).
    """
    global _CONTROLLER
    if _CONTROLLER is None:

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


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
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric_steps: list[Any] = [SimpleImputer(strategy="median", keep_empty_features=True)]
    if family.scale:
        numeric_steps.append(StandardScaler())
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("num", make_pipeline(*numeric_steps), list(numeric)))
    if categorical:
        categorical_steps = make_pipeline(
            SimpleImputer(strategy="most_frequent", keep_empty_features=True),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=32, sparse_output=False),
        )
        transformers.append(("cat", categorical_steps, list(categorical)))
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("pre", pre), ("model", family.estimator(params, task, seed))])
