"""The model-family contract.

A family turns parameters into an unfitted scikit-learn estimator and declares the search
space a practitioner would start from. Subclasses set class attributes and implement two
methods; everything else (preprocessing, the pipeline) is built here.

Contract:

* ``default_space(task)`` returns ``{name: Param}``; spec overrides replace entries by name.
* ``estimator(params, task, seed)`` returns an unfitted estimator with ``n_jobs=1`` where the
  estimator has it: tuneops parallelises across trials, and latency is measured single-threaded.
* ``scale = True`` when the model needs standardised inputs (linear, SVM, k-NN, MLP).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from tuneops.space import Param

__all__ = ["Family", "build_pipeline", "int_param", "float_param", "choice"]


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

    def space(self, task: str, overrides: Mapping[str, Param] | None = None) -> dict[str, Param]:
        """The default space with spec overrides applied (override entries replace by name)."""
        space = {p.name: p for p in self.default_space(task).values()}
        space.update(overrides or {})
        return space


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
