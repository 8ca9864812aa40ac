"""Video: ``smile_video`` side by side with a plain decode + re-encode of the same clip.

For each size a clip is made from the bundled astronaut (one face, moving across a canvas on
a known path, with a sine tone; :mod:`smilecore.video_synth`).  Each repeat times, in turn,
a plain PyAV decode + re-encode (same codec, preset and CRF, audio remuxed) and
``smile_video`` on it; medians are reported with their ratio.  The flicker columns measure
the mouth region, re-aligned by the known motion: mean frame-to-frame change of the output
divided by the input's, with tracking (the default) and editing each frame on its own
(detection every frame, no smoothing).  The memory columns are the peak resident size of a fresh
Python process that runs one of the two on the clip (imports, model and all), side by side.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}

_PEAK = """
import sys
from pathlib import Path
src, dst, which = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if which == "plain":
    from benchmarks.video import plain_transcode
    from smilecore.video_streams import DEFAULT_CRF, DEFAULT_PRESET
    plain_transcode(src, dst, DEFAULT_CRF, DEFAULT_PRESET)
else:
    from smilecore.video import smile_video
    smile_video(src, dst, strength=2.0)
# (VmHWM, not ru_maxrss: after fork and exec, ru_maxrss keeps the parent's size)
print(next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:")))
"""


def peak_mb(src: Path, dst: Path, which: str) -> float:
    """Peak resident memory (MB) of a fresh process running ``which`` ("plain" or "smile") on ``src`` (Linux)."""
    root = Path(__file__).resolve().parent.parent
    if not Path("/proc/self/status").exists():
        return float("nan")  # (not Linux: the column says n/a)
    out = subprocess.run([sys.executable, "-c", _PEAK, str(src), str(dst), which], cwd=root, capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024


def plain_transcode(src: Path, dst: Path, crf: int, preset: str) -> int:
    """Decode every frame and encode it again (H.264), remuxing the audio: the baseline."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vs = inp.streams.video[0]
        vs.codec_context.thread_type = "AUTO"
        o = out.add_stream("libx264", rate=vs.average_rate)
        o.width, o.height, o.pix_fmt = vs.codec_context.width, vs.codec_context.height, "yuv420p"
        o.time_base = vs.time_base
        o.codec_context.time_base = vs.time_base
        o.codec_context.options = {"crf": str(crf), "preset": preset}
        o.codec_context.thread_type = "AUTO"
        audio = {s.index: out.add_stream_from_template(s) for s in inp.streams.audio}
        n = 0
        for packet in inp.demux():
            if packet.stream.index in audio:
                if packet.dts is not None:
                    packet.stream = audio[packet.stream.index]
                    out.mux(packet)
                continue
            for fr in packet.decode():
                for p in o.encode(fr):
                    out.mux(p)
                n += 1
        for p in o.encode(None):
            out.mux(p)
    return n


def run(sizes=("720p", "1080p"), frames: int = 96, repeats: int = 3, threads: int = 2) -> list[dict]:
    # ``threads`` is not used: like the CLI, videos run the network on one thread unless
    # SMILE_THREADS is set (the encoder's threads run alongside)
    import smilecore
    from smilecore.video import smile_video
    from smilecore.video_streams import DEFAULT_CRF, DEFAULT_PRESET
    from smilecore.video_synth import make_clip, mouth_box, mouth_flicker, read_frames

    from .photos import neutral_astronaut, scratch_folder

    picture = neutral_astronaut()
    box = mouth_box(picture)
    model = smilecore.load_model()
    tmp = scratch_folder("smile-bench-video-")
    rows = []
    for label in sizes:
        w, h = SIZES[label]
        clip = make_clip(tmp / f"{label}.mp4", picture, size=(w, h), frames=frames, fps=25, face_height=0.85,
                         amplitude=(0.02 * w, 0.01 * h), crf=18)
        plain, smiled = [], []
        res = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            plain_transcode(clip.path, tmp / "plain.mp4", DEFAULT_CRF, DEFAULT_PRESET)
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = smile_video(clip.path, tmp / "smiled.mp4", strength=2.0, model=model)
            smiled.append(time.perf_counter() - t0)
        smile_video(clip.path, tmp / "naive.mp4", strength=2.0, model=model, detect_every=1, smooth=False)
        f_in = mouth_flicker(read_frames(clip.path), clip.matrices, _scaled(box, clip, picture))
        f_out = mouth_flicker(read_frames(tmp / "smiled.mp4"), clip.matrices, _scaled(box, clip, picture))
        f_naive = mouth_flicker(read_frames(tmp / "naive.mp4"), clip.matrices, _scaled(box, clip, picture))
        plain_mb, smile_mb = peak_mb(clip.path, tmp / "plain.mp4", "plain"), peak_mb(clip.path, tmp / "smiled.mp4", "smile")
        p, s = statistics.median(plain), statistics.median(smiled)
        stages = {k: v / res.frames * 1000 for k, v in res.timings.items() if k != "total"}
        rows.append({
            "size": f"{label} ({w}x{h})", "frames": res.frames, "faces": res.faces_edited,
            "plain_fps": frames / p, "smile_fps": frames / s, "ratio": s / p,
            "flicker": f_out / f_in, "flicker_naive": f_naive / f_in, "stages_ms": stages,
            "plain_runs": plain, "smile_runs": smiled, "plain_mb": plain_mb, "smile_mb": smile_mb,
        })
    return rows


def _scaled(box, clip, picture):
    # mouth_flicker works in picture pixels and the clip's matrices map picture -> frame
    return box


def _mb(v: float) -> str:
    return "n/a" if v != v else f"{v:.0f} MB"


def to_markdown(rows: list[dict]) -> str:
    lines = ["| clip | frames | plain decode+encode | smile | smile / plain | flicker (tracked) | flicker (per frame) "
             "| peak memory plain / smile |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']}, 1 face | {r['frames']} | {r['plain_fps']:.1f} fps | {r['smile_fps']:.1f} fps | "
                     f"{r['ratio']:.2f}× | {r['flicker']:.2f}× | {r['flicker_naive']:.2f}× | "
                     f"{_mb(r['plain_mb'])} / {_mb(r['smile_mb'])} |")
    lines.append("")
    for r in rows:
        st = ", ".join(f"{k} {v:.1f}" for k, v in r["stages_ms"].items())
        runs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(r["plain_runs"], r["smile_runs"]))
        lines.append(f"<!-- {r['size']}: ms per frame: {st}; runs plain/smile s: {runs} -->")
    return "\n".join(lines)
