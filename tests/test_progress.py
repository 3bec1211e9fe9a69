"""StudyProgress: plain lines when not a terminal, steps of running trials, safe around fork."""

from __future__ import annotations

import io
import multiprocessing
import re
import time

import optuna

from tuneops._study import REPEAT_OF as _REPEAT_OF
from tuneops.progress import StudyProgress


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0, 1)
    for step in (1, 2):  # a slow trial that reports its steps, as the fidelity loop does
        trial.report(x * step, step)
        time.sleep(0.3)
    return x


def test_plain_lines_for_finished_trials_and_steps_of_running_ones():
    study = optuna.create_study(study_name="p", sampler=optuna.samplers.RandomSampler(seed=0))
    stream = io.StringIO()  # not a terminal: plain mode without being told
    with StudyProgress(study, 2, stream=stream, poll_s=0.05, step_log_s=0) as progress:
        assert progress.plain
        study.optimize(_objective, n_trials=2, callbacks=[lambda s, t: progress.refresh()])
    text = stream.getvalue()
    assert "\r" not in text and "\x1b[" not in text  # no redraws, no colour codes
    lines = text.splitlines()
    assert lines[0] == "p: started (2 trials, 0 finished before)"
    for number in (0, 1):
        done = rf"p: trial {number} complete: [0-9.]+ in "
        assert len([x for x in lines if re.match(done, x)]) == 1
        # the background thread saw the trial run: its last reported step, once per step
        assert any(re.match(rf"p: trial {number} running \d+s, reached step 1$", x) for x in lines)
    assert lines[-1].endswith("(2/2 done, best " + f"{study.best_value:.5g})")


def test_bar_mode_shows_the_running_trials_step():
    study = optuna.create_study(study_name="b")
    stream = io.StringIO()
    with StudyProgress(study, 1, stream=stream, plain=False, poll_s=0) as progress:
        trial = study.ask()
        trial.report(0.5, 4)
        assert "running #0 step 4" in progress._status(study.get_trials(deepcopy=False))
        study.tell(trial, 0.5)
        progress.refresh(force=True)
    assert "1/1" in stream.getvalue()


def test_disabled_progress_writes_nothing():
    study = optuna.create_study()
    stream = io.StringIO()
    with StudyProgress(study, 1, enabled=False, stream=stream) as progress:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        progress.refresh(force=True)
    assert stream.getvalue() == ""


def _child(queue) -> None:
    queue.put("child ran")


def test_the_polling_thread_is_stopped_before_a_fork_and_restarted_after():
    study = optuna.create_study()
    with StudyProgress(study, 1, stream=io.StringIO(), poll_s=0.05) as progress:
        assert progress._thread is not None and progress._thread.is_alive()
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(queue,))
        child.start()
        assert progress._thread is None  # nothing ran (or held a lock) when the child was made
        assert queue.get(timeout=30) == "child ran"
        child.join(timeout=30)
        progress.refresh(force=True)  # the next refresh in the main thread restarts it
        assert progress._thread is not None and progress._thread.is_alive()


def test_a_trial_stopped_by_its_time_limit_says_so():
    study = optuna.create_study(study_name="t")

    def late(trial: optuna.Trial) -> float:
        trial.set_user_attr("tuneops:timed_out", {"limit_s": 60.0, "elapsed_s": 61.2,
                                                  "at": "after fold 1 of 3"})
        raise optuna.TrialPruned()

    stream = io.StringIO()
    with StudyProgress(study, 1, stream=stream, poll_s=0.05) as progress:
        study.optimize(late, n_trials=1, callbacks=[lambda s, t: progress.refresh()])
    assert re.search(r"t: trial 0 stopped after fold 1 of 3: over the trial time limit "
                     r"\(60.0 s\) in ", stream.getvalue()), stream.getvalue()


def test_trials_read_together_count_up_one_by_one():
    """Trials that finished between two reads (workers elsewhere, Ray's polling) all said the
    total read then: "trial 1 complete ... (5/8 done)"."""
    study = optuna.create_study(study_name="c", direction="maximize")
    for x in (0.2, 0.9, 0.5):
        study.enqueue_trial({"x": x})
    stream = io.StringIO()
    with StudyProgress(study, 4, stream=stream, poll_s=60) as progress:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)  # no refresh meanwhile
        progress.refresh(force=True)
    done = re.findall(r"c: trial (\d) complete: .* \((\d)/4 done, best ([0-9.]+)\)",
                      stream.getvalue())
    # ... and each says the best as of its own trial (trial 0 quoted trial 1's 0.9)
    assert done == [("0", "1", "0.2"), ("1", "2", "0.9"), ("2", "3", "0.9")], stream.getvalue()


def test_a_multi_objective_study_counts_its_non_dominated_trials_by_value():
    """Not "Pareto front N": the front a run ends with ties differences within noise."""
    study = optuna.create_study(study_name="mo", directions=["maximize", "minimize"])
    for values in ([0.9, 2.0], [0.8, 1.0], [0.7, 3.0]):  # the third is dominated by the first
        study.enqueue_trial({"a": values[0], "b": values[1]})
    stream = io.StringIO()
    with StudyProgress(study, 3, stream=stream, poll_s=0) as progress:
        study.optimize(
            lambda t: (t.suggest_float("a", 0, 1), t.suggest_float("b", 0, 5)),
            n_trials=3,
            callbacks=[lambda s, t: progress.refresh()],
        )
    assert stream.getvalue().splitlines()[-1].endswith("(3/3 done, 2 non-dominated)")


def test_a_tuneops_study_names_its_values_and_says_when_nothing_is_feasible_yet():
    """A run printed "trial 1 complete: 6.0513, 131.45 (1/14 done, 0 non-dominated)": bare
    numbers, and "0 non-dominated" for a trial that missed a constraint."""
    study = optuna.create_study(study_name="n", directions=["minimize", "minimize"])
    study.set_user_attr(
        "tuneops:objectives",
        [
            {"metric": "rmse", "direction": "minimize"},
            {"metric": "model_size_kb", "direction": "minimize"},
        ],
    )

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        rmse = trial.suggest_float("rmse", 0, 10)
        trial.set_constraint("rmse <= 3.5", rmse - 3.5)
        return rmse, 100.0

    for rmse in (6.0513, 2.4362):
        study.enqueue_trial({"rmse": rmse})
    stream = io.StringIO()
    with StudyProgress(study, 2, stream=stream, poll_s=0) as progress:
        study.optimize(objective, n_trials=2, callbacks=[lambda s, t: progress.refresh()])
    lines = stream.getvalue().splitlines()
    assert re.match(
        r"n: trial 0 complete: rmse=6\.0513, model_size_kb=100 in .*\(1/2 done, no feasible "
        r"trial yet\)$",
        lines[1],
    ), lines
    assert lines[2].endswith("(2/2 done, 1 non-dominated)"), lines


def test_trials_judged_again_under_new_constraints_count_as_judged():
    """A study run again with 'rmse <= 2.43' after 'rmse <= 3.5': the progress line counted the
    earlier trials by their records of the old constraint ("3 non-dominated" where the
    selection refused two of them)."""
    study = optuna.create_study(study_name="j", directions=["minimize", "minimize"])
    for rmse, size in ((2.428, 1385.0), (2.549, 102.2), (2.436, 280.3)):
        study.enqueue_trial({"rmse": rmse, "size": size})

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        rmse, size = trial.suggest_float("rmse", 0, 10), trial.suggest_float("size", 0, 5000)
        trial.set_constraint("rmse <= 3.5", rmse - 3.5)
        return rmse, size

    study.optimize(objective, n_trials=3)
    from tuneops import _study
    from tuneops.custom import _judged_before

    objectives = [{"metric": "rmse", "direction": "minimize"},
                  {"metric": "model_size_kb", "direction": "minimize"}]
    study.set_user_attr(_study.OBJECTIVES, objectives)
    study.set_user_attr(_study.CONSTRAINTS, ["rmse <= 3.5"])
    assert _judged_before(study) is None  # the records are of the study's constraints
    study.set_user_attr(_study.CONSTRAINTS, ["rmse <= 2.43"])  # the run again, tightened
    judged = _judged_before(study)
    assert judged == {0: True, 1: False, 2: False}
    stream = io.StringIO()
    with StudyProgress(study, 3, stream=stream, poll_s=0, judged=judged):
        pass
    assert stream.getvalue().splitlines()[0] == "j: started (3 trials, 3 finished before)"
    progress = StudyProgress(study, 3, stream=io.StringIO(), poll_s=0, judged=judged)
    progress._tally.update(study.get_trials())
    assert progress._tally.best_text() == "1 non-dominated"
    plain = StudyProgress(study, 3, stream=io.StringIO(), poll_s=0)
    plain._tally.update(study.get_trials())
    assert plain._tally.best_text() == "3 non-dominated"


def test_a_repeat_is_not_counted_again_among_the_non_dominated():
    """A knn study on two workers printed "(40/40 done, 18 non-dominated)" for a front of two
    trials: every repeat of a front trial (tuneops.repeats: its outcome taken) was counted as
    one more non-dominated point, though it is the same model."""
    study = optuna.create_study(study_name="rep", directions=["maximize", "minimize"])
    for values in ([0.9, 2.0], [0.8, 1.0], [0.9, 2.0], [0.9, 2.0]):
        study.enqueue_trial({"a": values[0], "b": values[1]})

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        a, b = trial.suggest_float("a", 0, 1), trial.suggest_float("b", 0, 5)
        if trial.number >= 2:  # the first trial's configuration again
            trial.set_user_attr(_REPEAT_OF, 0)
        return a, b

    stream = io.StringIO()
    with StudyProgress(study, 4, stream=stream, poll_s=0) as progress:
        study.optimize(objective, n_trials=4, callbacks=[lambda s, t: progress.refresh()])
    lines = stream.getvalue().splitlines()
    assert lines[-1].endswith("(4/4 done, 2 non-dominated)"), lines
    assert lines[-2].endswith("(3/4 done, 2 non-dominated)"), lines
