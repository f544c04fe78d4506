"""Label Studio labeling configs: the image projects alc-backend serves and its own correction-query projects.

An **image project** has one ``<Image>`` and one ``<BrushLabels>`` pointing at it; its ``<Label>`` values, in
order, are the class names, so class index c is the c-th label. A **query project** shows one correction query
per task: the region under question as a read-only brush (``<BrushLabels>``), its representative pixel as a
read-only key point (``<KeyPointLabels>``) and one ``<Choices>`` with a choice per class, where the annotator ticks
every class present in the region: a correction query or an audit arrives with its class ticked, a multi-class query
with none. ``query_label_config`` writes that config; ``parse_query_config`` reads it back. Tag names are
case-sensitive, as in Label Studio; other tags (``<Header>``, ``<Text>``...) are ignored.
``image_label_config`` writes an image project's config for a data set's classes, each in a colour
of its own (``class_colours``).
"""

from __future__ import annotations

import colorsys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

MAX_CLASSES = 255
"""Class indices are 0..254: 255 marks pixels without a class."""
REGION_LABEL = "query region"
POINT_LABEL = "query pixel"
QUESTION = (
    "Is the highlighted region labelled right? Its class is ticked. If it is wrong, untick it and tick the right "
    "one. If the region holds several classes, tick each of them."
)
AUDIT_QUESTION = (
    "This region was changed to {name}: is {name} right? If it is wrong, untick it and tick the right class. "
    "If the region holds several classes, tick each of them."
)
MULTICLASS_QUESTION = "Tick every class present in the highlighted region (leave out slivers along its edge)."

_IMAGE_PROJECT = "alc-backend serves Image + BrushLabels projects"
_QUERY_PROJECT = "a query project has one Image, BrushLabels, KeyPointLabels and Choices each (see query_label_config)"


DISTINCT_COLOURS = (
    "#f3c300",
    "#875692",
    "#f38400",
    "#a1caf1",
    "#be0032",
    "#c2b280",
    "#848482",
    "#008856",
    "#e68fac",
    "#0067a5",
    "#f99379",
    "#604e97",
    "#f6a600",
    "#b3446c",
    "#dcd300",
    "#882d17",
    "#8db600",
    "#654522",
    "#e25822",
    "#2b3d26",
)
"""Kenneth Kelly's colours of maximum contrast (1965), without white and black: the first classes' colours."""
_GOLDEN_ANGLE = 0.381966


class LabelConfigError(ValueError):
    """A labeling config, or a result, that alc-backend cannot serve."""


@dataclass(frozen=True)
class ImageProjectConfig:
    """An image project: the image, its brush control and the class names (class index = position)."""

    image_name: str
    """The ``<Image name>``: the ``to_name`` of every result."""
    image_key: str
    """The task-data key holding the image URL: ``value="$image"`` -> ``"image"``."""
    brush_name: str
    """The ``<BrushLabels name>``: the ``from_name`` of brush results."""
    class_names: tuple[str, ...]

    def class_index(self, name: str) -> int:
        """Index of the class ``name``; LabelConfigError if the project has no such label."""
        return _class_index(self.class_names, name)


@dataclass(frozen=True)
class QueryProjectConfig:
    """A correction-query project: the image, the region, the pixel and the answer controls."""

    image_name: str
    image_key: str
    region_name: str
    """The ``<BrushLabels name>`` that shows the queried region."""
    point_name: str
    """The ``<KeyPointLabels name>`` that shows the queried pixel."""
    answer_name: str
    """The ``<Choices name>`` that holds the answer, one choice per class."""
    class_names: tuple[str, ...]

    def class_index(self, name: str) -> int:
        """Index of the class ``name``; LabelConfigError if the project has no such choice."""
        return _class_index(self.class_names, name)


def parse_image_config(xml: str) -> ImageProjectConfig:
    """Read an Image + BrushLabels labeling config; LabelConfigError naming what is wrong."""
    root = _parse_xml(xml)
    image_name, image_key = _image(root, _IMAGE_PROJECT)
    brush = _control(root, "BrushLabels", image_name, _IMAGE_PROJECT)
    class_names = _values(brush, "Label")
    _check_class_names(class_names)
    return ImageProjectConfig(image_name, image_key, brush.attrib["name"], class_names)


def parse_query_config(xml: str) -> QueryProjectConfig:
    """Read a query project's labeling config (as ``query_label_config`` writes it); LabelConfigError if wrong."""
    root = _parse_xml(xml)
    image_name, image_key = _image(root, _QUERY_PROJECT)
    region = _control(root, "BrushLabels", image_name, _QUERY_PROJECT)
    point = _control(root, "KeyPointLabels", image_name, _QUERY_PROJECT)
    answer = _control(root, "Choices", image_name, _QUERY_PROJECT)
    for control, label in ((region, REGION_LABEL), (point, POINT_LABEL)):
        if label not in _values(control, "Label"):
            raise LabelConfigError(f"{control.tag} {control.attrib['name']!r} has no label {label!r}; {_QUERY_PROJECT}")
    class_names = _values(answer, "Choice")
    _check_class_names(class_names)
    return QueryProjectConfig(
        image_name, image_key, region.attrib["name"], point.attrib["name"], answer.attrib["name"], class_names
    )


def class_colours(count: int) -> tuple[str, ...]:
    """``count`` pairwise different ``#rrggbb`` colours, one per class index.

    The first 20 are :data:`DISTINCT_COLOURS`; further classes step round the hue circle by the
    golden angle at alternating lightness, so neighbouring indices never look alike.
    """
    if not 0 <= count <= MAX_CLASSES:
        raise ValueError(f"count must lie in 0..{MAX_CLASSES}, got {count}")
    colours = list(DISTINCT_COLOURS[:count])
    step = 0
    while len(colours) < count:
        hue = (step * _GOLDEN_ANGLE) % 1.0
        lightness = (0.35, 0.5, 0.65)[step % 3]
        red, green, blue = (round(255 * value) for value in colorsys.hls_to_rgb(hue, lightness, 0.75))
        colour = f"#{red:02x}{green:02x}{blue:02x}"
        if colour not in colours:
            colours.append(colour)
        step += 1
    return tuple(colours)


def image_label_config(class_names: Sequence[str]) -> str:
    """An image project's labeling config for ``class_names`` (label order = class index), one colour per class.

    The predictions the backend writes show each class in its label's colour (:func:`class_colours`).
    """
    class_names = tuple(class_names)
    _check_class_names(class_names)
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(colour)}/>"
        for name, colour in zip(class_names, class_colours(len(class_names)), strict=True)
    )
    return f"""<View>
  <Image name="image" value="$image" zoom="true" zoomControl="true"/>
  <BrushLabels name="tag" toName="image">
{labels}
  </BrushLabels>
</View>
"""


def query_label_config(class_names: Sequence[str]) -> str:
    """The labeling config of a query project for the classes ``class_names`` (choice order = class index).

    The annotator may tick several classes (``choice="multiple"``): one answers a correction query,
    several flag a mixed region (:func:`~alc_backend.labelstudio.payloads.answer_classes`). The
    question and the choices come first: Label Studio sizes the image to the window's
    height, so whatever follows it starts below the fold. The question is the task's
    ``question`` field (:func:`query_question`): correction queries and audits ask differently.
    """
    class_names = tuple(class_names)
    _check_class_names(class_names)
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in class_names)
    return f"""<View>
  <Header value="$question"/>
  <Choices name="answer" toName="image" choice="multiple" required="true" showInline="true">
{choices}
  </Choices>
  <Image name="image" value="$image" zoom="true" zoomControl="true" maxHeight="calc(100vh - 330px)"/>
  <BrushLabels name="region" toName="image">
    <Label value={quoteattr(REGION_LABEL)} background="#ffaa00"/>
  </BrushLabels>
  <KeyPointLabels name="point" toName="image">
    <Label value={quoteattr(POINT_LABEL)} background="#00ff00"/>
  </KeyPointLabels>
</View>
"""


def query_question(kind: str, proposed: str) -> str:
    """The question a query task of ``kind`` shows: a correction query's, a multi-class query's, or an
    audit's naming the class ``proposed`` (the class the audited change wrote; unused otherwise)."""
    if kind == "audit":
        return AUDIT_QUESTION.format(name=proposed)
    return MULTICLASS_QUESTION if kind == "multiclass" else QUESTION


def project_kind(xml: str) -> str:
    """``"query"`` if the config has ``<Choices>`` and ``<KeyPointLabels>``, ``"image"`` if it has ``<BrushLabels>``
    and neither of those; LabelConfigError for any other config.

    Only the tags are looked at: ``parse_image_config`` or ``parse_query_config`` then checks the rest.
    """
    root = _parse_xml(xml)
    tags = {element.tag for element in root.iter()}
    if {"Choices", "KeyPointLabels"} <= tags:
        return "query"
    if "BrushLabels" in tags and not tags & {"Choices", "KeyPointLabels"}:
        return "image"
    raise LabelConfigError(
        f"{_IMAGE_PROJECT} and its own query projects (Image, BrushLabels, KeyPointLabels, Choices); "
        f"this labeling config has the tags {', '.join(sorted(tags))}"
    )


def _class_index(class_names: tuple[str, ...], name: str) -> int:
    if name not in class_names:
        raise LabelConfigError(f"unknown label {name!r}; the project's labels are: {', '.join(class_names)}")
    return class_names.index(name)


def _parse_xml(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as error:
        raise LabelConfigError(f"the labeling config is not valid XML: {error}") from None


def _only(root: ET.Element, tag: str, project: str) -> ET.Element:
    """The one ``<tag>`` under ``root`` (which must have a name); LabelConfigError if there are none or several."""
    found = list(root.iter(tag))
    if not found:
        raise LabelConfigError(f"the labeling config has no <{tag}> tag; {project}")
    if len(found) > 1:
        names = ", ".join(repr(element.get("name")) for element in found)
        raise LabelConfigError(f"the labeling config has {len(found)} <{tag}> tags ({names}); {project}")
    if not found[0].get("name"):
        raise LabelConfigError(f"the <{tag}> tag has no name")
    return found[0]


def _image(root: ET.Element, project: str) -> tuple[str, str]:
    """Name and task-data key of the one ``<Image>``."""
    image = _only(root, "Image", project)
    value = image.get("value", "")
    if not value.startswith("$") or len(value) < 2:
        raise LabelConfigError(f"the <Image> value {value!r} is not a task-data reference such as '$image'")
    return image.attrib["name"], value[1:]


def _control(root: ET.Element, tag: str, image_name: str, project: str) -> ET.Element:
    """The one ``<tag>`` control, which must point at the image ``image_name``."""
    control = _only(root, tag, project)
    name, to_name = control.attrib["name"], control.get("toName")
    if to_name is None:
        raise LabelConfigError(f"{tag} {name!r} has no toName; it must point at the Image {image_name!r}")
    if to_name != image_name:
        raise LabelConfigError(f"{tag} {name!r} points at {to_name!r} but the only Image is {image_name!r}")
    return control


def _values(control: ET.Element, child_tag: str) -> tuple[str, ...]:
    """The ``value`` of every ``<child_tag>`` inside ``control``, in order."""
    values = []
    for child in control.iter(child_tag):
        value = child.get("value")
        if value is None:
            raise LabelConfigError(f"a <{child_tag}> in {control.tag} {control.attrib['name']!r} has no value")
        values.append(value)
    return tuple(values)


def _check_class_names(class_names: tuple[str, ...]) -> None:
    if len(class_names) < 2:
        raise LabelConfigError(f"a project needs at least 2 classes, got {len(class_names)}: {', '.join(class_names)}")
    if len(class_names) > MAX_CLASSES:
        raise LabelConfigError(f"a project has at most {MAX_CLASSES} classes, got {len(class_names)}")
    seen: set[str] = set()
    for name in class_names:
        if not name:
            raise LabelConfigError("a class name is empty")
        if name in seen:
            raise LabelConfigError(f"duplicate label {name!r}")
        seen.add(name)
