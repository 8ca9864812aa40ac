"""Re-make the README's figure of the bundled sample at several strengths.

``python docs/figures.py [--model PATH] [--out docs/astronaut-strengths.jpg]``: runs the engine
(the bundled default model unless ``--model``) on ``samples/astronaut.jpg`` (NASA, public
domain) at λ = 0 (the input), −1, 2, 3, 4 (she already smiles, about as much as λ = 1.7, so
λ = 1 would leave her as she is) and writes the panels side by side, each a
window around the face (2.2 face widths wide) scaled to 270 × 300.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import smilecore

ROOT = Path(__file__).resolve().parent.parent
STRENGTHS = (0.0, -1.0, 2.0, 3.0, 4.0)
PANEL = (270, 300)  # width, height


def strengths_figure(photo: Image.Image, model: str | None = None) -> Image.Image:
    """The photo's largest face at each of :data:`STRENGTHS`, side by side."""
    box = smilecore.smile(photo, strength=0.0, faces="largest", model=model).faces[0].box
    w = min(photo.width, int(2.2 * (box[2] - box[0])))
    h = min(photo.height, w * PANEL[1] // PANEL[0])
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    x0 = int(np.clip(cx - w // 2, 0, photo.width - w))
    y0 = int(np.clip(cy - h // 2, 0, photo.height - h))
    window = (x0, y0, x0 + w, y0 + h)
    panels = []
    for lam in STRENGTHS:
        img = photo if lam == 0 else smilecore.smile(photo, strength=lam, faces="largest", model=model).image
        panels.append(img.convert("RGB").crop(window).resize(PANEL, Image.LANCZOS))
    sheet = Image.new("RGB", (PANEL[0] * len(panels), PANEL[1]))
    for i, p in enumerate(panels):
        sheet.paste(p, (i * PANEL[0], 0))
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="ONNX model (default: the bundled default)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "astronaut-strengths.jpg"))
    args = ap.parse_args()
    fig = strengths_figure(Image.open(ROOT / "samples" / "astronaut.jpg"), args.model)
    fig.save(args.out, quality=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
