"""``python -m benchmarks [pipeline|face|detector|models|quality|video|batch|codecs|formats|all] [--repeats N] [--threads N]``

Runs from the checkout with a plain ``pip install .``: the photos are made from
``samples/astronaut.jpg``.  ``all`` is pipeline + face + detector + models; a part whose optional
packages are missing is skipped with a note (``detector`` needs scikit-image and ``face`` onnx,
from the ``[test]`` extra; ``models`` needs PyTorch and onnx, the ``[train]`` extra).  ``face``
times every step the engine runs per face on one thread (issue 15's cost).  ``quality`` needs
the training cache (see benchmarks/quality.py); ``video`` needs PyAV (``pip install ".[video]"``)
and times 720p and 1080p clips; ``batch`` times ``smile FOLDER -j 1`` beside ``-j 2`` on 3 MP
JPEGs (``--photos N``), with peak memory; ``formats`` writes a 12 MP result as JPEG, AVIF and HEIF
(HEIF rows need ``pip install ".[heif]"``)."""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys

#: part -> (modules it needs beyond a plain install, how to get them)
NEEDS = {
    "detector": (("skimage",), "pip install '.[test]'"),
    "face": (("onnx",), "pip install '.[test]'"),
    "models": (("torch", "onnx"), "pip install '.[train]'"),
    "quality": (("torch",), "pip install '.[train]'"),
    "video": (("av",), "pip install '.[video]'"),
}


def missing(part: str) -> str | None:
    """A one-line note when ``part`` cannot run here (an optional package is not installed), else ``None``."""
    mods, how = NEEDS.get(part, ((), ""))
    absent = [m for m in mods if importlib.util.find_spec(m) is None]
    return f"`{part}` needs {', '.join(absent)} ({how})" if absent else None


def at_least(low: int):
    """An argparse type: a whole number ≥ ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks and print Markdown; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["pipeline", "face", "detector", "models", "quality", "video", "batch", "codecs", "formats", "all"])
    ap.add_argument("--repeats", type=at_least(1), default=5)
    ap.add_argument("--threads", type=at_least(1), default=2)
    ap.add_argument("--photos", type=at_least(2), default=128,
                    help="batch: photos in the folder, at least 2 (start-up is part of each run)")
    ap.add_argument("--ray", action="store_true", help="batch: also --ray local (needs pip install '.[ray]')")
    ap.add_argument("--against", default=None, metavar="MODEL.onnx",
                    help="face: also time this smile model at λ = 2, taking turns with the default (e.g. the previous release)")
    args = ap.parse_args(argv)
    parts = ["pipeline", "face", "detector", "models"] if args.what == "all" else [args.what]
    notes = {p: missing(p) for p in parts}
    if args.what == "batch" and args.ray and importlib.util.find_spec("ray") is None:
        notes["batch"] = "`batch --ray` needs ray (pip install '.[ray]')"
    if args.what != "all" and notes[args.what]:
        print(f"error: {notes[args.what]}", file=sys.stderr)
        return 2

    print(f"<!-- {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} -->")
    for part in parts:
        if notes[part]:
            print(f"*skipped: {notes[part]}*\n")
            continue
        rc = run_part(part, args)
        if rc:
            return rc
    return 0


def run_part(part: str, args: argparse.Namespace) -> int:
    """One benchmark's Markdown section (pipeline first in ``all``: its child processes would
    otherwise inherit the model table's peak RSS)."""
    if part == "pipeline":
        from . import pipeline

        print("### Pipeline\n")
        print(pipeline.to_markdown(pipeline.run(repeats=args.repeats, threads=args.threads)))
    elif part == "face":
        from . import face

        print("### One face, step by step, on one thread\n")
        print(face.to_markdown(face.run(repeats=max(args.repeats * 12, 20), against=args.against)))
    elif part == "detector":
        from . import detector

        print("### Face detection: BlazeFace beside dlib HOG\n")
        print(detector.to_markdown(detector.run(repeats=args.repeats)))
    elif part == "models":
        from . import models

        print("### Models\n")
        print(models.to_markdown(models.run(repeats=max(args.repeats * 4, 20))))
    elif part == "video":
        from . import video

        print("### Video (one face, side by side with a plain decode + re-encode)\n")
        print(video.to_markdown(video.run(repeats=max(1, min(args.repeats, 3)), threads=args.threads)))
    elif part == "batch":
        from . import batch

        modes = ("-j 1", "-j 2", "--ray local") if args.ray else ("-j 1", "-j 2")
        print(f"### Batches: {' beside '.join(modes)}\n")
        print(batch.to_markdown(batch.run(count=args.photos, repeats=max(1, min(args.repeats, 3)), modes=modes)))
    elif part == "codecs":
        from . import codecs

        print("### JPEG decode and encode: Pillow beside simplejpeg\n")
        print(codecs.to_markdown(codecs.run(repeats=args.repeats)))
    elif part == "formats":
        from . import formats

        print("### Phone formats: a 12 MP result as JPEG, AVIF and HEIF\n")
        print(formats.to_markdown(formats.run(repeats=max(1, min(args.repeats, 3)))))
    elif part == "quality":
        from . import quality

        print("### Quality (validation split)\n")
        return quality.run()
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
