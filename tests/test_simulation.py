"""The simulation, end to end on tiny data sets, through the library and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alc_backend.cli import main
from alc_backend.data.dataset import (
    SegmentationDataset,
    read_superpixel_png,
    write_label_png,
    write_superpixel_png,
)
from alc_backend.engine.corrections import AutoCorrection, undo_corrections
from alc_backend.engine.lcm import LCMConfig
from alc_backend.engine.metrics import confusion_matrix, mean_iou
from alc_backend.engine.plar import PLARConfig
from alc_backend.engine.superpixels import compute_superpixels
from alc_backend.rounds.methods import parse_method
from alc_backend.rounds.settings import AuditConfig, RoundSettings
from alc_backend.simulation.runner import Simulation, SimulationConfig
from alc_backend.training.model import ModelConfig, build_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAST = RoundSettings(epochs=1, image_size=32, batch_size=4, encoder="resnet18", encoder_weights="none")
RANDOM_RESNET18 = ["--encoder", "resnet18", "--encoder-weights", "none"]


def write_striped_dataset(root: Path, num_images: int = 6, superpixel_shift: int = 0) -> SegmentationDataset:
    """32×32 images: four vertical superpixels of 8 columns; truth = class of the stripe's colour.

    The pseudo-labels are wrong on a block of each image: 0..3 columns into stripe 1 (so that
    stripe agrees on 5..8 of 8 columns) and all of stripe 3 in odd images. With
    ``superpixel_shift`` s > 0 the superpixels start s columns later (columns ``0..s-1`` form
    superpixel 0), so that each straddles two stripes.
    """
    rng = np.random.default_rng(0)
    colours = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]])
    for folder in ("images", "masks", "pseudo", "superpixels"):
        (root / folder).mkdir(parents=True)
    names = []
    for index in range(num_images):
        name = f"img{index}"
        names.append(name)
        stripe_classes = rng.integers(0, 3, size=4)
        truth = np.repeat(stripe_classes, 8)[None].repeat(32, axis=0).astype(np.uint8)
        image = colours[truth].astype(np.uint8)
        pseudo = truth.copy()
        pseudo[:, 8 : 8 + index % 4] = (truth[:, 8 : 8 + index % 4] + 1) % 3
        if index % 2:
            pseudo[:, 24:] = (truth[:, 24:] + 1) % 3
        superpixels = ((np.arange(32) + (8 - superpixel_shift) % 8) // 8)[None].repeat(32, axis=0)
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        write_label_png(root / "masks" / f"{name}.png", truth)
        write_label_png(root / "pseudo" / f"{name}.png", pseudo)
        write_superpixel_png(root / "superpixels" / f"{name}.png", superpixels)
    (root / "classes.txt").write_text("red\ngreen\nblue\n")
    (root / "val.txt").write_text(f"{names[-1]}\n")
    return SegmentationDataset.open(root)


def test_parse_method_names_acquisition_and_correctors() -> None:
    assert parse_method("sim").acquisition == "sim"
    assert parse_method(" lcil ").correctors == ()
    assert parse_method("abc+lcm+plar").correctors == ("lcm", "plar")
    with pytest.raises(ValueError, match="method 'foo': unknown acquisition 'foo'; choose from random, entropy"):
        parse_method("foo")
    with pytest.raises(ValueError, match=r"method 'sim\+magic': unknown auto-corrector 'magic'"):
        parse_method("sim+magic")
    assert parse_method("correction:abc+lcm").name == "abc+lcm"
    multiclass = parse_method(" multiclass : pixbal+lcm")
    assert (multiclass.name, multiclass.query, multiclass.acquisition) == (
        "multiclass:pixbal+lcm",
        "multiclass",
        "pixbal",
    )
    with pytest.raises(
        ValueError, match="method 'dominant:sim': unknown query kind 'dominant'; choose from correction"
    ):
        parse_method("dominant:sim")


def test_reference_oracle_with_the_whole_pool_relabels_exactly_the_mostly_wrong_superpixels(tmp_path: Path) -> None:
    dataset = write_striped_dataset(tmp_path / "data")
    config = SimulationConfig(
        methods=("cil",), rounds=1, oracle="reference", round=FAST.replace(queries_per_round=1000)
    )
    results = Simulation(dataset, config, tmp_path / "out", progress=False).run()

    # expected by hand: a superpixel changes when at most half of it agrees with the truth
    expected = sum(
        confusion_matrix(expected_labels(dataset, name), dataset.mask(name), 3) for name in dataset.train_names
    )
    start = sum(confusion_matrix(dataset.pseudo(name), dataset.mask(name), 3) for name in dataset.train_names)
    (run,) = results["runs"]
    first, last = run["rounds"]
    assert first["clicks"] == 0 and first["data_miou"] == pytest.approx(mean_iou(start))
    assert last["clicks"] == 4 * len(dataset.train_names)  # every superpixel asked once
    assert last["seconds"] == pytest.approx(6.38 * last["clicks"])  # one class per superpixel: 127.6 s / 20
    assert last["data_miou"] == pytest.approx(mean_iou(expected))
    num_changed = sum(changed_superpixels(dataset, name) for name in dataset.train_names)
    assert last["precision"] == pytest.approx(num_changed / last["clicks"])
    assert last["recall"] == 1.0
    # Theorem 3.1 cost: 1 bit per confirmation, log2(3) per correction
    assert last["cost_bits"] == pytest.approx((last["clicks"] - num_changed) + num_changed * np.log2(3))
    assert last["auto_corrected_pixels"] is None and last["model_miou"] is not None


def test_seconds_count_each_query_by_the_true_classes_of_its_region(tmp_path: Path) -> None:
    """Superpixels of columns 0-3, 4-11, 12-19, 20-27, 28-31 over stripes of 8: the three middle ones
    straddle two stripes. Every superpixel is asked once; by Table 3 of the multi-class paper a
    correction query costs 127.6 / 20 = 6.38 s on one class and 160.5 / 20 = 8.025 s on two."""
    dataset = write_striped_dataset(tmp_path / "data", superpixel_shift=4)
    config = SimulationConfig(methods=("cil",), rounds=1, round=FAST.replace(queries_per_round=1000))
    results = Simulation(dataset, config, tmp_path / "out", progress=False).run()

    expected = 0.0
    for name in dataset.train_names:
        stripes = dataset.mask(name)[0, ::8]  # the class of each of the 4 stripes
        expected += 2 * 6.38  # the half stripes at both edges
        expected += sum(8.025 if stripes[k] != stripes[k + 1] else 6.38 for k in range(3))
    (run,) = results["runs"]
    first, last = run["rounds"]
    assert first["seconds"] == 0.0
    assert last["clicks"] == 5 * len(dataset.train_names)
    assert last["seconds"] == pytest.approx(expected)
    assert any(dataset.mask(name)[0, 0] != dataset.mask(name)[0, 8] for name in dataset.train_names)
    assert results["config"]["seconds_per_query"]["correction"] == pytest.approx([6.38, 8.025, 8.605])
    assert (tmp_path / "out" / "curves-seconds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multiclass_queries_tick_the_classes_inside_the_boundary_band_and_label_only_with_them(
    tmp_path: Path,
) -> None:
    """Superpixels of columns 0-3, 4-11, 12-19, 20-27, 28-31 over stripes of 8 columns. The band along a
    region's boundary (5×5 dilation) covers its 3 columns next to another superpixel, not the image
    edge: the edge superpixels keep column 0 (31), a middle one columns 7-8 (15-16, 23-24), one
    column of each stripe it straddles. So the middle ones are answered with both stripes' classes.
    By Table 3 a multi-class query costs 145.5 / 20 = 7.275 s on one class, 191.6 / 20 = 9.58 s on
    two; each costs C = 3 bits."""
    dataset = write_striped_dataset(tmp_path / "data", superpixel_shift=4)
    config = SimulationConfig(methods=("multiclass:random",), rounds=1, round=FAST.replace(queries_per_round=1000))
    results = Simulation(dataset, config, tmp_path / "out", progress=False).run()

    work = tmp_path / "out" / "work" / "seed0" / "multiclass:random"
    given = [json.loads(line) for line in (work / "queries.jsonl").read_text().splitlines()]
    assert len(given) == 5 * len(dataset.train_names) and {q["kind"] for q in given} == {"multiclass"}
    expected_seconds = 0.0
    for name in dataset.train_names:
        stripes = [int(c) for c in dataset.mask(name)[0, ::8]]
        expected = [{stripes[0]}, *({stripes[k], stripes[k + 1]} for k in range(3)), {stripes[3]}]
        answered = {q["superpixel"]: q for q in given if q["image"] == name}
        labels = np.asarray(Image.open(work / "labels" / f"{name}.png"))
        for superpixel, classes in enumerate(expected):
            assert answered[superpixel]["classes"] == sorted(classes)
            assert answered[superpixel]["answer"] == (next(iter(classes)) if len(classes) == 1 else None)
            columns = labels[:, max(8 * superpixel - 4, 0) : 8 * superpixel + 4]
            assert set(np.unique(columns).tolist()) <= classes
            expected_seconds += 7.275 if len(classes) == 1 else 9.58
    assert any(len(set(dataset.mask(name)[0, ::8].tolist())) > 1 for name in dataset.train_names)
    last = results["runs"][0]["rounds"][-1]
    assert last["seconds"] == pytest.approx(expected_seconds)
    assert last["cost_bits"] == pytest.approx(3 * last["clicks"])
    assert last["precision"] is None and last["recall"] is None and last["audits"] == 0
    mixed = [q for q in given if len(q["classes"]) > 1]
    assert last["mixed_answers"] == len(mixed)
    right = sum(
        int(
            (
                np.asarray(Image.open(work / "labels" / f"{q['image']}.png")).ravel()[start : start + length]
                == dataset.mask(q["image"]).ravel()[start : start + length]
            ).sum()
        )
        for q in mixed
        for start, length in q["region"]
    )
    assert last["localised_accuracy"] == pytest.approx(right / sum(length for q in mixed for _, length in q["region"]))


def test_compute_superpixels_replaces_the_data_sets_own(tmp_path: Path) -> None:
    dataset = write_striped_dataset(tmp_path / "data")
    config = SimulationConfig(
        methods=("random",), rounds=1, superpixels="felzenszwalb", compute_superpixels=True, round=FAST
    )
    Simulation(dataset, config, tmp_path / "out", progress=False).run()
    differ = 0
    for name in dataset.train_names:
        computed = read_superpixel_png(tmp_path / "out" / "work" / "superpixels" / f"{name}.png")
        assert np.array_equal(computed, compute_superpixels(dataset.image(name), "felzenszwalb", num_segments=40))
        differ += not np.array_equal(computed, dataset.superpixels(name))
    assert differ > 0  # stripes of one colour side by side merge
    given = [json.loads(line) for line in (tmp_path / "out" / "work" / "seed0" / "random" / "queries.jsonl").open()]
    name = given[0]["image"]
    region = np.zeros(32 * 32, dtype=bool)
    for start, length in given[0]["region"]:
        region[start : start + length] = True
    computed = read_superpixel_png(tmp_path / "out" / "work" / "superpixels" / f"{name}.png")
    assert np.array_equal(region.reshape(32, 32), computed == given[0]["superpixel"])


def test_a_budget_in_seconds_asks_as_many_queries_as_their_estimated_time_allows(tmp_path: Path) -> None:
    """A correction query costs 6.38 to 8.605 s by the model's class count in its region, so a
    round of 20 s holds 2 (2 × 8.605 = 17.2, 3 × 8.605 > 20) or 3 (3 × 6.38 = 19.14) of them."""
    dataset = write_striped_dataset(tmp_path / "data", superpixel_shift=4)
    settings = FAST.replace(queries_per_round=20, budget_unit="seconds")
    config = SimulationConfig(methods=("random",), rounds=2, round=settings)
    results = Simulation(dataset, config, tmp_path / "out", progress=False).run()
    clicks = [entry["clicks"] for entry in results["runs"][0]["rounds"]]
    assert clicks[0] == 0
    assert {clicks[1] - clicks[0], clicks[2] - clicks[1]} <= {2, 3}


def test_auto_asks_each_region_one_kind_and_charges_its_seconds(tmp_path: Path) -> None:
    """Every superpixel is asked; each query is charged by its own kind and its region's true classes."""
    dataset = write_striped_dataset(tmp_path / "data", superpixel_shift=4)
    config = SimulationConfig(methods=("auto:random",), rounds=1, round=FAST.replace(queries_per_round=1000))
    results = Simulation(dataset, config, tmp_path / "out", progress=False).run()
    work = tmp_path / "out" / "work" / "seed0" / "auto:random"
    given = [json.loads(line) for line in (work / "queries.jsonl").read_text().splitlines()]
    assert {q["kind"] for q in given} <= {"correction", "multiclass"}
    table = {"correction": (6.38, 8.025), "multiclass": (7.275, 9.58)}
    expected = 0.0
    for query in given:
        truth = dataset.mask(query["image"]).ravel()
        present = {int(c) for start, length in query["region"] for c in truth[start : start + length]}
        expected += table[query["kind"]][len(present) - 1]
        if query["kind"] == "correction":
            assert query["classes"] == [query["answer"]]
    assert results["runs"][0]["rounds"][-1]["seconds"] == pytest.approx(expected)


def expected_labels(dataset: SegmentationDataset, name: str) -> np.ndarray:
    labels = dataset.pseudo(name).copy()
    truth = dataset.mask(name)
    for stripe in range(4):
        block = np.s_[:, stripe * 8 : stripe * 8 + 8]
        if np.mean(labels[block] == truth[block]) <= 0.5:
            labels[block] = np.bincount(truth[block].ravel()).argmax()
    return labels


def changed_superpixels(dataset: SegmentationDataset, name: str) -> int:
    pseudo, truth = dataset.pseudo(name), dataset.mask(name)
    return sum(np.mean(pseudo[:, s * 8 : s * 8 + 8] == truth[:, s * 8 : s * 8 + 8]) <= 0.5 for s in range(4))


@pytest.mark.slow
def test_faithful_rounds_never_ask_a_superpixel_twice(tmp_path: Path) -> None:
    dataset = write_striped_dataset(tmp_path / "data")
    total = 4 * len(dataset.train_names)
    config = SimulationConfig(
        methods=("sim", "random"), rounds=3, seeds=(0, 1), round=FAST.replace(queries_per_round=8)
    )
    results = Simulation(dataset, config, tmp_path / "out", progress=False).run()
    assert [(run["method"], run["seed"]) for run in results["runs"]] == [
        ("sim", 0),
        ("random", 0),
        ("sim", 1),
        ("random", 1),
    ]
    for run in results["runs"]:
        clicks = [entry["clicks"] for entry in run["rounds"]]
        assert clicks == [0, 8, 16, min(24, total)]
    # after asking about all 20 superpixels every pseudo-label error of a stripe is fixed
    config = SimulationConfig(methods=("sim",), rounds=1, round=FAST.replace(queries_per_round=total))
    last = Simulation(dataset, config, tmp_path / "all", progress=False).run()["runs"][0]["rounds"][-1]
    assert last["data_miou"] == pytest.approx(100.0)
    assert json.loads((tmp_path / "all" / "results.json").read_text())["runs"][0]["rounds"][-1] == last


@pytest.mark.slow
def test_cli_simulate_writes_results_and_curves(tmp_path: Path) -> None:
    data = tmp_path / "synthetic"
    assert main(["make-synthetic", str(data), "--images", "10", "--seed", "1", "--size", "48"]) == 0
    out = tmp_path / "run"
    arguments = ["simulate", str(data), "--method", "lcil", "--method", "softmin", "--rounds", "1", "--budget", "6"]
    arguments += ["--seeds", "0,1", "--epochs", "1", "--image-size", "48", "--quiet"]  # the CPU's defaults
    assert main([*arguments, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["seeds"] == [0, 1] and results["config"]["device"] == "cpu"
    network = (results["config"]["encoder"], results["config"]["encoder_weights"])
    assert network == ("tu-tf_efficientnet_lite0", "imagenet")
    assert {run["method"] for run in results["runs"]} == {"lcil", "softmin"}
    keys = {"round", "clicks", "seconds", "cost_bits", "data_miou", "model_miou", "precision", "recall", "audits"}
    keys |= {"mixed_answers", "localised_accuracy", "train_seconds"}
    auto_keys = {"auto_corrected_pixels", "auto_corrected_superpixels", "auto_precision", "auto"}
    assert keys | auto_keys == set(results["runs"][0]["rounds"][1])
    assert all(entry["train_seconds"] > 0 for run in results["runs"] for entry in run["rounds"])
    assert all(results["runs"][0]["rounds"][1][key] is None for key in auto_keys)  # no auto-corrector
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the example ranks one image's superpixels with the run's last model
    model = out / "work" / "seed1" / "softmin" / "model.safetensors"
    name = SegmentationDataset.open(data).train_names[0]
    command = [sys.executable, str(EXAMPLES / "rank_superpixels.py"), str(model), str(data), name]
    command += ["--top", "3", "--image-size", "48", "--out", str(tmp_path / "ranked.png")]
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    assert printed.count("superpixel ") == 3 and "labelled" in printed
    assert (tmp_path / "ranked.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_reports_bad_input_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = write_striped_dataset(tmp_path / "data")
    for path in (dataset.root / "pseudo").iterdir():
        path.unlink()
    (dataset.root / "pseudo").rmdir()
    code = main(["simulate", str(dataset.root), "--method", "sim", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "alc-backend: error: the simulation starts from pseudo-labels, but" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "nowhere"), "--method", "sim", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["simulate", str(dataset.root), "--method", "best", "--out", str(tmp_path / "o")]) == 2
    assert "unknown acquisition 'best'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_voc_like_data_set_runs_without_superpixels_val_or_equal_sizes(tmp_path: Path) -> None:
    """JPEG images of different sizes, 255 in the truth, SLIC superpixels, no val.txt."""
    rng = np.random.default_rng(5)
    root = tmp_path / "voc"
    for folder in ("images", "masks", "pseudo"):
        (root / folder).mkdir(parents=True)
    for index, (height, width) in enumerate([(40, 56), (48, 32), (36, 36)]):
        truth = np.zeros((height, width), np.uint8)
        truth[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1 + index % 2
        truth[height // 4, width // 4 :] = 255  # an unlabelled boundary row, as in VOC
        colours = np.array([[20, 20, 20], [220, 40, 40], [40, 40, 220]], np.uint8)
        image = colours[np.where(truth == 255, 0, truth)] + rng.integers(0, 20, (height, width, 3)).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"2007_{index:06d}.jpg", quality=95)
        write_label_png(root / "masks" / f"2007_{index:06d}.png", truth)
        write_label_png(root / "pseudo" / f"2007_{index:06d}.png", np.where(truth == 255, 0, truth) * (index != 1))
    (root / "classes.txt").write_text("background\naeroplane\nbicycle\n")

    out = tmp_path / "out"
    arguments = ["simulate", str(root), "--method", "sim", "--method", "classbal", "--rounds", "1", "--budget", "4"]
    arguments += ["--epochs", "1", "--image-size", "32", *RANDOM_RESNET18, "--num-superpixels", "6", "--quiet"]
    assert main([*arguments, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    for run in results["runs"]:
        assert [entry["model_miou"] for entry in run["rounds"]] == [None, None]  # no val.txt
        assert run["rounds"][1]["clicks"] == 4
    assert len(list((out / "work" / "superpixels").glob("*.png"))) == 3  # SLIC, computed once, cached


def test_expansion_threshold_runs_through_the_simulation(tmp_path: Path) -> None:
    """eps > 0 re-predicts the asked images and expands each answer only over similar pixels."""
    dataset = write_striped_dataset(tmp_path / "data")
    config = SimulationConfig(methods=("sim",), rounds=1, round=FAST.replace(queries_per_round=20, eps=0.999999))
    last = Simulation(dataset, config, tmp_path / "out", progress=False).run()["runs"][0]["rounds"][-1]
    full = SimulationConfig(methods=("sim",), rounds=1, round=FAST.replace(queries_per_round=20))
    last_full = Simulation(dataset, full, tmp_path / "full", progress=False).run()["runs"][0]["rounds"][-1]
    assert last["clicks"] == last_full["clicks"] == 20
    assert last_full["data_miou"] == pytest.approx(100.0)
    assert last["data_miou"] < last_full["data_miou"]  # a near-1 threshold leaves most of each stripe alone


def test_auto_correctors_leave_answered_superpixels_alone_and_their_journal_undoes_them(tmp_path: Path) -> None:
    """LCM and PLAR loosened until they act, audits off so that every proposal is written; one
    round, so undoing them leaves the human answers."""
    dataset = write_striped_dataset(tmp_path / "data", num_images=12)
    loose = FAST.replace(
        queries_per_round=8,
        lcm=LCMConfig(tau=0.0, alpha=0.0, min_precision=0.0, model_confidence=0.0, epochs=50),
        plar=PLARConfig(
            threshold=1.0, min_pixels=1, require_model_agreement=False, protect_unverified=False, min_precision=0.0
        ),
        plar_features="softmax",
        audit=AuditConfig(share=0.0),
    )
    config = SimulationConfig(methods=("abc+lcm+plar",), rounds=1, round=loose)
    results = Simulation(dataset, config, tmp_path / "out", progress=False).run()
    last = results["runs"][0]["rounds"][-1]
    assert last["auto_corrected_pixels"] > 0
    assert set(last["auto"]) == {"lcm", "plar"}
    assert last["auto_corrected_pixels"] == sum(entry["pixels"] for entry in last["auto"].values())

    work = tmp_path / "out" / "work" / "seed0" / "abc+lcm+plar"
    journal = [
        AutoCorrection.from_json(json.loads(line))
        for line in (work / "auto_corrections.jsonl").read_text().splitlines()
    ]
    assert sum(record.pixels for record in journal) == last["auto_corrected_pixels"]
    right = known = 0
    for name in dataset.train_names:
        records = [record for record in journal if record.image == name]
        final = np.asarray(Image.open(work / "labels" / f"{name}.png"))
        verified_path = work / "verified" / f"{name}.png"
        verified = np.asarray(Image.open(verified_path)) > 0 if verified_path.exists() else np.zeros((32, 32), bool)
        truth = dataset.mask(name)
        # human answers (a whole stripe each: the truth) over the pseudo-labels, nothing else
        human_only = np.where(verified, truth, dataset.pseudo(name))
        np.testing.assert_array_equal(undo_corrections(final, records), human_only)
        for record in records:
            pixels = np.concatenate([np.arange(start, start + length) for start, length, _ in record.runs])
            assert not verified.ravel()[pixels].any()
            right += int((truth.ravel()[pixels] == record.new_class).sum())
            known += pixels.size
    assert last["auto_precision"] == pytest.approx(right / known)


@pytest.mark.slow
def test_cli_runs_class_balanced_acquisitions_and_the_error_mask_decoder(tmp_path: Path) -> None:
    dataset = write_striped_dataset(tmp_path / "data")
    out = tmp_path / "out"
    weights = tmp_path / "weights" / "resnet18-encoder.pt"
    weights.parent.mkdir()
    torch.save(build_model(ModelConfig(dataset.num_classes)).encoder.state_dict(), weights)
    arguments = ["simulate", str(dataset.root), "--method", "abc", "--method", "pixbal", "--method", "sim+plar"]
    arguments += ["--rounds", "2", "--budget", "4", "--epochs", "1", "--image-size", "32", "--encoder", "resnet18"]
    arguments += ["--encoder-weights", str(weights)]
    arguments += ["--abc-uniform", "all", "--pixbal-nu", "6", "--error-decoder", "--plar-threshold", "0.9", "--quiet"]
    arguments += ["--plar-min-precision", "0.5", "--lcm-model-confidence", "0.7"]
    assert main([*arguments, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["encoder_weights"] == "resnet18-encoder.pt"  # the file's name, not where it lies
    recorded = results["config"]["round"]
    assert recorded["abc_uniform"] == "all" and recorded["pixbal_nu"] == 6.0
    assert recorded["error_decoder"] is True
    assert recorded["plar"]["min_precision"] == 0.5
    assert recorded["lcm"]["model_confidence"] == 0.7
    assert RoundSettings.from_json(recorded).replace(method="abc", seed=0).plar.min_precision == 0.5
    by_method = {run["method"]: run["rounds"] for run in results["runs"]}
    assert [entry["clicks"] for entry in by_method["pixbal"]] == [0, 4, 8]
    plar_round = by_method["sim+plar"][1]
    assert set(plar_round["auto"]) == {"plar"}
    held_out = plar_round["auto"]["plar"]
    assert 0 <= held_out["held_out_right"] <= held_out["held_out_pixels"] <= 4 * 8 * 32  # the answered stripes' pixels
