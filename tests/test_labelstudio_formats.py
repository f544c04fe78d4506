"""Label Studio formats: brush RLE bytes worked out by hand, recorded Label Studio payloads, the real SDK's encoder,
labeling configs and result JSON."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alc_backend.cli import main as cli
from alc_backend.labelstudio.config import (
    DISTINCT_COLOURS,
    MULTICLASS_QUESTION,
    QUESTION,
    ImageProjectConfig,
    LabelConfigError,
    class_colours,
    image_label_config,
    parse_image_config,
    parse_query_config,
    project_kind,
    query_label_config,
    query_question,
)
from alc_backend.labelstudio.local_venv import ensure_label_studio_venv
from alc_backend.labelstudio.payloads import (
    answer_classes,
    brush_results,
    labels_from_brush_results,
    outline_width,
    query_results,
    region_outline,
    validate_results,
)
from alc_backend.labelstudio.rle import RLEError, decode_rle, encode_rle, mask_to_rle, rle_to_mask

RECORDED = Path(__file__).resolve().parent / "data" / "labelstudio-1.23.2"
IMAGE_CONFIG = """<View>
  <Header value="Paint every pixel"/>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="background" background="#888888"/>
    <Label value="road" background="#ff0000"/>
    <Label value="car" background="#0000ff"/>
  </BrushLabels>
</View>"""
CLASSES = ("background", "road", "car")


def recorded(name: str) -> dict[str, Any]:
    """A request and response that a real Label Studio 1.23.2 exchanged with a stub backend."""
    return json.loads((RECORDED / name).read_text())


def pack_bits(*fields: str) -> list[int]:
    """Bytes of the bit string ``fields`` (spaces ignored) padded with ``8 - length % 8`` zero bits."""
    bits = "".join(fields).replace(" ", "")
    bits += "0" * (8 - len(bits) % 8)
    return [int(bits[start : start + 8], 2) for start in range(0, len(bits), 8)]


def header(count: int, word_size: int = 8, rle_sizes: tuple[int, ...] = (3, 4, 8, 16)) -> str:
    """The 53 header bits: count, word size - 1 and the four rle sizes - 1."""
    return f"{count:032b}" + f"{word_size - 1:05b}" + "".join(f"{size - 1:04b}" for size in rle_sizes)


# --- RLE bytes by hand ---------------------------------------------------------------------------------------


def test_encode_single_value_by_hand() -> None:
    # count 1 | word size 8 -> 00111 | sizes 3, 4, 8, 16 -> 0010 0011 0111 1111 | literal block of length 1:
    # 0 00 000 00000111 | 53 + 14 = 67 bits, padded with 5 zero bits to 72:
    # 00000000 00000000 00000000 00000001 00111001 00011011 11111000 00000000 11100000
    assert encode_rle(np.array([7], np.uint8)) == [0, 0, 0, 1, 57, 27, 248, 0, 224]


def test_encode_runs_and_single_values_by_hand() -> None:
    values = np.array([5, 5, 5, 9] + [0] * 20, np.uint8)
    expected = pack_bits(
        header(24),
        "1 00 010 00000101",  # run of 3 fives: size index 0 (3 bits), length - 1 = 2
        "0 00 000 00001001",  # a single 9: literal block of length 1
        "1 10 00010011 00000000",  # run of 20 zeros: size index 2 (8 bits), length - 1 = 19
    )
    assert (53 + 14 + 14 + 19) % 8 == 4 and len(expected) == 13
    assert encode_rle(values) == expected


def test_encode_picks_the_smallest_rle_size_that_fits() -> None:
    values = np.repeat(np.arange(1, 7, dtype=np.uint8), [8, 9, 16, 17, 256, 257])
    assert encode_rle(values) == pack_bits(
        header(563),
        "1 00 111 00000001",  # 8: the 3-bit size
        "1 01 1000 00000010",  # 9: the 4-bit size
        "1 01 1111 00000011",  # 16
        "1 10 00010000 00000100",  # 17: the 8-bit size
        "1 10 11111111 00000101",  # 256
        "1 11 0000000100000000 00000110",  # 257: the 16-bit size
    )


def test_encode_splits_runs_longer_than_65536() -> None:
    values = np.full(2 * 65536 + 5, 255, np.uint8)
    full_block = "1 11 1111111111111111 11111111"
    expected = pack_bits(header(values.size), full_block, full_block, "1 11 0000000000000100 11111111")
    assert len(expected) == 17  # 53 + 3 × 27 = 134 bits, padded with 2 to 136
    assert encode_rle(values) == expected


def test_encode_pads_a_whole_zero_byte_when_already_aligned() -> None:
    rle = encode_rle(np.zeros(300, np.uint8))  # 53 + 27 = 80 bits
    assert rle == pack_bits(header(300), "1 11 0000000100101011 00000000")
    assert len(rle) == 11 and rle[-1] == 0


def test_encode_empty_array_is_a_bare_header() -> None:
    assert encode_rle(np.zeros(0, np.uint8)) == pack_bits(header(0))
    assert decode_rle(pack_bits(header(0))).size == 0


def test_mask_to_rle_writes_four_channels_of_0_or_255() -> None:
    mask = np.array([[True, False, False]])
    assert mask_to_rle(mask) == pack_bits(header(12), "1 00 011 11111111", "1 00 111 00000000")


def test_decode_other_word_sizes_and_literal_blocks() -> None:
    # Word size 4, rle sizes (2, 3, 1, 8): a literal block of 3 words, then a run of 4.
    stream = pack_bits(header(7, 4, (2, 3, 1, 8)), "0 01 010 0001 0010 0011", "1 00 11 1111")
    assert decode_rle(stream).tolist() == [1, 2, 3, 15, 15, 15, 15]
    # Word size 1: a literal block of 4 bits, a run of two ones with the 1-bit size.
    stream = pack_bits(header(6, 1, (2, 4, 1, 16)), "0 00 11 1 0 1 1", "1 10 1 1")
    assert decode_rle(stream).tolist() == [1, 0, 1, 1, 1, 1]
    # Word size 12 holding byte values: a literal block of 2 words with the 16-bit size, then a single 0.
    stream = pack_bits(header(3, 12), "0 11 0000000000000001 000011001000 000000000001", "0 00 000 000000000000")
    assert decode_rle(stream).tolist() == [200, 1, 0]


def test_decode_a_brush_written_with_long_literal_blocks() -> None:
    # A 2 × 2 mask whose top-left pixel is set, written as one literal block of 16 bytes (as the frontend may).
    words = "".join(f"{value:08b}" for value in [255] * 4 + [0] * 12)
    stream = pack_bits(header(16), "0 01 1111", words)
    assert rle_to_mask(stream, 2, 2).tolist() == [[True, False], [False, False]]


def test_decode_clips_a_last_run_that_overruns_the_count() -> None:
    assert decode_rle(pack_bits(header(3), "1 00 100 00001010")).tolist() == [10, 10, 10]


def test_decode_rejects_values_wider_than_a_byte() -> None:
    stream = pack_bits(header(2, 12), "1 00 001 000100101100")
    with pytest.raises(RLEError, match=r"^the rle holds the value 300, wider than a byte \(word size 12\)$"):
        decode_rle(stream)


# --- recorded Label Studio payloads --------------------------------------------------------------------------


def test_recorded_annotation_decodes_to_the_painted_rectangle() -> None:
    result = recorded("webhook_ANNOTATION_CREATED.json")["body"]["annotation"]["result"][0]
    assert (result["original_width"], result["original_height"]) == (64, 48)
    mask = rle_to_mask(result["value"]["rle"], 48, 64)
    rows, columns = np.nonzero(mask)
    assert mask.sum() == 600 == 20 * 30
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (10, 29, 10, 39)
    values = decode_rle(result["value"]["rle"]).reshape(48, 64, 4)
    assert set(np.unique(values).tolist()) == {0, 255} and (values == values[..., 3:]).all()
    assert mask_to_rle(mask) == result["value"]["rle"]  # written by the SDK's encoder
    labels = labels_from_brush_results([result], parse_image_config(IMAGE_CONFIG), 48, 64)
    assert (labels == np.where(mask, 1, 255)).all()  # "road"


def test_recorded_prediction_decodes_to_three_bands() -> None:
    record = recorded("predict_brush_single.json")
    config = parse_image_config(record["body"]["label_config"])
    results = record["response"]["results"][0]["result"]
    labels = labels_from_brush_results(results, config, 48, 64)
    expected = np.full((48, 64), 255, np.uint8)
    for class_index in range(3):
        expected[16 * class_index : 16 * (class_index + 1), 8:56] = class_index
    assert (labels == expected).all()
    assert [(result["value"]["rle"], result["value"]["brushlabels"]) for result in results] == [
        (result["value"]["rle"], result["value"]["brushlabels"]) for result in brush_results(labels, config)
    ]


# --- round trips and the real SDK ----------------------------------------------------------------------------


def various_masks() -> dict[str, np.ndarray]:
    """About 20 masks: empty, full, one pixel, noise of several densities, blobs, runs longer than 65536."""
    rng = np.random.default_rng(7)
    one_pixel = np.zeros((37, 53), bool)
    one_pixel[20, 31] = True
    masks = {
        "empty": np.zeros((48, 64), bool),
        "full": np.ones((48, 64), bool),
        "one pixel": one_pixel,
        "first pixel": np.eye(5, 9, dtype=bool)[:1],
        "1x1 set": np.ones((1, 1), bool),
        "1x1 clear": np.zeros((1, 1), bool),
        "row": rng.random((1, 700)) < 0.5,
        "column": rng.random((700, 1)) < 0.5,
        "full 300x300": np.ones((300, 300), bool),
        "empty 300x300": np.zeros((300, 300), bool),
        "checkerboard": np.indices((33, 17)).sum(axis=0) % 2 == 0,
        "stripes": np.repeat(rng.random((1, 129)) < 0.5, 513, axis=0),
        "frame 400x333": np.pad(np.zeros((398, 331), bool), 1, constant_values=True),
        "blobs": np.kron(rng.random((12, 16)) < 0.4, np.ones((20, 20), bool)),
    }
    for density in (0.001, 0.05, 0.5, 0.95, 0.999):
        masks[f"noise {density}"] = rng.random((61, 47)) < density
    masks["long runs"] = np.zeros((256, 1024), bool)
    masks["long runs"][100:, :] = True
    return masks


@pytest.mark.parametrize("name", list(various_masks()))
def test_mask_round_trip(name: str) -> None:
    mask = various_masks()[name]
    rle = mask_to_rle(mask)
    assert all(0 <= byte <= 255 for byte in rle)
    decoded = rle_to_mask(rle, *mask.shape)
    assert decoded.dtype == np.bool_ and (decoded == mask).all()


def test_values_round_trip() -> None:
    rng = np.random.default_rng(1)
    values = np.repeat(rng.integers(0, 256, 3000).astype(np.uint8), rng.integers(1, 400, 3000))
    assert (decode_rle(encode_rle(values)) == values).all()


SDK_SCRIPT = """
import json, sys
import numpy as np
from label_studio_sdk.converter.brush import encode_rle, mask2rle
arrays = np.load(sys.argv[1])
print(json.dumps({
    name: mask2rle(array.astype(np.uint8) * 255) if array.ndim == 2 else encode_rle(array)
    for name, array in arrays.items()
}))
"""


def test_same_bytes_as_the_label_studio_sdk(tmp_path: Path) -> None:
    masks = various_masks()
    run_lengths = [1, 2, 8, 9, 16, 17, 256, 257, 65536, 65537, 131072, 131073, 1]
    arrays = {
        "block boundaries": np.repeat(np.arange(len(run_lengths), dtype=np.uint8) * 19, run_lengths),
        "bytes": np.random.default_rng(3).integers(0, 256, 5000).astype(np.uint8),
    }
    np.savez(tmp_path / "arrays.npz", **masks, **arrays)
    python = ensure_label_studio_venv() / "bin" / "python"
    completed = subprocess.run(
        [str(python), "-c", SDK_SCRIPT, str(tmp_path / "arrays.npz")], capture_output=True, text=True, check=True
    )
    sdk = json.loads(completed.stdout)
    assert len(sdk) == len(masks) + len(arrays) >= 20
    for name, mask in masks.items():
        assert mask_to_rle(mask) == sdk[name], name
    for name, values in arrays.items():
        assert encode_rle(values) == sdk[name], name


# --- RLE errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ([], "the rle is empty"),
        ([0, 0, 0], "the rle is truncated: its 3 bytes end inside the 32-bit field at bit 0"),
        ([0, 0, 0, 1, 57], "the rle is truncated: its 5 bytes end inside the 4-bit field at bit 37"),
        ([0, 0, 1, 0, 57, 27, 255], "the rle is truncated: it declares 256 values but its 7 bytes can hold at most 0"),
        ([0, 256], "rle byte 1 is 256, outside 0..255"),
        ([-1, 0], "rle byte 0 is -1, outside 0..255"),
        (["a"], "the rle must be a flat list of integers 0..255, got an array of <U1 and shape (1,)"),
    ],
)
def test_bad_rle_errors(rle: list[Any], message: str) -> None:
    with pytest.raises(RLEError) as error:
        decode_rle(rle)
    assert str(error.value) == message


def test_truncated_brush_error() -> None:
    rle = mask_to_rle(np.eye(8, dtype=bool))
    with pytest.raises(RLEError) as error:
        rle_to_mask(rle[:-3], 8, 8)
    assert str(error.value) == "the rle is truncated: its 35 bytes end inside the 16-bit field at bit 268"


def test_wrong_size_rle_error() -> None:
    rle = mask_to_rle(np.zeros((48, 64), bool))
    with pytest.raises(RLEError) as error:
        rle_to_mask(rle, 32, 32)
    assert str(error.value) == "the rle holds 12288 values but the mask needs 4096 (height x width x 4)"


# --- labeling configs ----------------------------------------------------------------------------------------


def test_parse_image_config() -> None:
    config = parse_image_config(IMAGE_CONFIG)
    assert config == ImageProjectConfig("image", "image", "tag", CLASSES)
    assert config.class_index("car") == 2
    assert project_kind(IMAGE_CONFIG) == "image"


def test_recorded_configs_are_image_projects() -> None:
    xml = recorded("setup.json")["body"]["schema"]
    assert project_kind(xml) == "image"
    assert parse_image_config(xml).class_names == CLASSES


def test_unknown_label_error() -> None:
    with pytest.raises(LabelConfigError) as error:
        parse_image_config(IMAGE_CONFIG).class_index("bus")
    assert str(error.value) == "unknown label 'bus'; the project's labels are: background, road, car"


def image_config(image: str = '<Image name="image" value="$image"/>', brush_to: str = "image", labels: str = "") -> str:
    """An Image + BrushLabels config with the given Image tag(s), BrushLabels toName and Label tags."""
    labels = labels or '<Label value="road"/><Label value="car"/>'
    return f'<View>{image}<BrushLabels name="tag" toName="{brush_to}">{labels}</BrushLabels></View>'


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<View>", "the labeling config is not valid XML: no element found: line 1, column 6"),
        ("<View><Image></View>", "the labeling config is not valid XML: mismatched tag: line 1, column 15"),
        (
            '<View><Image name="image" value="$image"/></View>',
            "the labeling config has no <BrushLabels> tag; alc-backend serves Image + BrushLabels projects",
        ),
        (
            image_config(image=""),
            "the labeling config has no <Image> tag; alc-backend serves Image + BrushLabels projects",
        ),
        (
            image_config(image='<Image name="a" value="$a"/><Image name="b" value="$b"/>', brush_to="a"),
            "the labeling config has 2 <Image> tags ('a', 'b'); alc-backend serves Image + BrushLabels projects",
        ),
        (image_config(brush_to="img2"), "BrushLabels 'tag' points at 'img2' but the only Image is 'image'"),
        (
            image_config(image='<Image name="image" value="image"/>'),
            "the <Image> value 'image' is not a task-data reference such as '$image'",
        ),
        (image_config(labels='<Label value="car"/><Label value="road"/><Label value="car"/>'), "duplicate label 'car'"),
        (image_config(labels='<Label value="car"/>'), "a project needs at least 2 classes, got 1: car"),
        (
            image_config(labels='<Label value="car"/><Label background="#fff"/>'),
            "a <Label> in BrushLabels 'tag' has no value",
        ),
        (
            image_config(labels="".join(f'<Label value="c{index}"/>' for index in range(256))),
            "a project has at most 255 classes, got 256",
        ),
        (
            '<View><image name="image" value="$image"/><BrushLabels name="tag" toName="image"/></View>',
            "the labeling config has no <Image> tag; alc-backend serves Image + BrushLabels projects",
        ),
    ],
)
def test_bad_image_config_errors(xml: str, message: str) -> None:
    with pytest.raises(LabelConfigError) as error:
        parse_image_config(xml)
    assert str(error.value) == message


def test_a_query_task_asks_its_own_question() -> None:
    assert '<Header value="$question"/>' in query_label_config(["a", "b"])
    assert query_question("correction", "") == QUESTION
    assert query_question("multiclass", "") == MULTICLASS_QUESTION
    assert query_question("audit", "car") == (
        "This region was changed to car: is car right? If it is wrong, untick it and tick the right class. "
        "If the region holds several classes, tick each of them."
    )


def test_the_annotator_may_tick_several_classes() -> None:
    assert '<Choices name="answer" toName="image" choice="multiple" required="true"' in query_label_config(["a", "b"])


def test_query_config_template_round_trip() -> None:
    names = ["background", 'car & "truck"', "<sign>", "it's"]
    xml = query_label_config(names)
    assert xml.startswith("<View>\n  <Header ")
    config = parse_query_config(xml)
    assert (config.image_name, config.image_key, config.region_name, config.point_name, config.answer_name) == (
        "image",
        "image",
        "region",
        "point",
        "answer",
    )
    assert config.class_names == tuple(names)
    assert config.class_index("<sign>") == 2
    assert project_kind(xml) == "query"
    with pytest.raises(LabelConfigError, match="duplicate label 'road'"):
        query_label_config(["road", "road"])


def test_image_config_round_trips_its_classes_in_order_each_in_its_own_colour() -> None:
    names = ["background", "road", 'car & "truck"', "<sign>"]
    xml = image_label_config(names)
    config = parse_image_config(xml)
    assert config == ImageProjectConfig("image", "image", "tag", tuple(names))
    assert project_kind(xml) == "image"
    backgrounds = [label.get("background") for label in ET.fromstring(xml).iter("Label")]
    assert backgrounds == ["#f3c300", "#875692", "#f38400", "#a1caf1"]
    with pytest.raises(LabelConfigError, match="a project needs at least 2 classes, got 1: road"):
        image_label_config(["road"])


def test_class_colours_stay_distinct_past_the_fixed_palette() -> None:
    assert class_colours(3) == DISTINCT_COLOURS[:3]
    many = class_colours(255)
    assert len(set(many)) == 255 and many[:20] == DISTINCT_COLOURS
    assert all(len(colour) == 7 and int(colour[1:], 16) >= 0 for colour in many)
    with pytest.raises(ValueError, match=r"count must lie in 0\.\.255, got 256"):
        class_colours(256)


def test_label_config_command_prints_the_data_sets_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "classes.txt").write_text("background\nroad\n\ncar\n")
    assert cli(["label-config", str(tmp_path)]) == 0
    assert parse_image_config(capsys.readouterr().out).class_names == ("background", "road", "car")
    assert cli(["label-config", str(tmp_path / "missing")]) == 2
    assert f"{tmp_path / 'missing' / 'classes.txt'} does not exist" in capsys.readouterr().err


def test_tasks_command_names_each_image_and_the_pseudo_masks_that_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "pseudo").mkdir()
    for name in ("b.jpg", "a.png", ".a.png.tmp", "notes.txt"):
        (tmp_path / "images" / name).write_bytes(b"")
    (tmp_path / "pseudo" / "b.png").write_bytes(b"")
    assert cli(["tasks", str(tmp_path), "--url-prefix", "/data/local-files/?d=street/", "--pseudo-key", "noisy"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"image": "/data/local-files/?d=street/images/a.png", "name": "a"},
        {
            "image": "/data/local-files/?d=street/images/b.jpg",
            "name": "b",
            "noisy": "/data/local-files/?d=street/pseudo/b.png",
        },
    ]
    (tmp_path / "images" / "a.jpg").write_bytes(b"")
    assert cli(["tasks", str(tmp_path), "--url-prefix", "x"]) == 2
    assert (
        f"{tmp_path / 'images'} holds several files for the same image name: a.jpg and a.png; "
        "each image name must be unique"
    ) in capsys.readouterr().err


def test_query_config_needs_its_labels() -> None:
    xml = query_label_config(CLASSES).replace("query region", "region")
    with pytest.raises(LabelConfigError) as error:
        parse_query_config(xml)
    assert str(error.value) == (
        "BrushLabels 'region' has no label 'query region'; a query project has one Image, BrushLabels, "
        "KeyPointLabels and Choices each (see query_label_config)"
    )
    with pytest.raises(LabelConfigError, match=r"^the labeling config has no <KeyPointLabels> tag"):
        parse_query_config(IMAGE_CONFIG)


def test_project_kind_rejects_other_projects() -> None:
    xml = '<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image"/></View>'
    with pytest.raises(LabelConfigError) as error:
        project_kind(xml)
    assert str(error.value) == (
        "alc-backend serves Image + BrushLabels projects and its own query projects (Image, BrushLabels, "
        "KeyPointLabels, Choices); this labeling config has the tags Image, RectangleLabels, View"
    )
    assert project_kind(recorded("predict_query_single.json")["body"]["label_config"]) == "query"


# --- results -------------------------------------------------------------------------------------------------


def test_brush_results_skip_ignored_pixels() -> None:
    config = parse_image_config(IMAGE_CONFIG)
    labels = np.array([[0, 0, 255], [2, 2, 255]], np.uint8)
    results = brush_results(labels, config)
    assert [result["id"] for result in results] == ["class0", "class2"]
    assert results[1] == {
        "id": "class2",
        "from_name": "tag",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": 3,
        "original_height": 2,
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask_to_rle(labels == 2), "brushlabels": ["car"]},
    }
    validate_results(results, config)
    with pytest.raises(ValueError) as error:
        brush_results(np.array([[0, 3], [7, 255]]), config)
    assert str(error.value) == (
        "labels hold the values [3, 7]; the project's classes are 0..2 and 255 marks pixels without a class"
    )


def test_labels_from_brush_results_paints_in_order() -> None:
    config = parse_image_config(IMAGE_CONFIG)
    left, top = np.zeros((4, 5), bool), np.zeros((4, 5), bool)
    left[:, :2], top[:2, :] = True, True
    results = [
        brush_results(np.where(left, 1, 255), config)[0],
        {"type": "choices", "from_name": "x", "to_name": "image", "value": {"choices": ["bus"]}},
        brush_results(np.where(top, 2, 255), config)[0],
    ]
    labels = labels_from_brush_results(results, config, 4, 5)
    assert labels.dtype == np.uint8
    assert labels.tolist() == [[2, 2, 2, 2, 2], [2, 2, 2, 2, 2], [1, 1, 255, 255, 255], [1, 1, 255, 255, 255]]
    results[0]["value"]["brushlabels"] = ["bus"]
    with pytest.raises(
        LabelConfigError, match=r"^unknown label 'bus'; the project's labels are: background, road, car$"
    ):
        labels_from_brush_results(results, config, 4, 5)


def test_wrong_size_brush_error() -> None:
    result = recorded("webhook_ANNOTATION_CREATED.json")["body"]["annotation"]["result"][0]
    with pytest.raises(LabelConfigError) as error:
        labels_from_brush_results([result], parse_image_config(IMAGE_CONFIG), 32, 32)
    assert str(error.value) == "brush mask is 64x48 but the image is 32x32"


def test_query_results() -> None:
    config = parse_query_config(query_label_config(CLASSES))
    region = np.zeros((10, 20), bool)
    region[1:4, 3:8] = True
    region_result, point, answer = query_results(region, (2, 5), 1, config)
    assert region_result["readonly"] is True and point["readonly"] is True
    assert region_result["value"]["brushlabels"] == ["query region"]
    ring = region.copy()
    ring[2, 4:7] = False  # the 3x5 block's inside: the outline is 1 px wide on a 20 px image
    assert (rle_to_mask(region_result["value"]["rle"], 10, 20) == ring).all()
    assert point["from_name"] == "point" and point["type"] == "keypointlabels"
    assert point["value"] == {"x": 27.5, "y": 25.0, "width": 1.0, "keypointlabels": ["query pixel"]}  # (5.5/20, 2.5/10)
    assert answer["from_name"] == "answer" and answer["value"] == {"choices": ["road"]}
    for result in (region_result, point, answer):
        assert (result["original_width"], result["original_height"], result["to_name"]) == (20, 10, "image")
    validate_results([region_result, point, answer], config)
    json.dumps([region_result, point, answer])
    assert answer_classes([region_result, point, answer], config) == (1,)


def test_a_query_region_is_drawn_as_its_outline_scaled_to_the_image() -> None:
    assert [outline_width(shape) for shape in [(64, 48), (300, 200), (900, 1500), (4000, 3000)]] == [1, 2, 10, 27]
    region = np.zeros((7, 9), bool)
    region[0:6, 1:8] = True  # touches the image's top edge, which bounds it too
    expected = region.copy()
    expected[2:4, 3:6] = False
    assert (region_outline(region, 2) == expected).all()
    thin = np.zeros((5, 5), bool)
    thin[1:4, 2] = True
    assert (region_outline(thin, 1) == thin).all()
    with pytest.raises(ValueError, match="the outline width must be at least 1 px, got 0"):
        region_outline(region, 0)


def test_a_multiclass_query_arrives_with_nothing_ticked() -> None:
    config = parse_query_config(query_label_config(CLASSES))
    results = query_results(np.ones((2, 3), bool), (1, 2), None, config)
    assert [result["type"] for result in results] == ["brushlabels", "keypointlabels"]
    validate_results(results, config)
    assert answer_classes(results, config) == ()
    with pytest.raises(ValueError, match=r"ticked class 3 is outside 0\.\.2"):
        query_results(np.ones((2, 3), bool), (1, 2), 3, config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"from_name": "tag"},
            "result 2 has from_name 'tag'; the labeling config's controls are: region, point, answer",
        ),
        ({"to_name": "img"}, "result 2 has to_name 'img'; the labeling config's Image is 'image'"),
        ({"type": "brushlabels"}, "result 2 has type 'brushlabels'; 'answer' takes 'choices'"),
        (
            {"value": {"choices": ["bus"]}},
            "result 2 has the label 'bus'; the labels of 'answer' are: background, road, car",
        ),
        ({"value": {}}, "result 2 has no labels in value.choices"),
    ],
)
def test_validate_results_names_the_bad_field(change: dict[str, Any], message: str) -> None:
    config = parse_query_config(query_label_config(CLASSES))
    results = query_results(np.ones((2, 2), bool), (0, 0), 0, config)
    results[2] = {**results[2], **change}
    with pytest.raises(LabelConfigError) as error:
        validate_results(results, config)
    assert str(error.value) == message


def choice(*names: Any) -> dict[str, Any]:
    """An annotation's ``choices`` result in the query project's answer control."""
    return {"from_name": "answer", "to_name": "image", "type": "choices", "value": {"choices": list(names)}}


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([choice("bus")], "unknown label 'bus'; the project's labels are: background, road, car"),
        ([choice("car", 3)], "the answer's choices in 'answer' are not all text: ['car', 3]"),
        ([{**choice(), "value": {"choices": "car"}}], "the answer's 'answer' result has no list of choices"),
        (["car"], "a result of the answer is not an object: 'car'"),
    ],
)
def test_answer_classes_errors(results: list[Any], message: str) -> None:
    with pytest.raises(LabelConfigError) as error:
        answer_classes(results, parse_query_config(query_label_config(CLASSES)))
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("results", "classes"),
    [
        ([choice("car")], (2,)),
        ([choice("car", "background")], (0, 2)),
        ([choice("road"), choice("car", "road")], (1, 2)),
        ([], ()),
        ([choice()], ()),
        ([{**choice("car"), "from_name": "other"}], ()),
    ],
    ids=["one", "two ascending", "two results, one repeated", "no result", "nothing ticked", "another control"],
)
def test_answer_classes_reads_every_tick(results: list[dict[str, Any]], classes: tuple[int, ...]) -> None:
    assert answer_classes(results, parse_query_config(query_label_config(CLASSES))) == classes
