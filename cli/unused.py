"""Options a run will not use: named once on stderr, instead of being dropped silently."""
from __future__ import annotations

from smilecore.encode import OUTPUT_FORMATS
from smilecore.video_streams import is_video_path

#: Photo formats that are lossless, so ``--quality`` has nothing to set.
LOSSLESS = {"PNG", "TIFF", "BMP"}


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def unused_option_notes(jobs, quality=None, crf=None, codec=None, preset=None, ray=None, ray_actors=None,
                        jobs_n=None) -> list[str]:
    """Notes for the options given that no input of this run uses: video options with no video among the
    inputs, ``--quality`` with only videos, or with photo results that are all lossless, ``--ray-actors``
    without ``--ray``, ``-j`` with it."""
    notes = []
    if ray_actors is not None and not ray:
        notes.append("--ray-actors applies with --ray (a Ray cluster); without it, so ignored (-j N sets the processes here)")
    if jobs_n is not None and ray:
        notes.append("-j applies without --ray; with it, so ignored (--ray-actors N sets the actors of the cluster)")
    videos = [j for j in jobs if is_video_path(j.input)]
    given = [name for value, name in ((crf, "--crf"), (codec, "--codec"), (preset, "--preset")) if value is not None]
    if given and not videos:
        notes.append(f"{_names(given)} {'applies' if len(given) == 1 else 'apply'} to videos; no input is one, so ignored")
    if quality is not None:
        photos = [j for j in jobs if not is_video_path(j.input)]
        formats = {OUTPUT_FORMATS.get(j.output.suffix.lower()) for j in photos if j.output is not None}
        if not photos:
            notes.append("--quality applies to photos; every input is a video (their quality is --crf), so ignored")
        elif formats and formats <= LOSSLESS:
            notes.append(f"--quality {quality} not used: {_names(sorted(formats))} {'is' if len(formats) == 1 else 'are'} lossless")
    return notes
