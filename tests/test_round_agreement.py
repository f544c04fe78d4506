"""The simulation and the backend run one round core: same data, method, seed and answers, same result.

The same synthetic set goes through ``alc-backend simulate``'s runner and through the backend's
round steps over a workspace on disk (no Label Studio: the answers are written to the workspace
as its webhooks would). After two rounds, the queries, the automatic corrections and the labels
of every image must be identical. The correctors are loosened so that both propose plenty within
two small rounds: with audits (their bar lowered to a share of 0.05), round 2 audits what round
1 held back and writes the rest of it for the classes the audits confirmed; without audits, both
write every proposal at once. With multi-class queries (on SLIC superpixels, so that regions
straddle objects), the regions ticked with several classes are localised alike by both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from workspace_harness import FIRST_TASK, answer_in_workspace, workspace_of

from alc_backend.data.dataset import SegmentationDataset, read_label_png
from alc_backend.data.synthetic import make_synthetic
from alc_backend.engine.corrections import AutoCorrection
from alc_backend.engine.lcm import LCMConfig
from alc_backend.engine.multiclass import multiclass_oracle_answer
from alc_backend.engine.oracle import faithful_answer
from alc_backend.engine.plar import PLARConfig
from alc_backend.rounds.settings import AuditConfig, RoundSettings
from alc_backend.service.rounds import (
    choose_round_queries,
    end_round,
    localised_key,
    record_queries,
    round_model,
)
from alc_backend.service.workspace import QueryRecord, Workspace
from alc_backend.simulation.runner import Simulation, SimulationConfig
from alc_backend.simulation.state import SuperpixelSource

pytestmark = pytest.mark.slow

AUDITED = RoundSettings(
    method="abc+lcm+plar",
    queries_per_round=12,
    eps=0.5,
    image_size=48,
    epochs=2,
    batch_size=4,
    encoder="resnet18",
    encoder_weights="none",
    device="cpu",
    seed=3,
    lcm=LCMConfig(tau=0.5, model_confidence=0.0, epochs=60),
    plar=PLARConfig(threshold=0.9, require_model_agreement=False, min_precision=0.0, protect_unverified=False),
    audit=AuditConfig(share=0.5, min_precision=0.05, z=0.0),
)
UNAUDITED = AUDITED.replace(audit=AuditConfig(share=0.0))
MULTICLASS = UNAUDITED.replace(method="multiclass:abc+lcm+plar")
NUM_SLIC = 12
ROUNDS = 2


def simulate(dataset: SegmentationDataset, settings: RoundSettings, out: Path) -> Path:
    config = SimulationConfig(
        methods=(settings.method,),
        rounds=ROUNDS,
        seeds=(settings.seed,),
        round=settings,
        compute_superpixels=computes_superpixels(settings),
        num_superpixels=NUM_SLIC,
    )
    Simulation(dataset, config, out, progress=False).run()
    return out / "work" / f"seed{settings.seed}" / settings.method


def computes_superpixels(settings: RoundSettings) -> bool:
    """Multi-class queries run on SLIC superpixels, which straddle the synthetic objects (its own do not)."""
    return settings.query != "correction"


def run_backend_rounds(dataset: SegmentationDataset, settings: RoundSettings, model_dir: Path) -> Workspace:
    """The backend's round steps in the order ProjectWork takes them, the annotator answering as the simulation's."""
    source = SuperpixelSource(dataset, model_dir / "slic", "slic", NUM_SLIC, compute=True)
    workspace, tasks = workspace_of(dataset, model_dir, source if computes_superpixels(settings) else None)
    names = {task: record.name for task, record in workspace.tasks().items()}
    next_query_task = 1000
    for round_index in range(1, ROUNDS + 1):
        model = round_model(workspace, tasks, round_index - 1, settings)
        assert model is not None
        choice = choose_round_queries(workspace, model, tasks, settings, round_index)
        new = {
            next_query_task + rank: QueryRecord.of(next_query_task + rank, query, round_index, rank)
            for rank, query in enumerate(choice.queries)
        }
        next_query_task += len(new)
        record_queries(workspace, new)
        given = {}
        for task, record in new.items():
            truth = dataset.mask(names[record.image_task])
            superpixels = workspace.superpixels(record.image_task)
            if record.kind == "multiclass":
                given[task] = multiclass_oracle_answer(truth, superpixels, record.superpixel)
                continue
            answer = faithful_answer(
                truth, record.query(superpixels).region_mask(truth.shape), (record.row, record.col)
            )
            given[task] = () if answer == 255 else (answer,)
        answer_in_workspace(workspace, new, given, settings)
        end_round(workspace, tasks, settings, round_index)
    return workspace


def comparable_query(record: dict, names: dict[str, str]) -> tuple:
    return (
        record["round"],
        names.get(record["image"], record["image"]),
        record["superpixel"],
        record["row"],
        record["col"],
        record["proposed"],
        record["label_before"],
        tuple(map(tuple, record["region"])),
        record["kind"],
        record.get("corrector"),
        record.get("audited_round"),
    )


def comparable_correction(record: AutoCorrection, names: dict[str, str]) -> tuple:
    return (
        record.corrector,
        record.round,
        names.get(record.image, record.image),
        record.superpixel,
        record.old_class,
        record.new_class,
        round(record.confidence, 5),
        record.runs,
    )


@pytest.mark.parametrize("settings", [AUDITED, UNAUDITED, MULTICLASS], ids=["audited", "unaudited", "multiclass"])
def test_the_simulation_and_the_backend_ask_correct_and_label_alike(tmp_path: Path, settings: RoundSettings) -> None:
    dataset = make_synthetic(tmp_path / "data", 10, 3, size=48, val_fraction=0.0, progress=False)
    run = simulate(dataset, settings, tmp_path / "simulation")
    workspace = run_backend_rounds(dataset, settings, tmp_path / "workspace")
    names = {str(FIRST_TASK + i): name for i, name in enumerate(dataset.train_names)}

    simulated_queries = [json.loads(line) for line in (run / "queries.jsonl").read_text().splitlines()]
    backend_queries = sorted(workspace.queries().values(), key=lambda q: (q.round, q.rank))
    assert len(simulated_queries) == ROUNDS * settings.queries_per_round
    backend = [
        comparable_query(
            {**record.query(workspace.superpixels(record.image_task)).to_json(), "round": record.round}, names
        )
        for record in backend_queries
    ]
    assert [comparable_query(record, names) for record in simulated_queries] == backend
    kinds = [record["kind"] for record in simulated_queries]
    assert kinds.count("audit") == settings.audits_per_round, "round 2 audits round 1's proposals"
    for record in simulated_queries:
        width = dataset.mask(record["image"]).shape[1]
        pixel = record["row"] * width + record["col"]
        assert any(start <= pixel < start + length for start, length in record["region"]), (
            "the pixel shown is asked about"
        )

    simulated_journal = [
        AutoCorrection.from_json(json.loads(line)) for line in (run / "auto_corrections.jsonl").read_text().splitlines()
    ]
    backend_journal = workspace.corrections()
    assert [comparable_correction(r, names) for r in simulated_journal] == [
        comparable_correction(r, names) for r in backend_journal
    ]
    notes = workspace.round_notes()
    assert set(notes) == {"1", "2"}
    if settings.audit.share > 0:
        assert notes["1"]["lcm"]["written"] == notes["1"]["plar"]["written"] == 0, "round 1 has no audits"
        assert notes["1"]["lcm"]["held_back"] > 0 and notes["1"]["plar"]["held_back"] > 0
        audited = [record["corrector"] for record in simulated_queries if record["kind"] == "audit"]
        assert sorted(audited) == ["lcm"] * 3 + ["plar"] * 3, "6 audits shared evenly"
        confirmations = [
            (record["corrector"], record["proposed"])
            for record in simulated_queries
            if record["kind"] == "audit" and record["answer"] == record["proposed"]
        ]
        assert all(r.round == 2 and (r.corrector, r.new_class) in confirmations for r in simulated_journal), (
            "round 2 writes only the classes its audits confirmed"
        )
        for corrector in ("lcm", "plar"):
            assert notes["2"][corrector]["audited"] == 3
            assert notes["2"][corrector]["confirmed"] == sum(c == corrector for c, _ in confirmations)
    elif settings.query == "correction":
        assert {r.corrector for r in simulated_journal} == {"lcm", "plar"}, "both correctors wrote"
    else:
        mixed = [record for record in simulated_queries if len(record["classes"]) > 1]
        assert mixed, "some regions were answered with several classes"
        answers = {record.query_task: record for record in workspace.answers().values()}
        backend_mixed = [query for query in backend_queries if query.task in answers and answers[query.task].mixed]
        assert len(backend_mixed) == len(mixed)
        for query in backend_mixed:
            assert workspace.localised(query.task, localised_key(answers[query.task].classes)) is not None

    for task, name in names.items():
        np.testing.assert_array_equal(workspace.labels(int(task)), read_label_png(run / "labels" / f"{name}.png"))
