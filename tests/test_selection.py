"""Pareto front and constraint-aware selection, checked against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import optuna
import pytest

from tuneops import _study
from tuneops.errors import NoFeasibleTrial, SpecError
from tuneops.selection import (
    Candidate,
    candidates_from_trials,
    noise_front,
    pareto_mask,
    resolution_of,
    select_in_study,
    select_trial,
    violation,
)
from tuneops.spec import Objective, Selection, parse_constraint

OBJ = [Objective("accuracy", "maximize"), Objective("latency_p95_ms", "minimize")]


def brute_force_front(values, directions):
    sign = np.array([1 if d == "minimize" else -1 for d in directions])
    loss = np.asarray(values) * sign
    keep = []
    for i, a in enumerate(loss):
        dominated = any((b <= a).all() and (b < a).any() for j, b in enumerate(loss) if j != i)
        keep.append(not dominated)
    return np.array(keep)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_obj", [2, 3])
def test_pareto_mask_matches_brute_force(seed, n_obj):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(40, n_obj)).astype(float)  # ties on purpose
    directions = ["maximize", "minimize", "minimize"][:n_obj]
    assert (pareto_mask(values, directions) == brute_force_front(values, directions)).all()


def cands(rows):
    return [Candidate(i, (a, l), {"accuracy": a, "latency_p95_ms": l, "model_size_kb": s})
            for i, (a, l, s) in enumerate(rows)]


ROWS = [(0.90, 5.0, 10), (0.95, 20.0, 50), (0.97, 80.0, 200), (0.93, 10.0, 20), (0.89, 30.0, 5), (0.96, 40.0, 90)]


def test_constraints_filter_before_the_front_and_knee_is_balanced():
    choice = select_trial(cands(ROWS), OBJ, [parse_constraint("accuracy >= 0.92")])
    feasible = [i for i, r in enumerate(ROWS) if r[0] >= 0.92]
    values = np.array([ROWS[i][:2] for i in feasible])
    front = {feasible[i] for i, k in enumerate(brute_force_front(values, ["maximize", "minimize"])) if k}
    assert {c.number for c in choice.front} == front
    assert choice.selected.number in front
    # knee = closest to the ideal point in scaled space; check by brute force
    scaled = []
    acc = [ROWS[i][0] for i in front]
    lat = [ROWS[i][1] for i in front]
    for i in sorted(front):
        a = (max(acc) - ROWS[i][0]) / (max(acc) - min(acc))
        l = (ROWS[i][1] - min(lat)) / (max(lat) - min(lat))
        scaled.append((np.hypot(a, l), i))
    assert choice.selected.number == min(scaled)[1]


def test_lexicographic_and_weighted_policies():
    lex = select_trial(cands(ROWS), OBJ, [], Selection("lexicographic", priority=("latency_p95_ms",)))
    assert lex.selected.number == 0
    lex_tol = select_trial(cands(ROWS), OBJ, [], Selection("lexicographic", priority=("accuracy",), tolerance=0.3))
    # front accuracies span 0.90..0.97; within 0.3 of that range (>= 0.949) are trials 1, 2, 5,
    # and the fastest of them is trial 1
    assert lex_tol.selected.number == 1
    w = select_trial(cands(ROWS), OBJ, [], Selection("weighted", weights=(("accuracy", 1.0), ("latency_p95_ms", 0.0))))
    assert w.selected.number == 2


def test_brute_force_over_all_constraint_thresholds():
    for acc_min, lat_max in itertools.product([0.88, 0.92, 0.95], [15, 50, 100]):
        cons = [parse_constraint(f"accuracy >= {acc_min}"), parse_constraint(f"latency_p95_ms <= {lat_max}")]
        feasible = [i for i, r in enumerate(ROWS) if r[0] >= acc_min and r[1] <= lat_max]
        if not feasible:
            with pytest.raises(NoFeasibleTrial):
                select_trial(cands(ROWS), OBJ, cons)
            continue
        choice = select_trial(cands(ROWS), OBJ, cons)
        assert choice.selected.number in feasible
        assert choice.n_feasible == len(feasible)


def test_no_feasible_names_the_closest_trial_and_missed_constraint():
    with pytest.raises(NoFeasibleTrial, match=r"closest is trial 2, which misses 'accuracy >= 0.98' \(it has accuracy=0.97\)"):
        select_trial(cands(ROWS), OBJ, [parse_constraint("accuracy >= 0.98")])


def test_constraint_on_unmeasured_metric():
    with pytest.raises(SpecError, match="uses 'roc_auc', which this study did not measure"):
        select_trial(cands(ROWS), OBJ, [parse_constraint("roc_auc >= 0.9")])
    with pytest.raises(SpecError, match=r"uses 'acuracy'.*Did you mean 'accuracy'\?"):
        select_trial(cands(ROWS), OBJ, [parse_constraint("acuracy >= 0.9", builtin_only=False)])
    # a name that is no metric at all is not sent to the spec (which would refuse it)
    with pytest.raises(SpecError) as unknown:
        select_trial(cands(ROWS), OBJ, [parse_constraint("F1 >= 0.8", builtin_only=False)])
    assert "'F1', which is not a metric tuneops knows" in str(unknown.value)
    assert "Did you mean 'f1'?" in str(unknown.value) and "add it to the spec" not in str(
        unknown.value
    )


# -- measurement noise ---------------------------------------------------------------------------
def noisy(rows):
    """Candidates ``(accuracy, latency, (low, high))``: latency with its interval."""
    return [Candidate(i, (a, l), {"accuracy": a, "latency_p95_ms": l}, {},
                      {"latency_p95_ms": ci}) for i, (a, l, ci) in enumerate(rows)]


@pytest.mark.parametrize("seed", range(3))
def test_without_intervals_the_noise_front_is_the_pareto_front(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(30, 2)).astype(float)
    cs = [Candidate(i, tuple(v), {}) for i, v in enumerate(values)]
    assert (noise_front(cs, OBJ) == brute_force_front(values, ["maximize", "minimize"])).all()


def test_differences_within_the_interval_are_ties_on_the_front():
    rows = [(0.90, 5.0, (4.8, 5.2)), (0.90, 5.1, (4.9, 5.3)), (0.90, 7.0, (6.8, 7.2))]
    # By value trial 0 dominates 1; within noise they tie, and both beat trial 2.
    assert list(noise_front(noisy(rows), OBJ)) == [True, True, False]
    assert list(pareto_mask(np.array([r[:2] for r in rows]), ["maximize", "minimize"])) == [
        True, False, False]


def test_a_trade_off_dominated_only_through_a_chain_of_ties_stays_on_the_front():
    """Found by a user: each trial is more accurate than the next (roc_auc, no interval) and
    slower only within noise, but trial 4 is faster than trial 0 beyond noise. Dominance within
    noise is not transitive: 0 dominates 1, 1 dominates 2 ... yet nothing on the front dominates
    the fast trials, which the pairwise test dropped (the front was {0})."""
    rows = [(0.95, 0.47, (0.45, 0.49)), (0.94, 0.44, (0.42, 0.46)), (0.93, 0.41, (0.39, 0.43)),
            (0.92, 0.38, (0.36, 0.40)), (0.91, 0.35, (0.33, 0.37))]
    front = noise_front(noisy(rows), OBJ)
    assert list(front) == [True, False, True, False, True]
    _assert_kernel(noisy(rows), front)


@pytest.mark.parametrize("seed", range(6))
def test_every_trial_left_off_the_noise_front_is_dominated_by_a_trial_on_it(seed):
    rng = np.random.default_rng(seed)
    n = 60
    acc = rng.integers(80, 100, size=n) / 100
    lat = rng.uniform(1.0, 3.0, size=n)
    width = rng.uniform(0.05, 0.6, size=n)
    cs = noisy([(a, m, (m - w, m + w)) for a, m, w in zip(acc, lat, width, strict=True)])
    _assert_kernel(cs, noise_front(cs, OBJ))


def _assert_kernel(cs, front):
    """No front member dominates another within noise; every other trial is dominated by one."""

    def dominates(b, a):
        (acc_b, _), (acc_a, _) = b.values, a.values
        lo_b, hi_b = b.intervals["latency_p95_ms"]
        lo_a, hi_a = a.intervals["latency_p95_ms"]
        better = acc_b > acc_a or hi_b < lo_a
        worse = acc_b < acc_a or lo_b > hi_a
        return better and not worse

    members = [c for c, keep in zip(cs, front, strict=True) if keep]
    assert members
    for a in cs:
        dominated = any(dominates(b, a) for b in members)
        assert dominated != (a in members), a.number


def test_a_trial_whose_interval_has_no_far_end_is_not_said_to_reach_past_the_limit():
    """A p95 of 1.9 ms whose timing stopped after 20 calls (dominated) has no upper bound: the
    note said it met `latency_p95_ms <= 200` "not beyond measurement noise (the interval reaches
    past the limit)", and its selected-within-noise note printed the end as "inf"."""
    limit = [parse_constraint("latency_p95_ms <= 200")]
    clear = (0.52, 0.68, (0.66, 0.71))
    cut = (0.48, 1.91, (1.69, float("inf")))  # what _study.stored_intervals reads from null
    near = (0.50, 199.0, (190.0, 205.0))
    choice = select_trial(noisy([clear, cut, near]), OBJ, limit)
    assert choice.selected.number == 0 and choice.within_noise == (1, 2)
    (note,) = choice.notes
    assert note.startswith(
        "1 trial(s) (2) meet the constraints by their measured value but not beyond measurement "
        "noise (the interval reaches past the limit); 1 trial(s) (1) meet the constraints by "
        "their measured value, but an interval of theirs has no far end: too few timed calls"
    ), note
    only = select_trial(noisy([cut]), OBJ, limit)
    # selected within noise: not "within noise of the limit ... may land on either side" of 200
    assert only.notes[0] == (
        "no trial meets the constraints beyond measurement noise; the selected trial 0 meets "
        "them by its measured value, not beyond noise: latency_p95_ms 1.91, whose 95% interval "
        "has no upper end: too few timed calls to bound it, however far from the limit the "
        "value is (a timing stops after 20 calls once its trial is known to be dominated; a "
        "p95 needs 72). Re-measure it before relying on it."
    ), only.notes[0]


def test_lexicographic_passes_a_tie_within_noise_to_the_next_objective():
    rows = [(0.90, 5.0, (4.8, 5.2)), (0.95, 5.1, (4.9, 5.3)), (0.99, 9.0, (8.8, 9.2))]
    policy = Selection("lexicographic", priority=("latency_p95_ms", "accuracy"))
    assert select_trial(noisy(rows), OBJ, [], policy).selected.number == 1
    plain = [Candidate(c.number, c.values, c.metrics) for c in noisy(rows)]
    assert select_trial(plain, OBJ, [], policy).selected.number == 0


def test_a_constraint_is_judged_on_the_interval_and_noise_is_noted():
    limit = [parse_constraint("latency_p95_ms <= 5.15")]
    near = (0.95, 5.0, (4.8, 5.2))  # meets by value; its interval reaches past the limit
    clear = (0.90, 4.0, (3.9, 4.1))
    over = (0.99, 5.5, (5.1, 5.9))  # misses by value, even if its interval reaches below
    assert violation(limit[0], {"latency_p95_ms": 5.0}, {"latency_p95_ms": (4.8, 5.2)}) > 0
    assert violation(limit[0], {"latency_p95_ms": 5.0}) < 0
    choice = select_trial(noisy([near, clear, over]), OBJ, limit)
    assert choice.selected.number == 1 and choice.n_feasible == 1
    assert choice.within_noise == (0,)
    assert "not beyond measurement noise" in choice.notes[0]
    # With nothing clear, the trial within noise of the limit is chosen, and the note says so.
    only = select_trial(noisy([near, over]), OBJ, limit)
    assert only.selected.number == 0
    assert "within noise of the limit" in only.notes[0] and "4.8-5.2" in only.notes[0]
    assert only.to_dict()["notes"] == list(only.notes)
    with pytest.raises(NoFeasibleTrial):
        select_trial(noisy([over]), OBJ, limit)


def test_intervals_are_read_from_the_trials_cost_record():
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = optuna.trial.create_trial(
        values=[0.9, 5.0], user_attrs={_study.METRICS: {"accuracy": 0.9, "latency_p95_ms": 5.0},
                                       _study.COST: {"intervals": {"latency_p95_ms": [4.5, 5.5]}}})
    study.add_trial(trial)
    (c,) = candidates_from_trials(study.get_trials(), ["accuracy", "latency_p95_ms"])
    assert c.intervals == {"latency_p95_ms": (4.5, 5.5)}


def test_accuracy_differences_below_one_row_are_ties_on_the_front():
    """The quickstart showed trial 10 (0.963121, 14.7 ms) on the front beside trial 42
    (0.963102, 7.9 ms): the same number of correct rows of 569, shared differently by the folds."""
    rows = [(0.963121, 14.7, 0), (0.963102, 7.9, 0), (0.9596, 3.6, 0)]
    assert [c.number for c in select_trial(cands(rows), OBJ).front] == [0, 1, 2]
    resolution = resolution_of(OBJ, 569)
    assert resolution == {"accuracy": pytest.approx(1 / 569)}
    assert [c.number for c in select_trial(cands(rows), OBJ, resolution=resolution).front] == [1, 2]
    # One more correct row (1/569 = 0.00176) is a real difference, kept.
    rows[0] = (0.963102 + 1 / 569, 14.7, 0)
    assert [c.number for c in select_trial(cands(rows), OBJ, resolution=resolution).front] == [
        0, 1, 2]
    # A study's data record gives the rows.
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(_study.DATA, {"rows": 569})
    for a, latency in [(0.963121, 14.7), (0.963102, 7.9)]:
        study.add_trial(optuna.trial.create_trial(values=[a, latency], params={}, distributions={}))
    assert [c.number for c in select_in_study(study, OBJ, [], Selection()).front] == [1]
    assert resolution_of([Objective("roc_auc", "maximize")], 569) == {}


def test_lexicographic_order_ties_accuracies_below_the_resolution():
    # ionosphere: one row is 1/351 of accuracy; 1.6e-5 apart is how folds share the same rows
    plain = [Candidate(0, (0.868946, 0.3729), {}), Candidate(1, (0.868962, 0.3933), {})]
    policy = Selection("lexicographic", priority=("accuracy",))
    assert select_trial(plain, OBJ, [], policy).selected.number == 1  # no resolution: 1 wins
    resolution = resolution_of(OBJ, 351)
    assert select_trial(plain, OBJ, [], policy, resolution).selected.number == 0  # the faster


def test_the_closest_trial_s_miss_shows_the_interval_it_was_judged_on():
    limit = [parse_constraint("latency_p95_ms <= 0.76"), parse_constraint("accuracy >= 0.99")]
    rows = [(0.95, 0.717, (0.69, 0.768))]
    with pytest.raises(NoFeasibleTrial, match=r"latency_p95_ms=0\.717, 95% interval 0\.69-0\.768"):
        select_trial(noisy(rows), OBJ, limit)


def test_constraints_optuna_recorded_rule_trials_out_when_no_expression_is_given():
    """A plain Optuna study's constraints_func records each trial's constraint values; without
    constraint expressions selection ignored them, and a study whose every trial broke one had
    a trial "selected" (and drawn as selected in its report; audit)."""
    from optuna.trial import TrialState, create_trial

    from tuneops.selection import candidates_from_trials, select_trial

    def trial(number, value, constraint):
        t = create_trial(state=TrialState.COMPLETE, values=[value], params={},
                         distributions={}, system_attrs={"constraints": [constraint]})
        t.number = number
        return t

    objectives = [Objective(metric="accuracy", direction="maximize")]
    broken = [trial(0, 0.9, 0.5), trial(1, 0.8, 1.0)]
    with pytest.raises(NoFeasibleTrial, match="constraints the study recorded"):
        select_trial(candidates_from_trials(broken, ["accuracy"]), objectives, [], Selection())
    mixed = [*broken, trial(2, 0.7, -0.1)]
    chosen = select_trial(candidates_from_trials(mixed, ["accuracy"]), objectives, [], Selection())
    assert chosen.selected.number == 2


def test_a_knee_that_ties_says_it_took_the_earlier_trial_by_rule():
    """The thyroid run's front of two (0.9943 at 0.54 ms, 0.9911 at 0.39 ms): scaled, the two
    sit at (0, 1) and (1, 0), equally close to the ideal point, and "Selected trial 2 by
    knee" read as a balance found."""
    two = cands([(0.9943, 0.54, 1), (0.9911, 0.39, 1)])
    choice = select_trial(two, OBJ, [])
    assert choice.selected.number == 0
    assert choice.notes == (
        "the knee ties between trials 0 and 1 (equally close to the ideal point on the scaled "
        "front); the earliest, trial 0, is taken. Another policy chooses by preference: "
        "lexicographic (a priority) or weighted (weights).",
    )
    # a knee that is one trial: nothing to say
    three = cands([(0.99, 10.0, 1), (0.98, 2.0, 1), (0.90, 1.0, 1)])
    assert select_trial(three, OBJ, []).notes == ()
    assert select_trial(two, OBJ, [], Selection("weighted")).notes == ()


def test_one_objective_tie_says_the_earliest_best_trial_is_taken_not_a_knee():
    """A tune() study with three trials at accuracy 0.7753 printed "the knee ties between trials
    2, 5 and 10 (equally close to the ideal point on the scaled front) ... Another policy chooses
    by preference": with one objective there is no front to scale nor a preference to give, and
    every policy takes the earliest of the trials that share the best value."""
    one = [Objective("accuracy", "maximize")]
    tied = [Candidate(i, (a,), {"accuracy": a}) for i, a in enumerate([0.65, 0.7753, 0.7753, 0.7])]
    for policy in ("knee", "lexicographic", "weighted"):
        choice = select_trial(tied, one, [], Selection(policy))
        assert choice.selected.number == 1
        assert choice.notes == (
            "trials 1 and 2 tie on the best accuracy (0.7753); the earliest, trial 1, is taken.",
        )
    alone = [Candidate(i, (a,), {"accuracy": a}) for i, a in enumerate([0.65, 0.78, 0.7753])]
    assert select_trial(alone, one, []).notes == ()


def test_trials_with_the_same_values_of_every_objective_are_not_called_a_knee_tie():
    """Eight trials at roc_auc 1 and f1 1 (a leak) printed "the knee ties between trials 0, 1,
    ... (equally close to the ideal point on the scaled front) ... Another policy chooses by
    preference": no policy can tell identical values apart."""
    two = [Objective("roc_auc", "maximize"), Objective("f1", "maximize")]
    same = [Candidate(i, (1.0, 1.0), {"roc_auc": 1.0, "f1": 1.0}) for i in range(3)]
    for policy in ("knee", "lexicographic", "weighted"):
        assert select_trial(same, two, [], Selection(policy)).notes == (
            "trials 0, 1 and 2 have the same value of every objective (roc_auc 1, f1 1); the "
            "earliest, trial 0, is taken.",
        )
    # a knee that ties trials of different values is still the knee's note
    apart = cands([(0.9943, 0.54, 1), (0.9911, 0.39, 1), (0.9943, 0.54, 1)])
    (note,) = select_trial(apart, OBJ, []).notes
    assert note.startswith("the knee ties between trials 0, 1 and 2"), note


def test_select_refuses_constraints_that_repeat_or_contradict_each_other():
    """`tuneops select -c 'x <= 1' -c 'x <= 2'` and tune(constraints=[...]) kept both bounds
    silently (the spec refuses them too: test_spec)."""
    import tuneops
    from tuneops.selection import reselect

    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(SpecError, match=r"constraints \(--constraint\)\[1\]: 'value <= 2' and "
                       r"constraints \(--constraint\)\[0\] 'value <= 1' are both upper bounds"):
        reselect(study, constraints=["value <= 1", "value <= 2"])
    with pytest.raises(SpecError, match=r"constraints\[1\]: 'value >= 3' and constraints\[0\] "
                       r"'value <= 2' leave no value of value that meets both"):
        tuneops.tune(lambda t: t.suggest_float("x", 0, 1), n_trials=1,
                     constraints=["value <= 2", "value >= 3"], storage=":memory:")


def test_a_constraint_on_a_metric_only_later_trials_measured_judges_the_earlier_ones_missing_it():
    """A study run again with 'latency_p95_ms <= 30' added ran its trials (which measured
    latency), then selection refused it: "uses 'latency_p95_ms', which this study did not
    measure ... add it to the spec's constraints", read from its first trial alone."""
    earlier = [Candidate(i, (a,), {"accuracy": a, "model_size_kb": 9.0})
               for i, a in enumerate([0.99, 0.98])]
    later = [Candidate(2 + i, (a,), {"accuracy": a, "latency_p95_ms": lat})
             for i, (a, lat) in enumerate([(0.9, 50.0), (0.8, 10.0)])]
    objectives = [Objective("accuracy", "maximize")]
    fast = parse_constraint("latency_p95_ms <= 30")
    choice = select_trial(earlier + later, objectives, [fast])
    assert (choice.selected.number, choice.n_feasible, choice.n_candidates) == (3, 1, 4)
    with pytest.raises(NoFeasibleTrial, match=r"\(4 complete\)\. The closest is trial 3"):
        select_trial(earlier + later, objectives, [parse_constraint("latency_p95_ms <= 5")])
    with pytest.raises(NoFeasibleTrial, match="no trial measured every metric they name"):
        select_trial(earlier + later, objectives, [fast, parse_constraint("model_size_kb <= 10")])


def test_a_refusal_says_the_repeats_beside_the_complete_trials_it_judged():
    """`tuneops show` said "29 complete" and `tuneops select -c 'accuracy >= 0.99'` of the same
    study "no trial meets the constraints (11 complete)": the 18 repeats (tuneops.repeats: an
    earlier trial's outcome taken), not candidates, went unsaid."""
    from tuneops._study import REPEAT_OF
    from tuneops.selection import select_in_study

    study = optuna.create_study(direction="maximize")
    for x, repeat_of in ((0.5, None), (0.7, None), (0.7, 1), (0.7, 1)):
        study.enqueue_trial({"x": x}, user_attrs={REPEAT_OF: repeat_of} if repeat_of else {})
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    objectives = [Objective("value", "maximize")]
    with pytest.raises(NoFeasibleTrial, match=r"constraints \(2 complete, and 2 complete repeats "
                       r"of their configurations\)\. The closest is trial 1"):
        select_in_study(study, objectives, [parse_constraint("value >= 0.9", builtin_only=False)],
                        Selection())
    plain = optuna.create_study(direction="maximize")
    plain.optimize(lambda t: t.suggest_float("x", 0, 0.5), n_trials=2)
    with pytest.raises(NoFeasibleTrial, match=r"constraints \(2 complete\)\. The closest"):
        select_in_study(plain, objectives, [parse_constraint("value >= 0.9", builtin_only=False)],
                        Selection())


def test_the_best_trial_of_an_objective_left_off_a_noise_front_is_explained():
    """On pmlb:ionosphere the fastest trial (p95 0.914 ms, 0.8505-1.021) was not on the front:
    trial 6 ties with it within noise (0.9538, 0.8818-1.067) and is more accurate beyond it.
    The front and `show` said nothing, and a reader looking for the fastest model found it
    missing."""
    rows = [(0.8746, 0.914, (0.8505, 1.021)), (0.9088, 0.9538, (0.8818, 1.067)),
            (0.85, 1.2, (1.1, 1.3))]
    choice = select_trial(noisy(rows), OBJ)
    assert [c.number for c in choice.front] == [1]
    (note,) = choice.notes
    assert note == (
        "trial 0, the best on latency_p95_ms (0.914), is not on the front: trial 1 "
        "(latency_p95_ms 0.9538) is within noise of it there (95% intervals 0.8505-1.021 and "
        "0.8818-1.067) and better beyond noise on accuracy 0.9088 against 0.8746."
    ), note
    # accuracy below its resolution (one row of 569): the more accurate trial, slower, is left
    # out for a trial with the same number of correct rows
    rows = [(0.96315, 3.0, (2.8, 3.2)), (0.96310, 1.0, (0.9, 1.1))]
    choice = select_trial(noisy(rows), OBJ, resolution={"accuracy": 1 / 569})
    (note,) = choice.notes
    assert note.startswith("trial 0, the best on accuracy (0.9631), is not on the front: trial 1")
    assert "(they differ by less than one row of the 569 cross-validated)" in note
    assert note.endswith("better beyond noise on latency_p95_ms 1 against 3.")
    # the best of every objective on the front: nothing to explain
    rows = [(0.95, 1.0, (0.9, 1.1)), (0.90, 0.5, (0.45, 0.55)), (0.80, 2.0, (1.9, 2.1))]
    choice = select_trial(noisy(rows), OBJ)
    assert [c.number for c in choice.front] == [0, 1] and not any(
        "is not on the front" in n for n in choice.notes
    )


def test_weighted_counts_no_difference_within_noise():
    """pmlb:ionosphere, random forests, {accuracy: 1, latency_p95_ms: 2, model_size_kb: 1.5}:
    of trials 6 and 10 on the front, weighted took 6 for a p95 of 0.62 against 0.70 ms whose
    intervals overlap (0.57-0.77, 0.66-0.83): min-max scaling made that the whole latency axis,
    at weight 2, against 10's model a third the size. Within noise, it is no difference."""
    three = [*OBJ, Objective("model_size_kb", "minimize")]

    def trial(number, accuracy, latency, ci, size):
        return Candidate(number, (accuracy, latency, size),
                         {"accuracy": accuracy, "latency_p95_ms": latency, "model_size_kb": size},
                         {}, {"latency_p95_ms": ci})

    front = [trial(6, 0.9316, 0.6217, (0.5709, 0.7654), 36.60),
             trial(10, 0.8946, 0.7010, (0.6612, 0.8287), 12.34)]
    weights = Selection("weighted", weights=(("accuracy", 1.0), ("latency_p95_ms", 2.0),
                                             ("model_size_kb", 1.5)))
    choice = select_trial(front, three, [], weights)
    assert [c.number for c in choice.front] == [6, 10]
    assert choice.selected.number == 10
    # a latency difference beyond noise still counts
    apart = [front[0], trial(10, 0.8946, 0.9010, (0.8612, 1.0287), 12.34)]
    assert select_trial(apart, three, [], weights).selected.number == 6
    # accuracy below its resolution (one row of 351) is no difference either: scaled, 1e-5
    # was the whole accuracy axis
    rows = [trial(0, 0.90001, 0.5, (0.45, 0.55), 30.0), trial(1, 0.90000, 1.0, (0.9, 1.1), 20.0)]
    lean = Selection("weighted", weights=(("accuracy", 1.0), ("latency_p95_ms", 1.0),
                                          ("model_size_kb", 1.5)))
    choice = select_trial(rows, three, [], lean, {"accuracy": 1 / 351})
    assert [c.number for c in choice.front] == [0, 1] and choice.selected.number == 1
