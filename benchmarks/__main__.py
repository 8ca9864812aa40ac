"""``python -m benchmarks [pipeline|models|quality|video|batch|codecs|all] [--repeats N] [--threads N]``

``all`` is models + pipeline; ``quality`` needs the training cache (see benchmarks/quality.py);
``video`` needs PyAV (``pip install ".[video]"``) and times 720p and 1080p clips; ``batch`` times
``smile FOLDER -j 1`` beside ``-j 2`` on 3 MP JPEGs (``--photos N``), with peak memory."""
from __future__ import annotations

import argparse
import platform
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("what", nargs="?", default="all", choices=["pipeline", "detector", "models", "quality", "video", "batch", "codecs", "all"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--photos", type=int, default=128, help="batch: photos in the folder (start-up is part of each run)")
    ap.add_argument("--ray", action="store_true", help="batch: also --ray local (needs pip install '.[ray]')")
    args = ap.parse_args(argv)
    import os

    print(f"<!-- {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} -->")
    # pipeline first: its child processes would otherwise inherit the model table's peak RSS
    if args.what in ("pipeline", "all"):
        from . import pipeline

        print("### Pipeline\n")
        print(pipeline.to_markdown(pipeline.run(repeats=args.repeats, threads=args.threads)))
        print()
    if args.what in ("detector", "all"):
        from . import detector

        print("### Face detection: BlazeFace beside dlib HOG\n")
        print(detector.to_markdown(detector.run(repeats=args.repeats)))
        print()
    if args.what in ("models", "all"):
        from . import models

        print("### Models\n")
        print(models.to_markdown(models.run(repeats=max(args.repeats * 4, 20))))
        print()
    if args.what == "video":
        from . import video

        print("### Video (one face, side by side with a plain decode + re-encode)\n")
        print(video.to_markdown(video.run(repeats=max(1, min(args.repeats, 3)), threads=args.threads)))
        print()
    if args.what == "batch":
        from . import batch

        modes = ("-j 1", "-j 2", "--ray local") if args.ray else ("-j 1", "-j 2")
        print(f"### Batches: {' beside '.join(modes)}\n")
        print(batch.to_markdown(batch.run(count=args.photos, repeats=max(1, min(args.repeats, 3)), modes=modes)))
        print()
    if args.what == "codecs":
        from . import codecs

        print("### JPEG decode and encode: Pillow beside simplejpeg\n")
        print(codecs.to_markdown(codecs.run(repeats=args.repeats)))
        print()
    if args.what == "quality":
        from . import quality

        print("### Quality (validation split)\n")
        return quality.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
