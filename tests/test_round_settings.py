"""The one settings type of a round and its three mappings: environment, command line, results.json."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from alc_backend.rounds.settings import (
    SETTINGS,
    AuditConfig,
    RoundSettings,
    SettingsError,
    add_arguments,
    from_arguments,
)

# one value per setting, none of them a default
VALUES = {
    "method": ("sim+lcm+plar", "sim+lcm+plar"),
    "queries_per_round": ("12", 12),
    "eps": ("0.5", 0.5),
    "abc_uniform": ("all", "all"),
    "pixbal_nu": ("6", 6.0),
    "image_size": ("64", 64),
    "epochs": ("3", 3),
    "batch_size": ("4", 4),
    "lr": ("0.01", 0.01),
    "device": ("cpu", "cpu"),
    "encoder": ("resnet34", "resnet34"),
    "encoder_weights": ("/w.safetensors", "/w.safetensors"),
    "seed": ("7", 7),
    "lcm_features": ("softmax", "softmax"),
    "lcm.tau": ("0.95", 0.95),
    "lcm.alpha": ("0.25", 0.25),
    "lcm.min_precision": ("0.7", 0.7),
    "lcm.model_confidence": ("0.6", 0.6),
    "plar_features": ("both", "both"),
    "plar.threshold": ("0.6", 0.6),
    "plar.shrinkage": ("0.2", 0.2),
    "plar.min_precision": ("0.85", 0.85),
    "plar.require_model_agreement": ("off", False),
    "error_decoder": ("yes", True),
    "audit.share": ("0.3", 0.3),
    "audit.min_precision": ("0.8", 0.8),
    "audit.z": ("1.5", 1.5),
    "audit.refute_z": ("2.5", 2.5),
    "multiclass_loss": ("partial", "partial"),
    "budget_unit": ("seconds", "seconds"),
    "multiclass_accuracy": ("0.75", 0.75),
    "partial_ce_weight": ("4", 4.0),
    "partial_mp_weight": ("2.5", 2.5),
    "trainer": ("tsf", "tsf"),
    "tsf_ema_decay": ("0.95", 0.95),
    "tsf_threshold": ("0.8", 0.8),
}


def value_at(settings: object, path: str) -> object:
    for part in path.split("."):
        settings = getattr(settings, part)
    return settings


def test_every_setting_is_in_the_table_once_with_its_own_variable_and_flag() -> None:
    paths = [spec.path for spec in SETTINGS]
    assert sorted(paths) == sorted(VALUES)
    assert len({spec.env for spec in SETTINGS}) == len(SETTINGS)
    flags = [spec.flag for spec in SETTINGS if spec.flag is not None]
    assert len(set(flags)) == len(flags)
    assert {spec.path for spec in SETTINGS if spec.flag is None} == {"method", "seed"}  # simulate's --method/--seeds


def test_the_environment_sets_every_setting() -> None:
    env = {spec.env: VALUES[spec.path][0] for spec in SETTINGS}
    settings = RoundSettings.from_env(env)
    for spec in SETTINGS:
        assert value_at(settings, spec.path) == VALUES[spec.path][1], spec.env
    assert RoundSettings.from_env({"ALC_EPS": "  "}) == RoundSettings(), "blank variables keep the defaults"


def test_flags_set_every_setting_that_has_one() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv: list[str] = []
    for spec in SETTINGS:
        if spec.flag is None:
            continue
        if spec.kind == "bool":
            value = VALUES[spec.path][1]
            argv.append(spec.flag if value else "--no-" + spec.flag.removeprefix("--"))
        else:
            argv += [spec.flag, VALUES[spec.path][0]]
    settings = from_arguments(parser.parse_args(argv))
    for spec in SETTINGS:
        expected = VALUES[spec.path][1] if spec.flag is not None else value_at(RoundSettings(), spec.path)
        assert value_at(settings, spec.path) == expected, spec.flag
    assert from_arguments(parser.parse_args([])) == RoundSettings(), "no flag keeps the defaults"


def test_results_json_round_trips() -> None:
    settings = RoundSettings.from_env({spec.env: VALUES[spec.path][0] for spec in SETTINGS})
    record = json.loads(json.dumps(settings.to_json()))
    assert record["lcm"]["hidden"] == [256, 128, 64]
    assert record["audit"] == {
        "share": 0.3,
        "min_precision": 0.8,
        "z": 1.5,
        "refute_z": 2.5,
        "refute_after": 3,
    }
    assert RoundSettings.from_json(record) == settings
    assert RoundSettings.from_json({}) == RoundSettings()
    assert RoundSettings.from_json({"encoder_weights": None}).encoder_weights == "none"  # random, as it meant
    with pytest.raises(
        SettingsError, match=r"^round settings: encoder_weights must be imagenet, none or a file, got ''$"
    ):
        RoundSettings.from_json({"encoder_weights": ""})
    with pytest.raises(SettingsError, match=r"^unknown round settings: budget$"):
        RoundSettings.from_json({"budget": 5})
    with pytest.raises(SettingsError, match=re.escape("round settings: share must lie in [0, 1], got 2")):
        RoundSettings.from_json({"audit": {"share": 2}})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALC_EPS": "2"}, "ALC_EPS: eps must lie in [0, 1], got 2.0"),
        ({"ALC_QUERIES_PER_ROUND": "0"}, "ALC_QUERIES_PER_ROUND: queries_per_round must be >= 1, got 0"),
        ({"ALC_QUERIES_PER_ROUND": "many"}, "ALC_QUERIES_PER_ROUND must be an integer, got 'many'"),
        ({"ALC_LR": "fast"}, "ALC_LR must be a number, got 'fast'"),
        ({"ALC_ERROR_DECODER": "maybe"}, "ALC_ERROR_DECODER must be true or false, got 'maybe'"),
        ({"ALC_LCM_FEATURES": "pixels"}, "ALC_LCM_FEATURES must be one of softmax, decoder, both, got 'pixels'"),
        ({"ALC_LCM_TAU": "1.5"}, "ALC_LCM_TAU: tau must lie in [0, 1], got 1.5"),
        ({"ALC_AUDIT_SHARE": "-0.1"}, "ALC_AUDIT_SHARE: share must lie in [0, 1], got -0.1"),
        ({"ALC_METHOD": "abc+xyz"}, "ALC_METHOD: method 'abc+xyz': unknown auto-corrector 'xyz' (lcm, plar, expand)"),
        ({"ALC_TRAINER": "mean-teacher"}, "ALC_TRAINER must be one of supervised, tsf, got 'mean-teacher'"),
        ({"ALC_TSF_EMA_DECAY": "1.5"}, "ALC_TSF_EMA_DECAY: tsf_ema_decay must lie in [0, 1], got 1.5"),
    ],
)
def test_a_bad_variable_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        RoundSettings.from_env(env)
    assert str(caught.value) == message


def test_a_bad_flag_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="simulate")
    add_arguments(parser)
    with pytest.raises(SettingsError, match=re.escape("--budget: queries_per_round must be >= 1, got 0")):
        from_arguments(parser.parse_args(["--budget", "0"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--audit-share", "some"])
    assert "--audit-share must be a number, got 'some'" in capsys.readouterr().err


def test_audits_per_round_rounds_the_share_of_the_budget() -> None:
    assert RoundSettings(method="abc+lcm", queries_per_round=30, audit=AuditConfig(share=0.25)).audits_per_round == 8
    assert RoundSettings(method="abc+lcm", queries_per_round=30, audit=AuditConfig(share=0.0)).audits_per_round == 0
