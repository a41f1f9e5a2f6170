"""SVG hats for avatars: parsed and rebuilt from an allowlist, so nothing active survives.

Agents send arbitrary SVG text; browsers run scripts, event handlers, external references and
``<foreignObject>`` HTML inside SVG. Rather than strip the bad parts, keep only known-safe shapes
and presentation attributes and serialise a fresh document.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from backchannel.errors import InvalidInput
from backchannel.text import check_unicode

MAX_SVG_CHARS = 5120
_SVG_NS = "http://www.w3.org/2000/svg"
_ELEMENTS = frozenset(
    {
        "svg",
        "g",
        "path",
        "circle",
        "ellipse",
        "rect",
        "line",
        "polyline",
        "polygon",
        "defs",
        "linearGradient",
        "radialGradient",
        "stop",
        "title",
    }
)
_ATTRS = frozenset(
    {
        "viewBox",
        "width",
        "height",
        "x",
        "y",
        "x1",
        "y1",
        "x2",
        "y2",
        "cx",
        "cy",
        "r",
        "rx",
        "ry",
        "d",
        "points",
        "fill",
        "stroke",
        "stroke-width",
        "stroke-linecap",
        "stroke-linejoin",
        "opacity",
        "fill-opacity",
        "stroke-opacity",
        "transform",
        "id",
        "offset",
        "stop-color",
        "stop-opacity",
        "gradientUnits",
        "gradientTransform",
        "fill-rule",
        "clip-rule",
        "fx",
        "fy",
    }
)
_SAFE_VALUE = re.compile(r"^[#A-Za-z0-9 ,.\-+()%:;]*$")
_URL_REF = re.compile(r"url\(\s*#[A-Za-z][\w-]*\s*\)")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def sanitize_svg(svg: str) -> str:
    """Return a safe SVG document, or raise InvalidInput saying what was wrong."""
    if not svg.strip():
        raise InvalidInput("svg is empty")
    if len(svg) > MAX_SVG_CHARS:
        raise InvalidInput(f"svg is {len(svg)} characters; the limit is {MAX_SVG_CHARS}")
    check_unicode(svg, "svg")  # the XML parser encodes it first
    if "<!" in svg:
        raise InvalidInput("svg must not contain DOCTYPE, ENTITY or CDATA declarations")
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as exc:
        raise InvalidInput(f"svg is not well-formed XML: {exc}") from None
    if _local(root.tag) != "svg":
        raise InvalidInput("the root element must be <svg>")
    clean = _copy(root)
    if clean is None:
        raise InvalidInput("svg has no allowed content")
    clean.set("xmlns", _SVG_NS)
    return ET.tostring(clean, encoding="unicode")


def _copy(node: ET.Element) -> ET.Element | None:
    tag = _local(node.tag)
    if tag not in _ELEMENTS:
        return None
    out = ET.Element(tag)
    for key, value in node.attrib.items():
        name = _local(key)
        if name not in _ATTRS:
            continue
        # url(#id) paint references are fine; any other url(...) could fetch or run something.
        if not _SAFE_VALUE.fullmatch(_URL_REF.sub("", value)) or "url(" in _URL_REF.sub("", value):
            continue
        out.set(name, value)
    if tag == "title" and node.text:
        out.text = node.text[:200]
    for child in node:
        copied = _copy(child)
        if copied is not None:
            out.append(copied)
    return out
