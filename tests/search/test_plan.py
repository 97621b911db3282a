"""The stage plan: default order and budgets, fixed params, explicit stages, resuming."""

from __future__ import annotations

from typing import Any

import pytest

from adamtune.config.schema import SearchConfig
from adamtune.search.plan import Stage, current_stage, make_plan, replan


def search(**values: Any) -> SearchConfig:
    """A search config; the budget rule is tested without confirmation unless asked."""
    values.setdefault("confirm", {"seeds": 1})
    return SearchConfig.model_validate(values)


def budgets(plan: list[Stage]) -> dict[str, int]:
    return {stage.name: stage.trials for stage in plan}


def test_default_staged_plan_for_60_trials() -> None:
    plan = make_plan(search(), 60)
    assert budgets(plan) == {
        "lr": 17,
        "betas": 13,
        "eps": 4,
        "weight_decay": 13,
        "amsgrad": 4,
        "local": 8,
    }
    assert sum(s.trials for s in plan) == 59  # trial 0 is the baseline
    # Every stage after lr re-tunes lr around the incumbent's; the local stage moves lr, the
    # betas and weight decay together around it
    assert [s.params for s in plan] == [
        ("lr",),
        ("beta1", "beta2", "lr_factor"),
        ("eps", "lr_factor"),
        ("weight_decay", "lr_factor"),
        ("amsgrad", "lr_factor"),
        ("lr_factor", "beta1_factor", "beta2_factor", "weight_decay_factor"),
    ]


def test_under_60_trials_there_is_no_local_stage() -> None:
    plan = make_plan(search(), 59)
    assert budgets(plan) == {"lr": 19, "betas": 15, "eps": 5, "weight_decay": 14, "amsgrad": 5}
    assert [s.name for s in make_plan(search(), 30)][-1] == "amsgrad"


def test_the_local_stage_moves_only_what_is_searched() -> None:
    plan = make_plan(search(space={"lr": 3e-3, "beta2": 0.999}), 60)
    assert plan[-1].params == ("beta1_factor", "weight_decay_factor")
    # one window alone is no joint move: no local stage
    pinned = search(space={"lr": 3e-3, "beta1": 0.9, "weight_decay": 0})
    assert "local" not in budgets(make_plan(pinned, 60))
    assert "local" not in budgets(make_plan(search(strategy="joint"), 60))
    explicit = search(stages=[{"params": ["lr"]}, {"params": ["beta1", "beta2"]}])
    assert "local" not in budgets(make_plan(explicit, 60))


def test_a_listed_schedule_stage_comes_after_amsgrad_with_weight_2() -> None:
    kinds = ["none", "exponential", "cosine", "step"]
    plan = make_plan(search(space={"schedule": kinds}), 60)
    assert budgets(plan) == {
        "lr": 15,
        "betas": 11,
        "eps": 4,
        "weight_decay": 11,
        "amsgrad": 4,
        "schedule": 7,
        "local": 7,
    }
    assert plan[-2].params == ("schedule",) and sum(s.trials for s in plan) == 59


def test_decoupled_decay_joins_the_weight_decay_stage() -> None:
    plan = make_plan(search(space={"decoupled_weight_decay": [False, True]}), 60)
    assert plan[3] == Stage(
        "weight_decay", ("weight_decay", "decoupled_weight_decay", "lr_factor"), 13
    )


@pytest.mark.parametrize("trials", [2, 5, 9])
def test_small_studies_tune_only_the_learning_rate(trials: int) -> None:
    assert make_plan(search(), trials) == [Stage("lr", ("lr",), trials - 1)]


def test_ten_trials_is_the_first_full_plan() -> None:
    plan = make_plan(search(), 10)
    assert [s.name for s in plan] == ["lr", "betas", "eps", "weight_decay", "amsgrad"]
    assert sum(s.trials for s in plan) == 9
    assert all(s.trials >= 1 for s in plan)


def test_one_trial_is_only_the_baseline() -> None:
    assert make_plan(search(), 1) == []
    assert make_plan(search(strategy="joint"), 1) == []


def test_fixed_amsgrad_drops_its_stage() -> None:
    plan = make_plan(search(space={"amsgrad": False}), 60)
    assert [s.name for s in plan] == ["lr", "betas", "eps", "weight_decay", "local"]
    assert sum(s.trials for s in plan) == 59


def test_fixed_betas_drop_their_stage() -> None:
    plan = make_plan(search(space={"beta1": 0.9, "beta2": 0.999}), 60)
    assert [s.name for s in plan] == ["lr", "eps", "weight_decay", "amsgrad", "local"]
    assert plan[-1].params == ("lr_factor", "weight_decay_factor")
    assert sum(s.trials for s in plan) == 59


def test_one_fixed_beta_leaves_the_other_in_the_betas_stage() -> None:
    plan = make_plan(search(space={"beta2": 0.999}), 60)
    assert plan[1].name == "betas" and plan[1].params == ("beta1", "lr_factor")


def test_small_study_with_fixed_lr_tunes_the_first_live_stage() -> None:
    assert make_plan(search(space={"lr": 1e-3}), 8) == [Stage("betas", ("beta1", "beta2"), 7)]


def test_joint_is_one_stage() -> None:
    plan = make_plan(search(strategy="joint"), 60)
    assert plan == [Stage("joint", ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"), 59)]


def test_explicit_stages_with_trials_leftover_goes_to_the_last() -> None:
    cfg = search(
        stages=[{"params": ["lr"], "trials": 20}, {"params": ["beta1", "beta2"], "trials": 20}]
    )
    assert make_plan(cfg, 60) == [
        Stage("lr", ("lr",), 20),
        Stage("beta1+beta2", ("beta1", "beta2", "lr_factor"), 39),
    ]


def test_explicit_stages_before_lr_do_not_re_tune_it() -> None:
    cfg = search(stages=[{"params": ["beta1"]}, {"params": ["lr"]}, {"params": ["eps"]}])
    assert [s.params for s in make_plan(cfg, 30)] == [("beta1",), ("lr",), ("eps", "lr_factor")]


def test_a_pinned_lr_is_re_tuned_nowhere() -> None:
    plan = make_plan(search(space={"lr": 3e-3}), 60)
    assert all("lr_factor" not in s.params for s in plan)


def test_explicit_stages_without_trials_share_equally() -> None:
    cfg = search(stages=[{"params": ["lr"]}, {"params": ["beta1", "beta2"]}])
    assert budgets(make_plan(cfg, 60)) == {"lr": 30, "beta1+beta2": 29}


def test_explicit_stages_mixed_and_named() -> None:
    cfg = search(
        stages=[
            {"params": ["lr"], "trials": 20},
            {"params": ["beta1", "beta2"]},
            {"params": ["eps"], "name": "epsilon"},
        ]
    )
    assert budgets(make_plan(cfg, 60)) == {"lr": 20, "beta1+beta2": 20, "epsilon": 19}


def test_explicit_stages_are_cut_where_the_budget_ends() -> None:
    cfg = search(
        stages=[
            {"params": ["lr"], "trials": 50},
            {"params": ["beta1", "beta2"], "trials": 20},
            {"params": ["eps"], "trials": 5},
        ]
    )
    assert budgets(make_plan(cfg, 60)) == {"lr": 50, "beta1+beta2": 9}


def test_explicit_stages_apply_to_small_studies_too() -> None:
    cfg = search(stages=[{"params": ["eps"]}, {"params": ["lr"]}])
    assert budgets(make_plan(cfg, 5)) == {"eps": 2, "lr": 2}


@pytest.mark.parametrize(
    "done",
    [
        {},
        {"defaults": 1},
        {"defaults": 1, "lr": 7},
        {"defaults": 1, "lr": 17, "betas": 5},
        {"defaults": 1, "lr": 17, "betas": 13, "eps": 4, "weight_decay": 13, "amsgrad": 4},
        {"lr": 17, "betas": 13, "eps": 4, "weight_decay": 13, "amsgrad": 4, "local": 3},
    ],
)
def test_replan_with_an_unchanged_total_is_make_plan(done: dict[str, int]) -> None:
    assert replan(search(), 60, done) == make_plan(search(), 60)


def test_replan_closes_stages_left_behind_at_what_they_ran() -> None:
    done = {"defaults": 1, "lr": 10, "betas": 3}  # lr moved on early (e.g. an older budget)
    plan = replan(search(), 60, done)
    assert plan[0] == Stage("lr", ("lr",), 10)
    assert plan[1].trials >= 3
    assert [s.name for s in plan] == ["lr", "betas", "eps", "weight_decay", "amsgrad", "local"]
    assert sum(s.trials for s in plan) == 59


def test_a_total_raised_past_60_gives_new_trials_to_the_local_stage() -> None:
    done = dict(budgets(make_plan(search(), 30)), defaults=1)  # a finished 30-trial study
    plan = replan(search(), 64, done)
    # the stages left behind stay closed; the one last run shares the rest with the local
    # stage by weight (1 to 2); no refine stage across the whole space
    assert budgets(plan) == {**budgets(make_plan(search(), 30)), "amsgrad": 12, "local": 24}
    assert sum(s.trials for s in plan) == 63


def test_a_raised_total_grows_a_local_stage_that_ran() -> None:
    done = {**budgets(make_plan(search(), 60)), "local": 8}  # a finished 60-trial study
    plan = replan(search(), 70, done)
    assert budgets(plan) == {**done, "local": 18}  # it searches on near the winner


def test_a_raise_under_60_goes_to_a_local_stage_near_the_winner() -> None:
    done = dict(budgets(make_plan(search(), 30)), defaults=1)  # a finished 30-trial study
    raised = replan(search(), 50, done)  # under 60: not a refine of the whole space
    assert budgets(raised) == {**budgets(make_plan(search(), 30)), "local": 20}
    assert raised[-1].params == ("lr_factor", "beta1_factor", "beta2_factor", "weight_decay_factor")
    plan = replan(search(), 70, {**done, "local": 20})  # once it ran, later raises grow it
    assert budgets(plan) == {**budgets(make_plan(search(), 30)), "local": 40}
    assert sum(s.trials for s in plan) == 69


def test_a_raise_of_a_study_with_its_own_stages_is_refined_jointly() -> None:
    own = search(stages=[{"params": ["lr"]}, {"params": ["beta1", "beta2"]}])
    done = dict(budgets(make_plan(own, 30)), defaults=1)
    raised = replan(own, 40, done)
    assert raised[-1].name == "refine" and raised[-1].trials == 10
    plan = replan(own, 50, {**done, "refine": 10})  # a refine stage that ran grows
    assert budgets(plan) == {**budgets(make_plan(own, 30)), "refine": 20}


def test_a_stage_the_new_total_leaves_nothing_is_not_planned() -> None:
    cfg = search(confirm={"seeds": 4, "top": 3})
    done = dict(budgets(make_plan(cfg, 59)), defaults=1)
    # one more trial, and the confirmation grows by three (2 -> 3 candidates): no room for
    # a local stage, which is left out rather than shown with 0 trials
    plan = replan(cfg, 60, done)
    assert budgets(plan) == budgets(make_plan(cfg, 59)) and all(s.trials for s in plan)


def test_a_total_lowered_under_60_closes_a_local_stage_that_ran() -> None:
    done = {**budgets(make_plan(search(), 60)), "local": 3}
    plan = replan(search(), 50, done)
    assert budgets(plan) == done
    assert current_stage(plan, done) is None


def test_replan_with_a_larger_total_grows_the_stages_to_come() -> None:
    done = {"defaults": 1, "lr": 23, "betas": 5}
    plan = replan(search(), 100, done)
    assert plan[0] == Stage("lr", ("lr",), 23)  # closed
    assert sum(s.trials for s in plan) == 99
    old = budgets(make_plan(search(), 60))
    assert all(s.trials >= old[s.name] for s in plan)


def test_replan_of_an_unstarted_study_is_a_fresh_plan() -> None:
    assert replan(search(), 100, {"defaults": 1}) == make_plan(search(), 100)


def test_replan_with_a_smaller_total_stays_within_it() -> None:
    done = {"defaults": 1, "lr": 23, "betas": 5}  # 29 trials run; the total is now 30
    plan = replan(search(), 30, done)
    assert plan[0] == Stage("lr", ("lr",), 23)
    assert plan[1].trials >= 5
    assert sum(s.trials for s in plan) == 29


def test_current_stage() -> None:
    plan = make_plan(search(), 60)
    assert current_stage(plan, {}) == plan[0]
    assert current_stage(plan, {"defaults": 1, "lr": 16}) == plan[0]
    assert current_stage(plan, {"defaults": 1, "lr": 17}) == plan[1]
    assert current_stage(plan, {"lr": 17, "betas": 13, "eps": 4}) == plan[3]
    assert current_stage(plan, budgets(plan)) is None
    assert current_stage([], {}) is None


def test_current_stage_skips_stages_without_budget() -> None:
    plan = [
        Stage("lr", ("lr",), 2),
        Stage("betas", ("beta1", "beta2"), 0),
        Stage("eps", ("eps",), 1),
    ]
    assert current_stage(plan, {"lr": 2}) == plan[2]


def test_lowering_the_total_never_reopens_a_stage_that_was_left() -> None:
    from adamtune.config.schema import SearchConfig
    from adamtune.search.plan import current_stage, replan

    done = {"defaults": 1, "lr": 4, "betas": 1}
    plan = replan(SearchConfig(), 9, done)
    assert plan[0].name == "lr" and plan[0].trials == 4
    stage = current_stage(plan, done)
    assert stage is not None and stage.name != "lr"


def test_the_confirmation_takes_at_most_a_fifth_of_the_budget() -> None:
    from adamtune.search.plan import Confirmation, confirmation

    cfg = search(confirm={"seeds": 4, "top": 3})
    # the defaults and up to 3 candidates, each on 3 extra slots
    assert confirmation(cfg, 60) == Confirmation(3, 3) and confirmation(cfg, 60).trials == 12
    assert confirmation(cfg, 30) == Confirmation(1, 3)  # 6 runs: one candidate and the defaults
    assert confirmation(cfg, 100) == Confirmation(3, 3)  # top is the most it confirms
    assert sum(s.trials for s in make_plan(cfg, 60)) == 60 - 1 - 12
    assert confirmation(search(confirm={"seeds": 3, "top": 5}), 100) == Confirmation(5, 2)


def test_a_raise_after_the_confirmation_keeps_back_the_re_runs_of_what_it_finds() -> None:
    from adamtune.search.plan import Confirmation, Resumed, resumed

    cfg = search(confirm={"seeds": 4, "top": 3})
    drawn = sum(budgets(make_plan(cfg, 30)).values())  # 23 draws, then 6 confirmation runs
    one, two, three = (Confirmation(n, 3) for n in (1, 2, 3))
    assert resumed(cfg, 30, 5, 0, 0) == Resumed(one, 0, 0)  # the stages, as planned
    assert resumed(cfg, 30, drawn, 0, 0) == Resumed(one, None, 0)  # then the confirmation
    # raised by 4: one draw near the winner and the 3 re-runs of one more candidate
    assert resumed(cfg, 34, drawn, 1, 0) == Resumed(two, 1, 1)
    plan = replan(cfg, 34, {"defaults": 1, **budgets(make_plan(cfg, 30))}, extra=1)
    assert plan[-1].name == "local" and plan[-1].trials == 1
    # the draw made (its trial says it belongs to the first raise), its candidate's re-runs
    assert resumed(cfg, 34, drawn + 1, 1, 1) == Resumed(two, None, 1)
    # raised by 2 more: too few for a draw and its re-runs, so nothing more is drawn
    assert resumed(cfg, 36, drawn + 1, 2, 1) == Resumed(two, None, 1)
    closed = replan(cfg, 36, {"defaults": 1, "local": 1, **budgets(make_plan(cfg, 30))}, extra=None)
    assert sum(s.trials for s in closed) == drawn + 1
    # by 6: a second raise, of three draws, and a third candidate; drawn one at a time, it
    # goes on drawing until its three are made
    assert resumed(cfg, 40, drawn + 1, 2, 1) == Resumed(three, 2, 2)
    assert resumed(cfg, 40, drawn + 2, 2, 2) == Resumed(three, 2, 2)
    assert resumed(cfg, 40, drawn + 4, 2, 2) == Resumed(three, None, 2)
    # a total whose own confirmation has candidates left to begin needs no raise of its own
    assert resumed(cfg, 60, drawn, 1, 0) == Resumed(three, 0, 0)


def test_a_raise_never_confirms_a_candidate_on_fewer_slots() -> None:
    from adamtune.search.plan import Confirmation, Resumed, resumed

    cfg = search(confirm={"seeds": 4, "top": 3})
    # a finished 44-trial study (37 draws, one candidate) raised to 45, whose own confirmation
    # takes two: the second's re-runs do not fit in one trial, so it takes none
    assert resumed(cfg, 45, 37, 1, 0) == Resumed(Confirmation(1, 3), None, 0)
    # a 29-trial study (no confirmation) raised to 31: not enough for one
    assert resumed(cfg, 31, 28, 0, 0).confirmation.trials == 0


def test_a_raise_during_an_unfinished_confirmation_still_confirms_its_draw() -> None:
    from adamtune.search.plan import Confirmation, Resumed, resumed

    cfg = search(confirm={"seeds": 4, "top": 3})
    # stopped half-way through its confirmation (the one candidate begun), resumed with 34
    assert resumed(cfg, 34, 23, 1, 0) == Resumed(Confirmation(2, 3), 1, 1)


def test_a_space_of_choices_only_is_never_reopened() -> None:
    from adamtune.search.plan import draws_again, resumed

    cfg = search(
        confirm={"seeds": 4},
        space={
            "lr": 1e-3,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.01,
            "decoupled_weight_decay": [False, True],
        },
    )
    assert not draws_again(cfg)
    # confirmed with budget the stages could not use: it stops, as a fresh study did
    assert resumed(cfg, 30, 3, 1, 0).extra is None


def test_small_studies_confirm_nothing() -> None:
    from adamtune.search.plan import confirmation

    cfg = search(confirm={"seeds": 3})
    assert confirmation(cfg, 29).trials == 0
    assert sum(s.trials for s in make_plan(cfg, 29)) == 28


def test_a_stage_finished_under_budget_leaves_the_rest_to_the_next() -> None:
    cfg = search(
        space={"lr": 1e-3, "amsgrad": [False, True]},
        stages=[{"params": ["amsgrad"], "trials": 5}, {"params": ["eps"]}],
    )
    fresh = make_plan(cfg, 20)
    assert fresh[0] == Stage("amsgrad", ("amsgrad",), 1)  # one untried choice
    # a stage marked finished under its budget (every choice tried) closes at what it ran
    plan = replan(cfg, 20, {"defaults": 1, "amsgrad": 1}, frozenset({"amsgrad"}))
    assert plan[0] == Stage("amsgrad", ("amsgrad",), 1) and plan[1].trials == 18
    assert current_stage(plan, {"amsgrad": 1}, frozenset({"amsgrad"})) == plan[1]
