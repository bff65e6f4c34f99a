"""study.png: Dice against labelled cases, one curve per arm (mean over seeds) with its spread
(a band of mean ± sd, and every run as a dot), drawn with Pillow (no plotting library needed).

The x axis is logarithmic in the number of labelled cases (budgets usually double: 1, 2, 4, 8),
the y axis is Dice from 0 to 1.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Union

from PIL import Image, ImageDraw, ImageFont

from ddpm.run.atomic import atomic_write_bytes

SIZE = (820, 520)
# plot area inside the image: left, top, right, bottom margins in pixels
_MARGIN = (78, 52, 180, 64)
COLOURS = {"scratch": (214, 96, 30), "pretrained": (31, 104, 180)}
LABELS = {"scratch": "scratch", "pretrained": "pretrained"}
_GRID, _AXIS, _TEXT = (225, 225, 225), (60, 60, 60), (20, 20, 20)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def draw_study_plot(study: dict[str, Any], out: Union[str, Path]) -> Path:
    """Draw ``study`` (study.json's content) to the PNG ``out``; returns ``out``."""
    budgets = [row["labelled_cases"] for row in study["summary"]]
    x_lo, x_hi = math.log2(min(budgets)), math.log2(max(budgets))
    if x_hi - x_lo < 1e-9:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    pad = 0.06 * (x_hi - x_lo)
    x_lo, x_hi = x_lo - pad, x_hi + pad
    left, top = _MARGIN[0], _MARGIN[1]
    right, bottom = SIZE[0] - _MARGIN[2], SIZE[1] - _MARGIN[3]

    def px(cases: float, dice: float) -> tuple[float, float]:
        return (left + (math.log2(cases) - x_lo) / (x_hi - x_lo) * (right - left),
                bottom - max(0.0, min(1.0, dice)) * (bottom - top))

    image = Image.new("RGBA", SIZE, (255, 255, 255, 255))
    draw = ImageDraw.Draw(image)
    small, normal, large = _font(13), _font(15), _font(18)
    for tick in range(11):  # Dice grid every 0.1, labelled every 0.2
        _, y = px(budgets[0], tick / 10)
        draw.line([(left, y), (right, y)], fill=_GRID, width=1)
        if tick % 2 == 0:
            label = f"{tick / 10:.1f}"
            w, h = _text_size(draw, label, small)
            draw.text((left - 8 - w, y - h / 2 - 2), label, fill=_TEXT, font=small)
    for b in budgets:
        x, _ = px(b, 0)
        draw.line([(x, top), (x, bottom)], fill=_GRID, width=1)
        w, _ = _text_size(draw, str(b), small)
        draw.text((x - w / 2, bottom + 8), str(b), fill=_TEXT, font=small)
    draw.rectangle([left, top, right, bottom], outline=_AXIS, width=1)

    # bands first (translucent, one layer per arm), then lines, dots and markers on top
    for arm in COLOURS:
        rows = [r for r in study["summary"] if r[arm]["mean"] is not None]
        if not rows:
            continue
        upper = [px(r["labelled_cases"], r[arm]["mean"] + (r[arm]["sd"] or 0.0)) for r in rows]
        lower = [px(r["labelled_cases"], r[arm]["mean"] - (r[arm]["sd"] or 0.0)) for r in rows]
        layer = Image.new("RGBA", SIZE, (0, 0, 0, 0))
        band = ImageDraw.Draw(layer)
        if len(rows) > 1:
            band.polygon(upper + lower[::-1], fill=COLOURS[arm] + (48,))
        else:
            band.rectangle([upper[0][0] - 6, upper[0][1], upper[0][0] + 6, lower[0][1]], fill=COLOURS[arm] + (48,))
        image.alpha_composite(layer)
    draw = ImageDraw.Draw(image)
    for offset, arm in zip((-4, 4), COLOURS):  # runs of the two arms side by side, not on each other
        colour = COLOURS[arm]
        for run in study["runs"]:
            if run["arm"] == arm:
                x, y = px(run["labelled_cases"], run["mean_dice"])
                draw.ellipse([x + offset - 2.5, y - 2.5, x + offset + 2.5, y + 2.5], outline=colour, width=1)
        points = [px(r["labelled_cases"], r[arm]["mean"]) for r in study["summary"] if r[arm]["mean"] is not None]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3, joint="curve")
        for x, y in points:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour, outline=(255, 255, 255), width=1)

    title = "Dice on held-out cases against labelled cases"
    w, _ = _text_size(draw, title, large)
    draw.text(((left + right - w) / 2, 16), title, fill=_TEXT, font=large)
    xlabel = "labelled cases (log scale)"
    w, _ = _text_size(draw, xlabel, normal)
    draw.text(((left + right - w) / 2, bottom + 32), xlabel, fill=_TEXT, font=normal)
    ylabel = "mean foreground Dice"
    w, h = _text_size(draw, ylabel, normal)
    turned = Image.new("RGBA", (w + 4, h + 8), (255, 255, 255, 0))
    ImageDraw.Draw(turned).text((2, 0), ylabel, fill=_TEXT, font=normal)
    turned = turned.rotate(90, expand=True)
    image.alpha_composite(turned, (12, int((top + bottom - turned.height) / 2)))

    lx, ly = right + 18, top + 6  # legend
    for arm, colour in COLOURS.items():
        draw.rectangle([lx, ly + 2, lx + 22, ly + 16], fill=colour + (80,), outline=colour)
        draw.text((lx + 30, ly), LABELS[arm], fill=_TEXT, font=normal)
        ly += 26
    seeds = len(study.get("seeds", [])) or "?"
    for line in ("line: mean over seeds", "band: mean ± sd", f"dots: each run ({seeds} seeds)",
                 f"{study.get('iterations', '?')} fine-tune steps", "per run, both arms"):
        draw.text((lx, ly + 6), line, fill=(90, 90, 90), font=small)
        ly += 19

    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", optimize=True)
    out = Path(out)
    atomic_write_bytes(out, lambda fh: fh.write(buf.getvalue()))
    return out
