"""A URL as a QR code, in SVG to put inline in a page. Pure.

Inline SVG needs no image request and no other host, prints sharply at any size, and scales
with CSS: the width and height the library writes are taken off and only the viewBox is kept.
"""

from __future__ import annotations

from xml.etree import ElementTree

import qrcode  # type: ignore[import-untyped]
import qrcode.constants  # type: ignore[import-untyped]
from qrcode.image.svg import SvgPathImage  # type: ignore[import-untyped]

# M recovers from about 15% damage: enough for a creased card, and keeps the code coarse
# enough for an old phone to read from the back of a meeting room.
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
# The quiet zone, in modules. The standard asks for 4; cards and the screen leave white around
# the code anyway, so 2 keeps the modules larger for the same printed size.
QUIET_ZONE = 2
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def qr_svg(data: str, *, label: str = "QR", css_class: str = "qr") -> str:
    """An ``<svg>`` element encoding ``data``; ``label`` is what a screen reader says."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=QUIET_ZONE, image_factory=SvgPathImage)
    code.add_data(data)
    code.make(fit=True)
    svg: ElementTree.Element = code.make_image().get_image()
    for attribute in ("width", "height"):
        svg.attrib.pop(attribute, None)
    svg.set("class", css_class)
    svg.set("role", "img")
    svg.set("aria-label", label)
    svg.set("shape-rendering", "crispEdges")
    for path in svg.iter("path"):
        # The library names its path "qr-path": with several codes on a page the ids would clash.
        path.attrib.pop("id", None)
    return ElementTree.tostring(svg, encoding="unicode")


def qr_modules(data: str) -> list[list[bool]]:
    """The code's dark modules, quiet zone included; lets tests read back what was drawn."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, border=QUIET_ZONE)
    code.add_data(data)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]
