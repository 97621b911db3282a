"""Adam's parameters: defaults, torch kwargs, and the Optuna coordinates they are searched in."""

from __future__ import annotations

import inspect
import math
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution

from adamtune.config.space import PARAMS, SpaceConfig
from adamtune.search.space import coordinates, encode, searched, suggest
from adamtune.train.params import ADAM_DEFAULTS, AdamParams, fixed_values
from adamtune.train.schedules import Schedule

optuna.logging.set_verbosity(optuna.logging.WARNING)

TUNED = AdamParams(
    lr=3e-3,
    beta1=0.85,
    beta2=0.995,
    eps=1e-7,
    weight_decay=1e-3,
    amsgrad=True,
    decoupled_weight_decay=True,
)


def space(**values: Any) -> SpaceConfig:
    return SpaceConfig.model_validate(values)


ALL_SCHEDULES = ["none", "exponential", "cosine", "step"]


def test_defaults_are_torch_adams_defaults() -> None:
    sig = inspect.signature(torch.optim.Adam).parameters
    assert AdamParams() == ADAM_DEFAULTS
    assert ADAM_DEFAULTS.lr == sig["lr"].default
    assert (ADAM_DEFAULTS.beta1, ADAM_DEFAULTS.beta2) == tuple(sig["betas"].default)
    assert ADAM_DEFAULTS.eps == sig["eps"].default
    assert ADAM_DEFAULTS.weight_decay == sig["weight_decay"].default
    assert ADAM_DEFAULTS.amsgrad is sig["amsgrad"].default
    assert ADAM_DEFAULTS.decoupled_weight_decay is sig["decoupled_weight_decay"].default


def test_torch_kwargs_name_only_adams_arguments() -> None:
    sig = inspect.signature(torch.optim.Adam).parameters
    kwargs = ADAM_DEFAULTS.torch_kwargs()
    assert set(kwargs) <= set(sig)
    assert kwargs["betas"] == [0.9, 0.999]


@pytest.mark.parametrize("params", [ADAM_DEFAULTS, TUNED], ids=["defaults", "tuned"])
def test_torch_accepts_torch_kwargs(params: AdamParams) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), **params.torch_kwargs())
    group = opt.param_groups[0]
    assert tuple(group["betas"]) == (params.beta1, params.beta2)
    assert (group["lr"], group["eps"], group["weight_decay"]) == (
        params.lr,
        params.eps,
        params.weight_decay,
    )
    assert (group["amsgrad"], group["decoupled_weight_decay"]) == (
        params.amsgrad,
        params.decoupled_weight_decay,
    )
    before = model.weight.detach().clone()
    model(torch.randn(4, 3)).pow(2).sum().backward()
    opt.step()  # the list of betas also works inside the update
    assert not torch.equal(before, model.weight)
    assert torch.isfinite(model.weight).all()


def test_as_dict_from_dict_and_with_values() -> None:
    assert AdamParams.from_dict(TUNED.as_dict()) == TUNED
    assert AdamParams.from_dict({"lr": 0.01, "unrelated": 1}) == AdamParams(lr=0.01)
    assert ADAM_DEFAULTS.with_values({"beta2": 0.99}) == AdamParams(beta2=0.99)
    assert list(TUNED.as_dict()) == [*PARAMS, "schedule"]
    cosine = TUNED.with_values({"schedule": Schedule("cosine", 0.01, 0.1)})
    assert AdamParams.from_dict(cosine.as_dict()) == cosine
    assert "schedule" not in cosine.torch_kwargs()


def test_lr_and_eps_are_log_uniform() -> None:
    sp = space(lr={"low": 1e-4, "high": 1e-2})
    assert coordinates("lr", sp) == {"lr": FloatDistribution(1e-4, 1e-2, log=True)}
    assert coordinates("eps", sp) == {"eps": FloatDistribution(1e-10, 1e-3, log=True)}


def test_betas_are_sampled_as_one_minus_beta_on_a_log_scale() -> None:
    sp = space(beta1={"low": 0.8, "high": 0.95})
    assert coordinates("beta1", sp) == {
        "one_minus_beta1": FloatDistribution(1 - 0.95, 1 - 0.8, log=True)
    }
    default = SpaceConfig()
    assert coordinates("beta2", default) == {
        "one_minus_beta2": FloatDistribution(1 - 0.9999, 1 - 0.9, log=True)
    }
    dist = coordinates("beta1", default)["one_minus_beta1"]
    assert isinstance(dist, FloatDistribution) and dist.log
    assert dist.low == pytest.approx(0.001) and dist.high == pytest.approx(0.5)


def test_weight_decay_with_and_without_the_zero_switch() -> None:
    log_range = FloatDistribution(1e-6, 1e-1, log=True)
    assert coordinates("weight_decay", SpaceConfig()) == {"weight_decay": log_range}
    assert coordinates("weight_decay", SpaceConfig(), with_zero=True) == {
        "weight_decay_on": CategoricalDistribution([False, True]),
        "weight_decay": log_range,
    }
    no_zero = space(weight_decay={"low": 1e-6, "high": 1e-1, "zero": False})
    assert coordinates("weight_decay", no_zero, with_zero=True) == {"weight_decay": log_range}


def test_choices_are_categorical() -> None:
    sp = space(decoupled_weight_decay=[False, True])
    assert coordinates("amsgrad", sp) == {"amsgrad": CategoricalDistribution([False, True])}
    assert coordinates("decoupled_weight_decay", sp) == {
        "decoupled_weight_decay": CategoricalDistribution([False, True])
    }


def test_suggest_stays_inside_the_ranges() -> None:
    sp = space(
        lr={"low": 1e-4, "high": 1e-2},
        beta1={"low": 0.8, "high": 0.95},
        decoupled_weight_decay=[False, True],
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    names = searched(sp)
    zero_seen = False
    for _ in range(40):
        trial = study.ask()
        values = suggest(trial, names, sp, with_zero=True)
        assert set(values) == set(names)
        assert 1e-4 <= values["lr"] <= 1e-2
        assert 0.8 <= values["beta1"] <= 0.95
        assert 0.9 <= values["beta2"] <= 0.9999
        assert 1e-10 <= values["eps"] <= 1e-3
        assert values["amsgrad"] in (False, True)
        assert values["decoupled_weight_decay"] in (False, True)
        # The trial records coordinates; betas as 1 - beta.
        assert values["beta1"] == 1.0 - trial.params["one_minus_beta1"]
        assert values["beta2"] == 1.0 - trial.params["one_minus_beta2"]
        assert values["lr"] == trial.params["lr"]
        if trial.params["weight_decay_on"]:
            assert 1e-6 <= values["weight_decay"] <= 1e-1
            assert values["weight_decay"] == trial.params["weight_decay"]
        else:
            zero_seen = True
            assert values["weight_decay"] == 0.0
            assert "weight_decay" not in trial.params
        AdamParams.from_dict(values)  # a complete, valid set for torch
        study.tell(trial, 1.0)
    assert zero_seen


def test_suggest_without_zero_switch_never_gives_zero() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        trial = study.ask()
        value = suggest(trial, ["weight_decay"], SpaceConfig())["weight_decay"]
        assert 1e-6 <= value <= 1e-1
        assert "weight_decay_on" not in trial.params
        study.tell(trial, 1.0)


def test_encode_round_trips_with_suggest() -> None:
    sp = space(decoupled_weight_decay=[False, True])
    names = searched(sp)
    coords = encode(TUNED, names, sp, with_zero=True)
    assert set(coords) == {
        "lr",
        "one_minus_beta1",
        "one_minus_beta2",
        "eps",
        "weight_decay_on",
        "weight_decay",
        "amsgrad",
        "decoupled_weight_decay",
    }
    assert coords["weight_decay_on"][0] is True
    values = suggest(
        optuna.trial.FixedTrial({k: v for k, (v, _) in coords.items()}), names, sp, with_zero=True
    )
    assert values == pytest.approx(
        {k: v for k, v in TUNED.as_dict().items() if k in names}, rel=1e-12
    )
    # Optuna accepts the encoded values as a trial of the same distributions.
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            params={k: v for k, (v, _) in coords.items()},
            distributions={k: d for k, (_, d) in coords.items()},
            value=0.5,
        )
    )
    assert study.trials[0].params["lr"] == TUNED.lr


def test_encode_the_defaults() -> None:
    coords = encode(ADAM_DEFAULTS, searched(SpaceConfig()), SpaceConfig(), with_zero=True)
    assert coords["lr"][0] == 1e-3
    assert math.isclose(coords["one_minus_beta1"][0], 0.1)
    assert coords["weight_decay_on"][0] is False
    assert "weight_decay" not in coords  # decay off: no log-scale value to record
    assert coords["amsgrad"][0] is False
    values = suggest(
        optuna.trial.FixedTrial({k: v for k, (v, _) in coords.items()}),
        searched(SpaceConfig()),
        SpaceConfig(),
        with_zero=True,
    )
    assert values["weight_decay"] == 0.0
    assert values["lr"] == 1e-3


def test_encode_skips_values_outside_the_space() -> None:
    sp = space(lr={"low": 1e-2, "high": 1e-1}, beta1={"low": 0.95, "high": 0.99}, amsgrad=[True])
    coords = encode(ADAM_DEFAULTS, ["lr", "beta1", "beta2", "eps", "weight_decay"], sp)
    assert "lr" not in coords  # 1e-3 is below [1e-2, 1e-1]
    assert "one_minus_beta1" not in coords  # 0.9 is below [0.95, 0.99]
    assert "weight_decay" not in coords  # 0 without the switch has no coordinate
    assert set(coords) == {"one_minus_beta2", "eps"}


def test_encode_skips_a_choice_outside_the_space() -> None:
    sp = space(amsgrad=[True])
    assert encode(ADAM_DEFAULTS, ["amsgrad"], sp) == {}  # False is not among the choices


def test_fixed_values_and_searched() -> None:
    sp = space(beta2=0.999, amsgrad=False, lr={"low": 1e-3, "high": 1e-3}, weight_decay=0)
    assert fixed_values(sp) == {
        "lr": 1e-3,
        "beta2": 0.999,
        "weight_decay": 0.0,
        "amsgrad": False,
        "decoupled_weight_decay": False,
    }
    assert searched(sp) == ["beta1", "eps"]
    assert fixed_values(SpaceConfig()) == {"decoupled_weight_decay": False}
    assert searched(SpaceConfig()) == ["lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad"]
    assert searched(space(schedule=ALL_SCHEDULES))[-1] == "schedule"


def test_the_schedule_stage_retunes_lr_within_3x_of_the_incumbent() -> None:
    sp = space(schedule=ALL_SCHEDULES)
    staged = coordinates("schedule", sp)
    assert staged == {
        "schedule": CategoricalDistribution(["none", "exponential", "cosine", "step"]),
        "schedule_end": FloatDistribution(1e-3, 0.5, log=True),
        "warmup": CategoricalDistribution([0.0, 0.1]),
        "lr_factor": FloatDistribution(1 / 3, 3.0, log=True),
    }
    assert "lr_factor" not in coordinates("schedule", sp, with_zero=True)  # joint: lr itself
    base = AdamParams(lr=0.01)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(30):
        trial = study.ask()
        values = suggest(trial, ["schedule"], sp, base=base)
        schedule = values["schedule"]
        kinds.add(schedule.kind)
        assert 0.01 / 3 <= values["lr"] <= 0.03
        assert values["lr"] == pytest.approx(0.01 * trial.params["lr_factor"])
        assert (schedule.kind == "none") == ("schedule_end" not in trial.params)
        assert schedule.warmup in (0.0, 0.1)
        study.tell(trial, 1.0)
    assert kinds == {"none", "exponential", "cosine", "step"}


def test_an_incumbent_schedule_encodes_at_its_own_lr() -> None:
    sp = space(schedule=ALL_SCHEDULES)
    coords = encode(AdamParams(schedule=Schedule("step", 0.1, 0.1)), ["schedule"], sp)
    assert {k: v for k, (v, _) in coords.items()} == {
        "schedule": "step",
        "schedule_end": 0.1,
        "warmup": 0.1,
        "lr_factor": 1.0,
    }
    values = suggest(
        optuna.trial.FixedTrial({k: v for k, (v, _) in coords.items()}),
        ["schedule"],
        sp,
        base=AdamParams(lr=0.02),
    )
    assert values == {"schedule": Schedule("step", 0.1, 0.1), "lr": 0.02}


def test_the_local_windows_move_each_value_within_3x_of_the_incumbent() -> None:
    sp = space()
    names = ["lr_factor", "beta1_factor", "beta2_factor", "weight_decay_factor"]
    assert {n: coordinates(n, sp) for n in names} == {
        n: {n: FloatDistribution(1 / 3, 3.0, log=True)} for n in names
    }
    base = AdamParams(lr=0.01, beta1=0.9, beta2=0.999, weight_decay=1e-3)
    values = suggest(
        optuna.trial.FixedTrial(dict(zip(names, [2.0, 0.5, 3.0, 1 / 3], strict=True))),
        names,
        sp,
        base=base,
    )
    # lr and weight decay times the factor; a beta with 1 - beta times it
    assert values == pytest.approx(
        {"lr": 0.02, "beta1": 0.95, "beta2": 0.997, "weight_decay": 1e-3 / 3}
    )
    # the incumbent itself is at factor 1 in every window
    assert {k: v for k, (v, _) in encode(base, names, sp).items()} == dict.fromkeys(names, 1.0)


def test_a_local_window_stays_in_the_users_range_and_leaves_decay_off_off() -> None:
    sp = space(beta1={"low": 0.5, "high": 0.95}, weight_decay={"low": 1e-6, "high": 1e-3})
    base = AdamParams(beta1=0.9, weight_decay=0.0)
    values = suggest(
        optuna.trial.FixedTrial({"beta1_factor": 1 / 3, "weight_decay_factor": 3.0}),
        ["beta1_factor", "weight_decay_factor"],
        sp,
        base=base,
    )
    assert values == {"beta1": 0.95}  # 1 - 0.1/3 = 0.967, clipped; no decay stays no decay
    values = suggest(
        optuna.trial.FixedTrial({"weight_decay_factor": 3.0}),
        ["weight_decay_factor"],
        sp,
        base=AdamParams(weight_decay=5e-4),
    )
    assert values == {"weight_decay": 1e-3}
