"""Backend settings, read from the environment with the conventions of ``label-studio-ml``.

``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY`` (legacy token or personal access token),
``MODEL_DIR`` and ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` keep their usual meaning; the
``ALC_*`` variables set what this backend adds. The settings of the rounds themselves (method,
budget, training, correctors, audits) are a :class:`~alc_backend.rounds.settings.RoundSettings`,
read from the environment in one place, :meth:`~alc_backend.rounds.settings.RoundSettings.from_env`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alc_backend.preannotation.sam_superpixels import SamGeneratorSettings
from alc_backend.preannotation.superpixel_sources import SAM_SOURCES, SuperpixelConfig, default_superpixel_source
from alc_backend.rounds.methods import QueryMode, with_query
from alc_backend.rounds.settings import QUERY_ENV, RoundSettings, SettingsError
from alc_backend.service.downloads import SourceRules

__all__ = ["BackendSettings", "SettingsError", "default_query_mode"]


def default_query_mode(superpixels: str) -> QueryMode:
    """The query kind the backend asks when ``ALC_QUERY`` and ``ALC_METHOD`` leave it open.

    ``multiclass`` for SLIC and Felzenszwalb, whose regions often straddle two objects, so that
    a truthful answer ticks every class present instead of painting one over the region;
    ``correction`` for SAM and MobileSAM, whose masks follow objects, so that one class per
    region is the rule and the cheaper question is worth more per second. Measured in the
    served loop (benchmarks section 10): multi-class 54.1 against correction 49.9 Data mIoU on
    SLIC, correction 59.7 against multi-class 54.9 on MobileSAM; ``auto`` lay between both times.
    """
    return "correction" if superpixels in SAM_SOURCES else "multiclass"


def _default_round() -> RoundSettings:
    """The round settings of the default superpixel source (SLIC): the default method, multi-class."""
    settings = RoundSettings()
    return settings.replace(method=with_query(settings.method, default_query_mode("slic")))


@dataclass(frozen=True)
class BackendSettings:
    """Everything the server and its jobs depend on besides the requests they get.

    ``label_studio_url``/``api_key`` may be empty: the backend then falls back to the
    ``hostname``/``access_token`` that Label Studio sends with ``/setup``.
    ``backend_url`` is this backend's URL as Label Studio reaches it (for webhooks and for
    connecting query projects); empty means "the URL the request came in on". ``redis_url``
    (``REDIS_URL``) switches the jobs to rq workers on the queue ``queue`` (``ALC_QUEUE``); a
    failed rq job is retried once after ``job_retry_delay_s`` (``ALC_JOB_RETRY_DELAY_S``; 0: at
    once, without waiting for rq's scheduler). A
    preparation of more new tasks than ``prepare_chunk`` is split into parts of that many
    (``ALC_PREPARE_CHUNK``), which workers take in parallel.
    ``superpixels`` (``ALC_SUPERPIXELS``: slic, felzenszwalb, sam or mobilesam; unset, SAM's
    masks when ``SAM_CHECKPOINT`` is set and SLIC otherwise) and the
    ``sam_*`` fields make :meth:`superpixel_config`, which runs on ``round.device``;
    ``sam_min_area`` 0 means the default smallest superpixel. The rounds ask the query kind of
    :func:`default_query_mode` for the superpixel source unless ``ALC_QUERY`` or a prefix of
    ``ALC_METHOD`` names one.
    ``pseudo_detector`` (``ALC_PSEUDO_DETECTOR``, ``package.module:factory``) names a
    text-prompted detector that labels the tasks without a pseudo mask or foreign prediction,
    keeping objects that score at least ``pseudo_box_threshold``. ``round`` holds the settings
    of the rounds themselves.

    What tasks may name, and how much (:meth:`source_rules`): ``local_roots``
    (``ALC_LOCAL_ROOTS``, folders separated by ``os.pathsep``), ``download_hosts``
    (``ALC_DOWNLOAD_HOSTS``, comma-separated host names, addresses and networks),
    ``max_download_mb`` (``ALC_MAX_DOWNLOAD_MB``), ``download_timeout_s``
    (``ALC_DOWNLOAD_TIMEOUT_S``) and ``max_image_pixels`` (``ALC_MAX_IMAGE_PIXELS``).
    ``max_request_mb`` (``ALC_MAX_REQUEST_MB``) bounds a request body.
    ``cost_min_answers`` (``ALC_COST_MIN_ANSWERS``) is how many timed answers of a kind and
    class count it takes before their median seconds replace the user study's table.
    """

    model_dir: Path = Path("alc-workspace")
    label_studio_url: str = ""
    api_key: str = ""
    basic_auth_user: str = ""
    basic_auth_pass: str = ""
    backend_url: str = ""
    redis_url: str = ""
    queue: str = "alc"
    job_retry_delay_s: int = 30
    prepare_chunk: int = 200
    superpixels: str = "slic"
    num_superpixels: int = 60
    sam_checkpoint: str = ""
    sam_model_type: str = ""
    sam_points_per_side: int = 16
    sam_pred_iou_thresh: float = 0.88
    sam_stability_score_thresh: float = 0.95
    sam_min_area: int = 0
    pseudo_mask_key: str = "pseudo_mask"
    pseudo_detector: str = ""
    pseudo_box_threshold: float = 0.2
    local_roots: tuple[Path, ...] = ()
    download_hosts: tuple[str, ...] = ()
    max_download_mb: int = 64
    download_timeout_s: float = 60.0
    max_image_pixels: int = 50_000_000
    max_request_mb: int = 64
    cost_min_answers: int = 20
    round: RoundSettings = dataclasses.field(default_factory=_default_round)

    def __post_init__(self) -> None:
        if self.num_superpixels < 2:
            raise SettingsError(f"ALC_NUM_SUPERPIXELS must be >= 2, got {self.num_superpixels}")
        try:
            self.superpixel_config()
        except ValueError as error:
            raise SettingsError(f"ALC_SUPERPIXELS={self.superpixels}: {error}") from error
        if self.job_retry_delay_s < 0:
            raise SettingsError(f"ALC_JOB_RETRY_DELAY_S must be >= 0, got {self.job_retry_delay_s}")
        if self.prepare_chunk < 1:
            raise SettingsError(f"ALC_PREPARE_CHUNK must be >= 1, got {self.prepare_chunk}")
        if self.pseudo_detector and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.pseudo_detector):
            raise SettingsError(f"ALC_PSEUDO_DETECTOR must be package.module:factory, got {self.pseudo_detector!r}")
        if not 0.0 <= self.pseudo_box_threshold <= 1.0:
            raise SettingsError(f"ALC_PSEUDO_BOX_THRESHOLD must be in [0, 1], got {self.pseudo_box_threshold}")
        for name, value in (
            ("ALC_MAX_DOWNLOAD_MB", self.max_download_mb),
            ("ALC_DOWNLOAD_TIMEOUT_S", self.download_timeout_s),
            ("ALC_MAX_IMAGE_PIXELS", self.max_image_pixels),
            ("ALC_MAX_REQUEST_MB", self.max_request_mb),
            ("ALC_COST_MIN_ANSWERS", self.cost_min_answers),
        ):
            if value <= 0:
                raise SettingsError(f"{name} must be > 0, got {value}")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise SettingsError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")

    def login(self) -> tuple[str, str] | None:
        """``(BASIC_AUTH_USER, BASIC_AUTH_PASS)``, or None when the backend needs no login."""
        return (self.basic_auth_user, self.basic_auth_pass) if self.basic_auth_user else None

    def source_rules(self) -> SourceRules:
        """Where the files that tasks name may come from, and how large they may be."""
        return SourceRules(
            local_roots=self.local_roots,
            hosts=self.download_hosts,
            max_bytes=self.max_download_mb * 2**20,
            deadline_s=self.download_timeout_s,
        )

    def superpixel_config(self) -> SuperpixelConfig:
        """The superpixel source that prepares new image tasks."""
        return SuperpixelConfig(
            source=self.superpixels,
            num_superpixels=self.num_superpixels,
            sam_checkpoint=Path(self.sam_checkpoint) if self.sam_checkpoint else None,
            sam_model_type=self.sam_model_type or None,
            sam=SamGeneratorSettings(
                points_per_side=self.sam_points_per_side,
                pred_iou_thresh=self.sam_pred_iou_thresh,
                stability_score_thresh=self.sam_stability_score_thresh,
            ),
            min_area=self.sam_min_area or None,
            device=self.round.device,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackendSettings:
        """Settings from ``env`` (default ``os.environ``); unset variables keep the defaults."""
        env = os.environ if env is None else env
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(name, default).strip()

        def number(name: str, default: int) -> int:
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                return int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be an integer, got {raw!r}") from None

        def real(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                return float(raw)
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None

        superpixels = text(
            "ALC_SUPERPIXELS", default_superpixel_source(text("SAM_CHECKPOINT", ""), text("SAM_MODEL_TYPE", ""))
        )
        round_settings = RoundSettings.from_env(env)
        if not text(QUERY_ENV, "") and ":" not in text("ALC_METHOD", ""):
            query = default_query_mode(superpixels)
            round_settings = round_settings.replace(method=with_query(round_settings.method, query))
        return cls(
            model_dir=Path(text("MODEL_DIR", str(defaults.model_dir))),
            label_studio_url=text("LABEL_STUDIO_URL", "").rstrip("/"),
            api_key=text("LABEL_STUDIO_API_KEY", ""),
            basic_auth_user=text("BASIC_AUTH_USER", ""),
            basic_auth_pass=text("BASIC_AUTH_PASS", ""),
            backend_url=text("ALC_BACKEND_URL", "").rstrip("/"),
            redis_url=text("REDIS_URL", ""),
            queue=text("ALC_QUEUE", defaults.queue),
            job_retry_delay_s=number("ALC_JOB_RETRY_DELAY_S", defaults.job_retry_delay_s),
            prepare_chunk=number("ALC_PREPARE_CHUNK", defaults.prepare_chunk),
            superpixels=superpixels,
            num_superpixels=number("ALC_NUM_SUPERPIXELS", defaults.num_superpixels),
            sam_checkpoint=text("SAM_CHECKPOINT", ""),
            sam_model_type=text("SAM_MODEL_TYPE", ""),
            sam_points_per_side=number("ALC_SAM_POINTS_PER_SIDE", defaults.sam_points_per_side),
            sam_pred_iou_thresh=real("ALC_SAM_PRED_IOU_THRESH", defaults.sam_pred_iou_thresh),
            sam_stability_score_thresh=real("ALC_SAM_STABILITY_SCORE_THRESH", defaults.sam_stability_score_thresh),
            sam_min_area=number("ALC_SAM_MIN_AREA", defaults.sam_min_area),
            pseudo_mask_key=text("ALC_PSEUDO_MASK_KEY", defaults.pseudo_mask_key),
            pseudo_detector=text("ALC_PSEUDO_DETECTOR", ""),
            pseudo_box_threshold=real("ALC_PSEUDO_BOX_THRESHOLD", defaults.pseudo_box_threshold),
            local_roots=tuple(Path(item) for item in text("ALC_LOCAL_ROOTS", "").split(os.pathsep) if item.strip()),
            download_hosts=tuple(item.strip() for item in text("ALC_DOWNLOAD_HOSTS", "").split(",") if item.strip()),
            max_download_mb=number("ALC_MAX_DOWNLOAD_MB", defaults.max_download_mb),
            download_timeout_s=real("ALC_DOWNLOAD_TIMEOUT_S", defaults.download_timeout_s),
            max_image_pixels=number("ALC_MAX_IMAGE_PIXELS", defaults.max_image_pixels),
            max_request_mb=number("ALC_MAX_REQUEST_MB", defaults.max_request_mb),
            cost_min_answers=number("ALC_COST_MIN_ANSWERS", defaults.cost_min_answers),
            round=round_settings,
        )
