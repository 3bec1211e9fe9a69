"""tuneops' own cost stays flat as a study grows: counted operations and imports, not time.

The timed comparison with plain Optuna is benchmarks/bench_overhead.py (docs/benchmarks.md,
"Overhead (issue 15)"); these tests pin the properties it relies on.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from tuneops import _optuna, progress, results, storage
from tuneops._study import FAIL_REASON, WORKER
from tuneops.custom import tune
from tuneops.pareto import ParetoFront, hypervolume, hypervolume_history, pareto_mask
from tuneops.pruning import FIDELITY_ATTR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_overhead import windows  # noqa: E402

HEAVY = ("pandas", "sklearn", "scipy", "pyarrow")


def _two_objective_study(n: int) -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "minimize"])
    rng = np.random.default_rng(0)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trials([
        optuna.trial.create_trial(params={"x": x}, distributions=dist, values=[x, 1 - x + 0.01 * y])
        for x, y in rng.random((n, 2))
    ])
    return study


def test_tune_imports_no_numeric_stack_before_during_or_after_a_run(tmp_path: Path) -> None:
    code = f"""
import json, sys
import tuneops
def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    return x, 1 - x
before = [m for m in {HEAVY!r} if m in sys.modules]
r = tuneops.tune(objective, objectives=["a", "b"], directions=["minimize", "minimize"],
                 n_trials=6, sampler="random", storage={str(tmp_path / "s.journal")!r},
                 output_dir={str(tmp_path)!r})
after = [m for m in {HEAVY!r} if m in sys.modules]
print(json.dumps({{"before": before, "after": after, "front": len(r.choice.front)}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"before": [], "after": [], "front": 6}


def test_results_record_every_trial_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuneops.selection import candidates_from_trials, select_trial
    from tuneops.spec import Objective

    study = _two_objective_study(300)
    choice = select_trial(candidates_from_trials(study.trials, ["a", "b"]),
                          [Objective("a", "minimize"), Objective("b", "minimize")])
    assert len(choice.front) > 20
    calls = []
    real = results.trial_record
    monkeypatch.setattr(results, "trial_record", lambda t: calls.append(t.number) or real(t))
    doc = results.study_results(study, choice=choice)
    assert sorted(calls) == list(range(300))  # the front and the selected trial reuse them
    assert [r["number"] for r in doc["pareto_front"]] == [c.number for c in choice.front]
    assert doc["selected"]["number"] == choice.selected.number


def test_a_brief_document_is_the_full_one_less_what_show_does_not_print(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``tuneops show`` without --json/--trials: no findings, no versions, no records of trials
    off the front; everything it prints is what the full document holds."""
    from tuneops.selection import candidates_from_trials, select_trial
    from tuneops.spec import Objective

    study = _two_objective_study(300)
    choice = select_trial(candidates_from_trials(study.trials, ["a", "b"]),
                          [Objective("a", "minimize"), Objective("b", "minimize")])
    full = results.study_results(study, choice=choice, message="m")
    calls = []
    real = results.trial_record
    monkeypatch.setattr(results, "trial_record", lambda t: calls.append(t.number) or real(t))
    brief = results.study_results(study, choice=choice, message="m", brief=True)
    assert "findings" in full and "versions" in full and len(full["trials"]) == 300
    assert brief == {k: v for k, v in full.items() if k not in ("trials", "versions", "findings")}
    assert sorted(calls) == sorted({c.number for c in choice.front} | {choice.selected.number})
    calls.clear()
    assert results.study_results(study, brief=True)["pareto_front"] == [] and calls == []


def test_progress_looks_at_each_finished_trial_once(monkeypatch: pytest.MonkeyPatch) -> None:
    study = _two_objective_study(200)
    looked: list[int] = []
    real = progress._feasible
    monkeypatch.setattr(progress, "_feasible", lambda t: looked.append(t.number) or real(t))
    bar = progress.StudyProgress(study, 400, stream=io.StringIO(), plain=True, poll_s=0)
    with bar:
        assert sorted(looked) == list(range(200))
        for _ in range(5):
            bar.refresh(force=True)
        assert len(looked) == 200  # refreshes without new trials look at none again
        study.add_trial(optuna.trial.create_trial(
            params={"x": 0.5}, distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
            values=[0.5, 0.0], state=TrialState.COMPLETE))
        bar.refresh(force=True)
        assert looked[200:] == [200]
    losses = np.array([t.values for t in study.trials])
    assert len(bar._tally.front) == int(pareto_mask(losses, ["minimize", "minimize"]).sum())
    assert bar._tally.done == 201


def _brute_mask(loss: np.ndarray) -> np.ndarray:
    le = (loss[:, None, :] <= loss[None, :, :]).all(axis=2)
    lt = (loss[:, None, :] < loss[None, :, :]).any(axis=2)
    return ~(le & lt).any(axis=0)  # row j is dominated when some row i is <= and < somewhere


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_front_and_mask_match_brute_force_with_ties(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    loss = np.round(rng.random((400, k)), 1)  # many equal values and duplicate rows
    expected = _brute_mask(loss)
    assert (pareto_mask(loss, ["minimize"] * k) == expected).all()
    front = ParetoFront(k)
    for row in loss:
        front.add(row)
    assert len(front) == expected.sum()


def test_history_of_two_objectives_with_duplicates_is_exact() -> None:
    rng = np.random.default_rng(7)
    loss = np.round(rng.random((500, 2)), 2)
    loss[250:260] = loss[100]  # repeats of an earlier row
    ref = np.array([1.0, 1.0])  # some rows lie on the reference: they add nothing
    indices, values = hypervolume_history(loss, ref, max_points=50)
    for i, v in zip(indices, values, strict=True):
        assert v == pytest.approx(hypervolume(loss[: i + 1], ref), rel=1e-12, abs=1e-12)


def test_bench_windows_are_cpu_per_trial() -> None:
    stamps: list[Any] = [0.0, 0.001, 0.002, 0.004, 0.006, 0.0065]
    assert windows(stamps, 2) == pytest.approx([1.0, 2.0, 0.5])  # the last: one trial


def _appends(study: optuna.Study) -> int:
    """Appends to the study's journal file so far (one lock, write and fsync each)."""
    backend = _optuna.journal_backend(_optuna.storage_of(study))
    assert isinstance(backend, storage.SnapshotJournalFile)
    return backend.appends


def _failing_above(limit: float) -> Any:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if x > limit:
            raise ValueError("too far")
        return x

    return objective


def test_a_tune_trial_costs_the_journal_appends_of_a_plain_optuna_trial(tmp_path: Path) -> None:
    """A trial's fidelity record, and a failed trial's reason, go in the same append as its
    state: per trial, ``tune()`` makes as many journal appends (a lock, a write and an fsync:
    about 0.4 ms each, as much as its whole overhead target) as ``study.optimize`` on the same
    objective: create, parameter, outcome. Counted, so a write per trial cannot come back."""
    counts: dict[str, list[int]] = {"tuneops": [], "optuna": []}
    for n in (10, 30):
        result = tune(
            _failing_above(0.7),
            n_trials=n,
            sampler="random",
            storage=str(tmp_path / f"tuneops{n}.journal"),
            output_dir=tmp_path / f"out{n}",
        )
        counts["tuneops"].append(_appends(result.study))
        trials = result.study.get_trials()
        assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.FAIL}
        assert all(FIDELITY_ATTR in t.user_attrs and WORKER in t.user_attrs for t in trials)
        assert all(
            t.user_attrs[FAIL_REASON] == "ValueError: too far"
            for t in trials
            if t.state == TrialState.FAIL
        )
        with _optuna.quiet():
            plain = optuna.create_study(
                storage=storage.get_storage(str(tmp_path / f"optuna{n}.journal")),
                sampler=optuna.samplers.RandomSampler(seed=0),
            )
            plain.optimize(_failing_above(0.7), n_trials=n, catch=(ValueError,))
        counts["optuna"].append(_appends(plain))
    per_trial = {tool: (c[1] - c[0]) / 20 for tool, c in counts.items()}
    assert per_trial == {"tuneops": 3.0, "optuna": 3.0}


def test_a_journal_study_never_pickles_its_whole_state_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Optuna pickles the whole replay state at every 100th trial for a journal backend that
    takes snapshots (a cost that grows with the study); tuneops' journal file takes its
    snapshot only at the end of a run, so a run of 250 trials pickles nothing before then."""
    pickled: list[int] = []
    real = optuna.storages.journal._storage.pickle  # the module Optuna pickles with

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        @staticmethod
        def dumps(obj: Any, *args: Any, **kwargs: Any) -> bytes:
            pickled.append(1)
            return real.dumps(obj, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.journal._storage, "pickle", Counting())
    study = optuna.create_study(
        storage=storage.get_storage(str(tmp_path / "s.journal")),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    with _optuna.quiet():
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=250)
    assert len(study.trials) == 250 and pickled == []
