"""``smile detect PHOTO...``: list the faces Smile finds, with the indices ``--faces`` takes."""
from __future__ import annotations

import json

import click

from smilecore.errors import SmileError
from smilecore.face import DETECTED_FIELDS
from smilecore.decode import DEFAULT_MAX_PIXELS, load_image

from .stdout import Report

DETECT_HELP = """List the faces found in each PHOTO (largest first, index 0).

\b
Examples:
  smile detect group.jpg            # index, box, size and score of every face
  smile detect group.jpg --json
  smile group.jpg --faces 0,2       # then smile only faces 0 and 2
"""


@click.command(help=DETECT_HELP, short_help="List the faces found in photos, with their indices.", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO...")
@click.option("--min-face", type=click.IntRange(min=1), metavar="PX", help="Ignore faces smaller than PX pixels.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
              envvar="SMILE_MAX_PIXELS", show_envvar=True, help="Refuse photos with more pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: [{input, faces: [{index, box, score}], error}].")
def detect_command(photos, min_face, max_pixels, as_json) -> int:
    """Entry of ``smile detect``; returns the exit status (3 if a photo has no face)."""
    import smilecore

    out = []
    code = 0
    report = Report()  # a reader that goes away silences the listing, never the work
    for photo in photos:
        entry = {"input": photo, "faces": [], "error": None}
        try:
            image, _info = load_image(photo, max_pixels=max_pixels)
            faces = smilecore.detect_faces(image, min_face=min_face)
            entry["faces"] = [f.to_dict(DETECTED_FIELDS) for f in faces]
            if not faces:
                raise smilecore.NoFaceError(f"{photo}: no face found")
        except SmileError as exc:
            entry["error"] = {"code": exc.code, "exit_code": exc.exit_code, "message": str(exc)}
            code = code or exc.exit_code
            click.echo(f"smile: error: {exc}", err=True)
        out.append(entry)
        if not as_json:
            for f in entry["faces"]:
                x0, y0, x1, y1 = f["box"]
                report.echo(f"{photo}: face {f['index']}: box {x0},{y0},{x1},{y1} ({x1 - x0}x{y1 - y0} px), score {f['score']:.2f}")
    if as_json:
        report.echo(json.dumps(out, indent=2))
    return report.exit_code(code)
