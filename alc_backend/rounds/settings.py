"""The one settings type of a round, and its three mappings: environment, command line, results.json.

:class:`RoundSettings` holds everything a round depends on besides its images: the method, the
budget, the acquisition's parameters, training, the automatic correctors and their audits.
The backend reads it from ``ALC_*`` environment variables (:meth:`RoundSettings.from_env`),
``alc-backend simulate`` from its flags (:func:`add_arguments`, :func:`from_arguments`), and
a simulation's ``results.json`` records it (:meth:`RoundSettings.to_json`, :meth:`RoundSettings.from_json`).
All three go through one table, :data:`SETTINGS`, so that a setting has one name per place.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from alc_backend.engine.acquisition import PIXBAL_NU, UniformOver
from alc_backend.engine.lcm import LCMConfig
from alc_backend.engine.plar import PLARConfig
from alc_backend.engine.query_cost import PAPER_COST_MODEL
from alc_backend.rounds.features import FEATURE_KINDS, FeatureKind
from alc_backend.rounds.methods import QueryMode, parse_method, with_query
from alc_backend.training.encoder_weights import IMAGENET, RANDOM_WEIGHTS
from alc_backend.training.trainer import SIZE_MULTIPLE

BudgetUnit = Literal["queries", "seconds"]
BUDGET_UNITS: tuple[BudgetUnit, ...] = cast("tuple[BudgetUnit, ...]", get_args(BudgetUnit))
MulticlassLoss = Literal["partial", "localised"]
MULTICLASS_LOSSES: tuple[MulticlassLoss, ...] = cast("tuple[MulticlassLoss, ...]", get_args(MulticlassLoss))
Trainer = Literal["supervised", "tsf"]
TRAINERS: tuple[Trainer, ...] = cast("tuple[Trainer, ...]", get_args(Trainer))


class SettingsError(ValueError):
    """A setting holds a value the round cannot use; the message names the variable or flag."""


@dataclass(frozen=True)
class AuditConfig:
    """Audits of the automatic corrections (see :mod:`alc_backend.engine.audit`).

    ``share``: the share of each round's queries that audits take at most. A corrector
    writes only the classes its audits showed right; ``share = 0`` turns audits off, and then
    every proposal is written unchecked, as in the papers (unsafe; kept for comparison).
    A class is trusted when the one-sided Wilson lower bound (``z`` standard deviations) of
    its audited precision reaches ``min_precision``: with ``z = 1`` and ``min_precision = 0.85``,
    six confirmations out of six, or 19 out of 20. Certifying a precision ``p`` against a bar
    ``m`` takes about ``z² p (1 - p) / (p - m)²`` audits: a corrector right 92 % of the time
    needs about 180 audits to clear a bar of 0.9, but about 15 to clear 0.85, while one right
    85 % of the time or less is never trusted. A class is refuted, after ``refute_after`` audits
    at least, when the upper bound with ``refute_z`` standard deviations falls below
    ``min_precision``: with ``refute_z = 2``, one confirmation out of three, or two out of
    five. The wider bound and the three audits keep a class whose changes are right nine
    times in ten from being refuted by an early wrong one: it happens about 3 % of the time
    after three audits, where refuting on a single wrong audit would happen 10 % of the time.

    Both decisions count the audits of one round's proposals only, and apply to those
    proposals: a corrector is a different one each round (a new model, new answers to learn
    from, fewer and harder errors left), so audits of earlier rounds describe a corrector that
    no longer exists. A refuted class's next proposals are not audited, so they cannot be
    written either; the round after, its proposals are audited again.
    """

    share: float = 0.2
    min_precision: float = 0.85
    z: float = 1.0
    refute_z: float = 2.0
    refute_after: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share must lie in [0, 1], got {self.share}")
        if not 0.0 < self.min_precision <= 1.0:
            raise ValueError(f"min_precision must lie in (0, 1], got {self.min_precision}")
        if self.z < 0 or self.refute_z < 0:
            raise ValueError(f"z and refute_z must be >= 0, got {self.z} and {self.refute_z}")
        if self.refute_after < 1:
            raise ValueError(f"refute_after must be >= 1, got {self.refute_after}")


QUERY_ENV = "ALC_QUERY"
"""The variable that sets the query kind of the method (``correction``, ``multiclass`` or ``auto``)."""


@dataclass(frozen=True)
class RoundSettings:
    """Everything a round depends on besides its images.

    ``method`` is ``[QUERY:]ACQUISITION[+CORRECTOR...]`` (:mod:`alc_backend.rounds.methods`);
    ``queries_per_round`` the budget B per round, audits included: queries, or with
    ``budget_unit == "seconds"`` annotator seconds, each query estimated by the user study's cost
    model from the number of classes the model predicts in its region; ``eps`` the
    expansion threshold of eq. 12 (0: an answer labels its whole superpixel); ``abc_uniform``
    and ``pixbal_nu`` parameterise ABC and PixBal. ``image_size`` is the training and
    inference side in px (a multiple of 16), ``epochs``, ``batch_size`` and ``lr`` those of each
    round's training, seeded with ``seed``; ``device`` None picks CUDA when present,
    ``encoder`` None the device's default encoder, and ``encoder_weights`` is where the encoder
    starts: ``"imagenet"`` (the default; offline for the CPU's default encoder, downloaded by
    segmentation-models-pytorch for others), the path of a local file of encoder weights, or
    ``"none"`` for random weights. ``lcm``, ``plar``, their ``*_features`` and ``error_decoder``
    configure the automatic correctors, ``audit`` their audits. ``multiclass_loss`` is how a
    region whose answer ticked several classes trains the model: ``localised`` (the default) by
    cross-entropy on the pixel labels its localisation wrote, ``partial`` by the multi-class
    paper's merged-positive and prototypical-pixel losses (eq. 10, weighted by
    ``partial_ce_weight`` λ_CE and ``partial_mp_weight`` λ_MP), which cost Model mIoU here
    (benchmarks/README.md, section 9). ``multiclass_accuracy`` is the share of a mixed
    region's pixels that the ``auto`` query choice expects localisation to get right.
    ``trainer`` is how each round's model learns: ``supervised`` (cross-entropy on the current
    labels) or ``tsf`` (Teacher-Student-Friend, :mod:`alc_backend.training.tsf`: the verified
    pixels supervise, the rest are pseudo-labelled), with the teacher's EMA decay
    ``tsf_ema_decay`` and the confidence ``tsf_threshold`` from which its pseudo-labels replace
    the current labels. TSF learns pixel labels: a mixed region trains it by its localised
    labels whatever ``multiclass_loss`` says.
    """

    method: str = "abc+lcm"
    queries_per_round: int = 50
    budget_unit: BudgetUnit = "queries"
    eps: float = 0.0
    abc_uniform: UniformOver = "present"
    pixbal_nu: float = PIXBAL_NU
    image_size: int = 128
    epochs: int = 20
    batch_size: int = 8
    lr: float = 0.03
    device: str | None = None
    encoder: str | None = None
    encoder_weights: str = IMAGENET
    seed: int = 0
    lcm: LCMConfig = field(default_factory=LCMConfig)
    lcm_features: FeatureKind = "both"
    plar: PLARConfig = field(default_factory=PLARConfig)
    plar_features: FeatureKind = "decoder"
    error_decoder: bool = False
    audit: AuditConfig = field(default_factory=AuditConfig)
    multiclass_accuracy: float = 0.9
    multiclass_loss: MulticlassLoss = "localised"
    partial_ce_weight: float = 16.0
    partial_mp_weight: float = 8.0
    trainer: Trainer = "supervised"
    tsf_ema_decay: float = 0.99
    tsf_threshold: float = 0.7

    def __post_init__(self) -> None:
        parse_method(self.method)
        if not 0.0 <= self.multiclass_accuracy <= 1.0:
            raise ValueError(f"multiclass_accuracy must lie in [0, 1], got {self.multiclass_accuracy}")
        if self.multiclass_loss not in MULTICLASS_LOSSES:
            raise ValueError(
                f"multiclass_loss must be one of {', '.join(MULTICLASS_LOSSES)}, got {self.multiclass_loss!r}"
            )
        if self.trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {', '.join(TRAINERS)}, got {self.trainer!r}")
        for name in ("tsf_ema_decay", "tsf_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("partial_ce_weight", "partial_mp_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.queries_per_round < 1:
            raise ValueError(f"queries_per_round must be >= 1, got {self.queries_per_round}")
        if self.budget_unit not in BUDGET_UNITS:
            raise ValueError(f"budget_unit must be one of {', '.join(BUDGET_UNITS)}, got {self.budget_unit!r}")
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must lie in [0, 1], got {self.eps}")
        if self.abc_uniform not in ("present", "all"):
            raise ValueError(f"abc_uniform must be 'present' or 'all', got {self.abc_uniform!r}")
        if self.pixbal_nu < 0:
            raise ValueError(f"pixbal_nu must be >= 0, got {self.pixbal_nu}")
        if self.image_size < SIZE_MULTIPLE or self.image_size % SIZE_MULTIPLE:
            raise ValueError(f"image_size must be a positive multiple of {SIZE_MULTIPLE}, got {self.image_size}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not isinstance(self.encoder_weights, str) or not self.encoder_weights.strip():
            raise ValueError(
                f"encoder_weights must be {IMAGENET}, {RANDOM_WEIGHTS} or a file, got {self.encoder_weights!r}"
            )
        for name in ("lcm_features", "plar_features"):
            if getattr(self, name) not in FEATURE_KINDS:
                raise ValueError(f"{name} must be one of {', '.join(FEATURE_KINDS)}, got {getattr(self, name)!r}")

    @property
    def correctors(self) -> tuple[str, ...]:
        """The automatic correctors the method names, in the order they run."""
        return parse_method(self.method).correctors

    @property
    def acquisition(self) -> str:
        return parse_method(self.method).acquisition

    @property
    def query(self) -> QueryMode:
        """How the annotator answers this method's queries: ``correction``, ``multiclass`` or ``auto``."""
        return parse_method(self.method).query

    @property
    def audits_per_round(self) -> int:
        """The most audits a round asks: ``audit.share`` of the budget, rounded to the nearest query
        (with a budget in seconds, counting each audit as a correction query on one class)."""
        if not self.correctors:
            return 0
        if self.budget_unit == "seconds":
            return round(self.audit.share * self.queries_per_round / PAPER_COST_MODEL.seconds("correction", 1))
        return round(self.audit.share * self.queries_per_round)

    def replace(self, **changes: Any) -> RoundSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, base: RoundSettings | None = None) -> RoundSettings:
        """Settings from the ``ALC_*`` variables of ``env`` (default ``os.environ``) over ``base``.

        ``ALC_QUERY`` (:data:`QUERY_ENV`) sets the query kind of ``ALC_METHOD``'s method.

        Raises:
            SettingsError: naming the variable, for a value that does not parse or is out of range.
        """
        env = os.environ if env is None else env
        settings = base or cls()
        for spec in SETTINGS:
            raw = env.get(spec.env)
            if raw is None or not raw.strip():
                continue
            settings = _set(settings, spec, spec.parse(raw.strip(), spec.env), spec.env)
        query = env.get(QUERY_ENV, "").strip()
        if query:
            try:
                settings = settings.replace(method=with_query(settings.method, query))
            except ValueError as error:
                raise SettingsError(f"{QUERY_ENV}={query}: {error}") from None
        return settings

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every setting, nested as the dataclasses are (``hidden`` as a list)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> RoundSettings:
        """Inverse of :meth:`to_json`; keys it does not know are an error, missing ones keep their defaults."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = set(record) - known
        if unknown:
            raise SettingsError(f"unknown round settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = dict(record)
        if "encoder_weights" in values and values["encoder_weights"] is None:  # recorded before "imagenet" existed
            values["encoder_weights"] = RANDOM_WEIGHTS
        nested = {"lcm": LCMConfig, "plar": PLARConfig, "audit": AuditConfig}
        try:
            for name, kind in nested.items():
                if name in values:
                    inner = dict(values[name])
                    if "hidden" in inner:
                        inner["hidden"] = tuple(inner["hidden"])
                    values[name] = kind(**inner)
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise SettingsError(f"round settings: {error}") from error


@dataclass(frozen=True)
class SettingSpec:
    """One setting: where it lives in :class:`RoundSettings` (``path``, e.g. ``"lcm.tau"``), its
    environment variable, its command-line flag (None: set otherwise, e.g. ``simulate
    --method``), how to read it and what it does."""

    path: str
    env: str
    flag: str | None
    kind: str
    help: str
    choices: tuple[str, ...] = ()

    def parse(self, raw: str, where: str) -> Any:
        """``raw`` as this setting's type; SettingsError naming ``where`` if it is not one."""
        try:
            if self.kind == "int":
                return int(raw)
            if self.kind == "float":
                return float(raw)
            if self.kind == "bool":
                return _parse_bool(raw)
        except ValueError:
            noun = {"int": "an integer", "float": "a number", "bool": "true or false"}[self.kind]
            raise SettingsError(f"{where} must be {noun}, got {raw!r}") from None
        if self.choices and raw not in self.choices:
            raise SettingsError(f"{where} must be one of {', '.join(self.choices)}, got {raw!r}")
        return raw or None if self.kind == "optional" else raw


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("method", "ALC_METHOD", None, "str", "[QUERY:]ACQUISITION[+CORRECTOR...]"),
    SettingSpec("queries_per_round", "ALC_QUERIES_PER_ROUND", "--budget", "int", "budget per round, audits included"),
    SettingSpec(
        "budget_unit",
        "ALC_BUDGET_UNIT",
        "--budget-unit",
        "str",
        "what the budget counts: queries, or annotator seconds",
        ("queries", "seconds"),
    ),
    SettingSpec("eps", "ALC_EPS", "--eps", "float", "expansion similarity threshold of eq. 12 (0: whole superpixel)"),
    SettingSpec("abc_uniform", "ALC_ABC_UNIFORM", "--abc-uniform", "str", "ABC's U: over classes", ("present", "all")),
    SettingSpec("pixbal_nu", "ALC_PIXBAL_NU", "--pixbal-nu", "float", "PixBal's nu (6 on Cityscapes)"),
    SettingSpec(
        "image_size", "ALC_IMAGE_SIZE", "--image-size", "int", "training and inference side, px, multiple of 16"
    ),
    SettingSpec("epochs", "ALC_EPOCHS", "--epochs", "int", "training epochs per round"),
    SettingSpec("batch_size", "ALC_BATCH_SIZE", "--batch-size", "int", "training batch size"),
    SettingSpec("lr", "ALC_LR", "--lr", "float", "initial SGD learning rate"),
    SettingSpec("device", "ALC_DEVICE", "--device", "optional", "cpu, cuda or cuda:N (default: cuda when present)"),
    SettingSpec("encoder", "ALC_ENCODER", "--encoder", "optional", "smp encoder (default: by device)"),
    SettingSpec(
        "encoder_weights",
        "ALC_ENCODER_WEIGHTS",
        "--encoder-weights",
        "str",
        "the encoder's initial weights: imagenet, a local file, or none (random)",
    ),
    SettingSpec("seed", "ALC_SEED", None, "int", "random seed of training, random acquisition, LCM and audits"),
    SettingSpec(
        "lcm_features", "ALC_LCM_FEATURES", "--lcm-features", "str", "LCM's superpixel features", FEATURE_KINDS
    ),
    SettingSpec("lcm.tau", "ALC_LCM_TAU", "--lcm-tau", "float", "LCM confidence threshold J1"),
    SettingSpec("lcm.alpha", "ALC_LCM_ALPHA", "--lcm-alpha", "float", "LCM tail share J2"),
    SettingSpec(
        "lcm.min_precision", "ALC_LCM_MIN_PRECISION", "--lcm-min-precision", "float", "LCM J4 on answers, 0 = off"
    ),
    SettingSpec(
        "lcm.model_confidence",
        "ALC_LCM_MODEL_CONFIDENCE",
        "--lcm-model-confidence",
        "float",
        "LCM J5: the model's least mean probability of the class, 0 = off",
    ),
    SettingSpec("plar_features", "ALC_PLAR_FEATURES", "--plar-features", "str", "PLAR's pixel features", FEATURE_KINDS),
    SettingSpec("plar.threshold", "ALC_PLAR_THRESHOLD", "--plar-threshold", "float", "PLAR error map: f(y; x) below"),
    SettingSpec("plar.shrinkage", "ALC_PLAR_SHRINKAGE", "--plar-shrinkage", "float", "PLAR covariance shrinkage"),
    SettingSpec(
        "plar.min_precision",
        "ALC_PLAR_MIN_PRECISION",
        "--plar-min-precision",
        "float",
        "PLAR's held-out check on answered pixels, 0 = off",
    ),
    SettingSpec(
        "plar.require_model_agreement",
        "ALC_PLAR_MODEL_AGREEMENT",
        "--plar-model-agreement",
        "bool",
        "PLAR: the model's top class must agree",
    ),
    SettingSpec("error_decoder", "ALC_ERROR_DECODER", "--error-decoder", "bool", "OR PLAR's error map with a decoder"),
    SettingSpec(
        "multiclass_accuracy",
        "ALC_MULTICLASS_ACCURACY",
        "--multiclass-accuracy",
        "float",
        "auto: the expected share of a mixed region's pixels localisation gets right",
    ),
    SettingSpec(
        "multiclass_loss",
        "ALC_MULTICLASS_LOSS",
        "--multiclass-loss",
        "str",
        "how regions ticked with several classes train the model",
        ("partial", "localised"),
    ),
    SettingSpec("partial_ce_weight", "ALC_PARTIAL_CE_WEIGHT", "--partial-ce-weight", "float", "eq. 10's lambda_CE"),
    SettingSpec("partial_mp_weight", "ALC_PARTIAL_MP_WEIGHT", "--partial-mp-weight", "float", "eq. 10's lambda_MP"),
    SettingSpec(
        "trainer",
        "ALC_TRAINER",
        "--trainer",
        "str",
        "how the round model learns: supervised, or tsf (Teacher-Student-Friend)",
        TRAINERS,
    ),
    SettingSpec("tsf_ema_decay", "ALC_TSF_EMA_DECAY", "--tsf-ema-decay", "float", "TSF: the teacher's EMA decay"),
    SettingSpec(
        "tsf_threshold",
        "ALC_TSF_THRESHOLD",
        "--tsf-threshold",
        "float",
        "TSF: the teacher's least confidence for its pseudo-label",
    ),
    SettingSpec("audit.share", "ALC_AUDIT_SHARE", "--audit-share", "float", "share of each round's queries for audits"),
    SettingSpec(
        "audit.min_precision",
        "ALC_AUDIT_MIN_PRECISION",
        "--audit-min-precision",
        "float",
        "audited precision a class needs (lower bound)",
    ),
    SettingSpec("audit.z", "ALC_AUDIT_Z", "--audit-z", "float", "standard deviations of the bound that trusts"),
    SettingSpec(
        "audit.refute_z",
        "ALC_AUDIT_REFUTE_Z",
        "--audit-refute-z",
        "float",
        "standard deviations of the bound that refutes",
    ),
)
"""Every setting with a name outside the code, in the order ``--help`` lists them."""


def add_arguments(parser: argparse.ArgumentParser, base: RoundSettings | None = None) -> None:
    """Add a flag for every setting of :data:`SETTINGS` that has one; defaults shown from ``base``."""
    base = base or RoundSettings()
    for spec in SETTINGS:
        if spec.flag is None:
            continue
        default = _get(base, spec.path)
        text = f"{spec.help} (default {default})"
        dest = _dest(spec)
        if spec.kind == "bool":
            parser.add_argument(spec.flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        convert: Callable[[str], Any] = _argument_type(spec)
        parser.add_argument(spec.flag, dest=dest, type=convert, default=None, help=text, choices=spec.choices or None)


def from_arguments(args: argparse.Namespace, base: RoundSettings | None = None) -> RoundSettings:
    """The settings of ``base`` with every flag of :func:`add_arguments` that was given.

    Raises:
        SettingsError: naming the flag, for a value out of range.
    """
    settings = base or RoundSettings()
    for spec in SETTINGS:
        if spec.flag is None:
            continue
        value = getattr(args, _dest(spec), None)
        if value is not None:
            settings = _set(settings, spec, value, spec.flag)
    return settings


def json_ready(value: Any) -> Any:
    """``value`` with tuples turned into lists, recursively (dicts and lists kept)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def _dest(spec: SettingSpec) -> str:
    return "round_" + spec.path.replace(".", "_")


def _argument_type(spec: SettingSpec) -> Callable[[str], Any]:
    def convert(raw: str) -> Any:
        try:
            return spec.parse(raw, spec.flag or spec.env)
        except SettingsError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def _get(settings: Any, path: str) -> Any:
    for part in path.split("."):
        settings = getattr(settings, part)
    return settings


def _set(settings: RoundSettings, spec: SettingSpec, value: Any, where: str) -> RoundSettings:
    """``settings`` with ``spec.path`` set to ``value``; SettingsError naming ``where`` if it is out of range."""
    head, _, tail = spec.path.partition(".")
    try:
        if tail:
            return dataclasses.replace(
                settings, **{head: dataclasses.replace(getattr(settings, head), **{tail: value})}
            )
        return dataclasses.replace(settings, **{head: value})
    except ValueError as error:
        raise SettingsError(f"{where}: {error}") from None


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
