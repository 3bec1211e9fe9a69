"""The family contract, run against every registered family."""

from __future__ import annotations

import optuna
import pytest

from tuneops.data import load_dataset
from tuneops.errors import SpecError
from tuneops.families import FAMILIES, build_pipeline, get_family
from tuneops.space import suggest_params


@pytest.fixture(scope="module")
def datasets():
    return {
        "classification": load_dataset("sklearn:iris"),
        "regression": load_dataset("pmlb:485_analcatdata_vehicle"),
    }


@pytest.mark.parametrize("name", sorted(FAMILIES))
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_family_fits_a_sampled_configuration(name, task, datasets):
    family = get_family(name)
    ds = datasets[task]
    space = family.space(task)
    assert space, "a family declares a default space"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = suggest_params(study.ask(), space)
    # keep the fit small: the contract is what is tested, not the model's quality
    for key in ("n_estimators", "max_iter"):
        if key in params:
            params[key] = min(params[key], 20)
    model = build_pipeline(family, params, task, 0, numeric=ds.numeric, categorical=ds.categorical)
    model.fit(ds.X, ds.y)
    assert len(model.predict(ds.X.iloc[:5])) == 5


def test_log_scales_where_they_belong():
    assert get_family("svm").default_space("classification")["C"].log
    assert get_family("hist_gradient_boosting").default_space("regression")["learning_rate"].log
    assert not get_family("random_forest").default_space("classification")["max_features"].log


def test_unknown_family_lists_the_valid_ones():
    with pytest.raises(SpecError, match="unknown model family 'rf'; expected one of extra_trees"):
        get_family("rf")


def test_knn_asks_no_more_neighbours_than_a_fold_has_rows():
    """A re-tuning on a few recent rows drew n_neighbors up to 50 for folds of 26 training
    rows: "Expected n_neighbors <= n_samples_fit", a failed trial. The range is bounded by the
    smallest fold's training rows; a spec's own range too (with a warning: see below)."""
    from sklearn.datasets import load_iris

    from tuneops.objective import SpecObjective
    from tuneops.spec import load_spec

    frame = load_iris(as_frame=True).frame.sample(40, random_state=0)
    data = load_dataset(frame, target="target")
    spec = load_spec({"data": {"source": "small"}, "model": {"family": "knn"},
                      "search": {"n_trials": 3, "cv_folds": 3}})
    objective = SpecObjective(spec, data)
    assert objective.spaces["knn"]["n_neighbors"].high == 40 - 14  # 26 training rows
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"n_neighbors": 26, "weights": "uniform", "p": 2})
    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert get_family("knn").space("classification")["n_neighbors"].high == 50  # no rows: as is
    own = load_spec({"data": {"source": "small"}, "model": {"family": "knn", "space": {
        "n_neighbors": {"low": 1, "high": 45}}}, "search": {"n_trials": 3, "cv_folds": 3}})
    assert SpecObjective(own, data).spaces["knn"]["n_neighbors"].high == 26


def _mixed_pipeline():
    """A tuneops linear pipeline fitted on data as tuneops.data loads it: a numeric, a
    text and a boolean-as-category column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "flag": rng.choice([True, False], n),
        "target": rng.choice([0, 1], n),
    })
    frame.loc[::7, "colour"] = None
    data = load_dataset(frame, target="target")
    pipeline = build_pipeline(get_family("linear"), {"C": 1.0}, "classification", 0,
                              numeric=("age",), categorical=("colour", "flag"))
    return pipeline.fit(data.X, data.y), data


def test_a_missing_category_is_missing_whatever_form_it_takes():
    """None in a one-row frame was scored as an unseen category, unlike NaN or the same row in
    a batch; a JSON record's null likewise."""
    import numpy as np
    import pandas as pd

    pipeline, data = _mixed_pipeline()
    row = {"age": 41.0, "colour": None, "flag": True}
    expected = pipeline.predict_proba(pd.DataFrame([{**row, "colour": np.nan}]))
    for given in (pd.DataFrame([row]), [row], pd.DataFrame([row, {**row, "colour": "red"}])[:1]):
        assert np.allclose(pipeline.predict_proba(given)[:1], expected), given
    unseen = pipeline.predict_proba(pd.DataFrame([{**row, "colour": "purple"}]))
    assert not np.allclose(unseen, expected)  # the test can tell the two apart


def test_a_model_predicts_on_nullable_columns_and_integer_column_names():
    """A Parquet file's boolean and string columns with NA trained (tuneops.data makes them
    object/NaN) and then crashed the saved model; integer column names likewise."""
    import numpy as np
    import pandas as pd

    pipeline, data = _mixed_pipeline()
    X = data.X.head(20)
    expected = pipeline.predict_proba(X)
    nullable = X.assign(
        age=X["age"].astype("Float64"),
        colour=X["colour"].astype("string"),
        flag=X["flag"].astype("boolean"),
    )
    nullable.loc[3, ["age", "colour", "flag"]] = pd.NA
    plain = X.copy()
    plain.loc[3, ["age", "colour", "flag"]] = np.nan
    assert np.allclose(pipeline.predict_proba(nullable), pipeline.predict_proba(plain))
    assert np.allclose(pipeline.predict_proba(nullable)[:3], expected[:3])

    numbered = pd.DataFrame(np.random.default_rng(1).normal(size=(60, 3)))
    frame = numbered.assign(target=np.arange(60) % 2)
    model = build_pipeline(get_family("linear"), {"C": 1.0}, "classification", 0,
                           numeric=("0", "1", "2"), categorical=())
    model.fit(load_dataset(frame, target="target").X, frame["target"])
    assert model.predict(numbered).shape == (60,)  # columns 0..2, as the data had them


def test_the_pipeline_predicts_through_its_steps_only_as_the_latency_objective_times_it():
    """``Pipeline.predict`` spent ~90 us per call outside its steps (a fitted check, metadata
    routing) that the latency objective, which times the steps, did not see but ``serve``
    paid: tuneops' pipeline predicts through the steps alone, with scikit-learn's answers."""
    import numpy as np
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline

    from tuneops.families._preprocess import ServingPipeline

    data = load_dataset("sklearn:breast_cancer")
    model = build_pipeline(get_family("linear"), {"C": 1.0}, "classification", 0,
                           numeric=data.numeric, categorical=())
    assert isinstance(model, ServingPipeline) and isinstance(model, Pipeline)
    with pytest.raises(NotFittedError):
        model.predict(data.X.iloc[:1])
    model.fit(data.X, data.y)
    plain = Pipeline(model.steps)
    for rows in (data.X.iloc[:1], data.X.to_numpy()[:5], data.X):
        assert np.array_equal(model.predict(rows), plain.predict(rows))
    # as scikit-learn's: no predict when the last step has none
    from sklearn.preprocessing import StandardScaler

    assert not hasattr(ServingPipeline([("a", StandardScaler()), ("b", StandardScaler())]),
                       "predict")


def test_a_specs_own_neighbour_range_beyond_a_folds_rows_is_bounded_or_refused(caplog):
    """`n_neighbors: 30-40` on folds of 6 training rows: trials failed ("Expected n_neighbors
    <= n_samples_fit") or completed as a majority vote (audit). A range wholly beyond is
    refused before anything is written; one partly beyond is bounded, with a warning."""
    import logging

    from tuneops.space import parse_space

    knn = get_family("knn")

    def written(low, high):
        return parse_space({"n_neighbors": {"type": "int", "low": low, "high": high}},
                           "model.space.knn")

    with pytest.raises(SpecError, match=r"model.space.knn.n_neighbors: expected at most 6 "
                                        r"neighbours .* received a range from 30 to 40"):
        knn.space("classification", written(30, 40), train_rows=6)
    with caplog.at_level(logging.WARNING, logger="tuneops"):
        space = knn.space("classification", written(2, 40), train_rows=6)
    assert (space["n_neighbors"].low, space["n_neighbors"].high) == (2, 6)
    assert "searching 2 to 6" in caplog.text
    assert knn.space("classification", written(2, 40), train_rows=100)["n_neighbors"].high == 40


@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree", "brute"])
def test_a_knn_model_loaded_by_joblib_holds_its_data_once(tmp_path, algorithm):
    """A k-NN's training data and its search tree's data are one array once fitted; joblib
    writes each array on its own, so a loaded model held two copies: twice the memory while it
    served, and twice the pickled size (the staging gate measured `model_size_kb` 342 KiB for a
    k-NN the run had saved at 192)."""
    import pickle

    import joblib
    import numpy as np

    data = load_dataset("sklearn:breast_cancer")
    model = build_pipeline(get_family("knn"), {"n_neighbors": 5, "algorithm": algorithm},
                           "classification", 0, numeric=data.numeric, categorical=())
    model.fit(data.X, data.y)
    fitted = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    size = len(pickle.dumps(loaded, protocol=pickle.HIGHEST_PROTOCOL))
    assert abs(size - fitted) <= 0.01 * fitted, (size, fitted)
    assert np.array_equal(loaded.predict(data.X), model.predict(data.X))
    assert np.array_equal(loaded.predict_proba(data.X), model.predict_proba(data.X))
