"""An XGBoost classifier that takes labels of any kind, as scikit-learn's classifiers do.

``XGBClassifier`` accepts only the labels ``0 .. n_classes - 1``: a target of ``"good"`` and
``"bad"``, or of ``1`` and ``2``, fails every fit with "Invalid classes inferred from unique
values of `y`". Every other family of tuneops takes such targets, so a multi-family study
would lose each XGBoost trial to that error. This subclass encodes the labels in sorted order
(scikit-learn's ``LabelEncoder`` order, the order of ``predict_proba``'s columns) before
XGBoost sees them, and decodes its predictions; ``classes_`` holds the labels, so scorers that
pick a column by label (``roc_auc``, ``f1`` with a positive label) find it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost

__all__ = ["XGBClassifier"]


class XGBClassifier(xgboost.XGBClassifier):
    """``XGBClassifier`` for labels of any kind (see the module's docstring)."""

    def fit(self, X: Any, y: Any, *args: Any, **kwargs: Any) -> XGBClassifier:
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        previous = getattr(self, "_tuneops_labels", None)
        self._tuneops_labels = None  # XGBoost checks the codes against its own classes_
        try:
            super().fit(X, codes, *args, **kwargs)
        except BaseException:
            self._tuneops_labels = previous
            raise
        self._tuneops_labels = labels
        return self

    @property
    def classes_(self) -> np.ndarray:
        labels = getattr(self, "_tuneops_labels", None)
        if labels is None:
            return np.arange(self.n_classes_)
        return labels

    def predict(self, X: Any, *args: Any, **kwargs: Any) -> Any:
        codes = super().predict(X, *args, **kwargs)
        labels = getattr(self, "_tuneops_labels", None)
        if labels is None or kwargs.get("output_margin") or np.ndim(codes) != 1:
            return codes
        return labels[np.asarray(codes, dtype=np.intp)]
