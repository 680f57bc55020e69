"""Bar charts as inline SVG, drawn on the server: no charting script, nothing from another host. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

ROW_HEIGHT = 26
LABEL_WIDTH = 230
BAR_WIDTH = 360
VALUE_WIDTH = 110


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal  # what the bar shows, e.g. an average
    maximum: Decimal  # the value of a full bar, e.g. the point's maximum
    text: str  # the number printed after the bar
    highlight: bool = False


def bar_chart(bars: Sequence[Bar], *, title: str) -> str:
    """Horizontal bars, one row each, as wide as value / maximum; the exact figure printed beside."""
    height = ROW_HEIGHT * len(bars) + 8
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    rows = []
    for index, bar in enumerate(bars):
        y = 4 + index * ROW_HEIGHT
        share = bar.value / bar.maximum if bar.maximum > 0 else Decimal(0)
        share = min(max(share, Decimal(0)), Decimal(1))
        length = int(share * BAR_WIDTH)
        css = "bar weak" if bar.highlight else "bar"
        rows.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 17}" text-anchor="end" class="label">{escape(bar.label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{BAR_WIDTH}" height="{ROW_HEIGHT - 8}" class="track"/>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{length}" height="{ROW_HEIGHT - 8}" class="{css}"/>'
            f'<text x="{LABEL_WIDTH + BAR_WIDTH + 8}" y="{y + 17}" class="value">{escape(bar.text)}</text>'
        )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(rows)
        + "</svg>"
    )
