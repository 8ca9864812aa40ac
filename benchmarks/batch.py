"""Batch throughput: ``smile FOLDER --out-dir OUT -j 1`` beside ``-j 2`` (and ``--ray local``).

A folder of 3 MP JPEGs is made from samples/astronaut.jpg (one face each, shifted and with
different noise so no two files are alike).  Each repeat runs every mode once, in turn, as a
real ``smile`` process (start-up and model loading included: what a user waits for), and
photos/s is counted over the whole run.  The outputs of every mode are compared byte for byte
with ``-j 1``'s.  So that a fixed cost is not mistaken for a slow pace (``--ray local`` starts and
stops a cluster), each repeat also times every mode on the folder's first two photos (start-up,
two photos and shutdown), and the pace after start-up is (photos - 2) / (seconds - seconds for 2).

Peak memory is measured in a separate run of each mode (sampling costs CPU): every 50 ms the
process tree of ``smile`` is read from /proc.  ``rss`` is the sum over the processes of each
one's own peak (VmHWM: an upper bound of the tree's peak, shared libraries counted once per
process), ``pss`` the highest sampled sum of proportional set sizes (shared pages split between
the processes that share them).  Linux only; elsewhere memory is not reported.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (2000, 1500)  # 3 MP


def make_folder(folder: Path, count: int, size: tuple[int, int] = SIZE) -> list[Path]:
    """``count`` 3 MP JPEGs: the astronaut (about a third of the height) on a noisy background."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    face = Image.open(ROOT / "samples" / "astronaut.jpg").convert("RGB")
    side = int(h * 0.6)
    face = face.resize((side, side), Image.LANCZOS)
    paths = []
    for i in range(count):
        rng = np.random.default_rng(i)
        canvas = rng.integers(80, 176, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(canvas)
        x = (w - side) // 2 + int(rng.integers(-300, 300))
        y = (h - side) // 2 + int(rng.integers(-150, 150))
        img.paste(face, (x, y))
        p = folder / f"photo{i:03d}.jpg"
        img.save(p, quality=90)
        paths.append(p)
    return paths


def _command(folder: Path, out: Path, mode: str) -> list[str]:
    cmd = [sys.executable, "-m", "smile_cli", str(folder), "--out-dir", str(out), "-q"]
    if mode.startswith("-j"):
        cmd += ["-j", mode.split()[1]]
    elif mode.startswith("--ray"):
        cmd += ["--ray", mode.split()[1]]
    return cmd


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_once(folder: Path, out: Path, mode: str, sample: bool = False) -> dict:
    """One ``smile`` run; seconds, and with ``sample`` the peak memory (MB)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    import resource

    env = dict(os.environ)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(_command(folder, out, mode), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm: dict[int, int] = {}
    pss_peak = 0
    if sample and sys.platform.startswith("linux"):
        while proc.poll() is None:
            pss = 0
            for pid in _tree(proc.pid):
                hwm[pid] = max(hwm.get(pid, 0), _kb(f"/proc/{pid}/status", "VmHWM:"))
                pss += _kb(f"/proc/{pid}/smaps_rollup", "Pss:")
            pss_peak = max(pss_peak, pss)
            time.sleep(0.05)
    err = proc.communicate()[1]
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # (workers, waited for by smile, count too)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode}: exit {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    r = {"seconds": seconds, "cpu": cpu}
    if hwm:
        r["rss_mb"] = sum(hwm.values()) / 1024
        r["pss_mb"] = pss_peak / 1024
        r["processes"] = len(hwm)
    return r


def _same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def run(count: int = 128, repeats: int = 3, modes: tuple[str, ...] = ("-j 1", "-j 2")) -> dict:
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix="smile-batch-"))
    try:
        return _run(tmp, count, repeats, modes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(tmp: Path, count: int, repeats: int, modes: tuple[str, ...]) -> dict:
    import shutil

    folder = tmp / "in"
    paths = make_folder(folder, count)
    two = tmp / "two"
    two.mkdir()
    for p in paths[:2]:
        shutil.copyfile(p, two / p.name)
    results: dict[str, dict] = {m: {"seconds": [], "cpu": [], "two_seconds": []} for m in modes}
    for _ in range(repeats):
        for m in modes:
            one = run_once(folder, tmp / ("out" + m.replace(" ", "")), m)
            results[m]["seconds"].append(one["seconds"])
            results[m]["cpu"].append(one["cpu"])
            results[m]["two_seconds"].append(run_once(two, tmp / "out-two", m)["seconds"])
    base = tmp / ("out" + modes[0].replace(" ", ""))
    for m in modes:
        results[m]["same_bytes_as_first"] = _same_files(base, tmp / ("out" + m.replace(" ", "")))
        mem = run_once(folder, tmp / "mem", m, sample=True)
        results[m].update({k: v for k, v in mem.items() if k not in ("seconds", "cpu")})
    first = results[modes[0]]["seconds"]
    for m in modes:
        s = results[m]["seconds"]
        results[m]["photos_per_s"] = count / statistics.median(s)
        results[m]["best_photos_per_s"] = count / min(s)
        results[m]["cpu_s_per_photo"] = statistics.median(results[m]["cpu"]) / count
        results[m]["cores_busy"] = statistics.median(c / t for c, t in zip(results[m]["cpu"], s))
        results[m]["speedup_per_repeat"] = [a / b for a, b in zip(first, s)]
        results[m]["fixed_seconds"] = statistics.median(results[m]["two_seconds"])
        results[m]["pace_photos_per_s"] = statistics.median(
            (count - 2) / max(1e-9, a - b) for a, b in zip(s, results[m]["two_seconds"]))
    return {"count": count, "repeats": repeats, "size": SIZE, "modes": results}


def to_markdown(res: dict) -> str:
    lines = [f"{res['count']} JPEGs of {res['size'][0]}×{res['size'][1]} (3 MP), one face each; "
             f"{res['repeats']} repeats, modes in turn; whole `smile` runs (start-up included)\n",
             "| mode | photos/s (median) | best | speed-up vs first mode, per repeat | seconds for 2 photos (start-up) "
             "| photos/s after start-up | CPU s/photo | cores busy | same bytes | peak RSS (sum of process peaks) | peak PSS | processes |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for m, r in res["modes"].items():
        sp = ", ".join(f"{x:.2f}×" for x in r["speedup_per_repeat"])
        rss = f"{r['rss_mb']:.0f} MB" if "rss_mb" in r else "–"
        pss = f"{r['pss_mb']:.0f} MB" if "pss_mb" in r else "–"
        lines.append(f"| `{m}` | {r['photos_per_s']:.2f} | {r['best_photos_per_s']:.2f} | {sp} | "
                     f"{r['fixed_seconds']:.1f} | {r['pace_photos_per_s']:.2f} | "
                     f"{r['cpu_s_per_photo']:.3f} | {r['cores_busy']:.2f} | "
                     f"{'yes' if r['same_bytes_as_first'] else '**no**'} | {rss} | {pss} | {r.get('processes', '–')} |")
    modes = list(res["modes"])
    if "-j 1" in res["modes"] and "-j 2" in res["modes"]:
        a, b = res["modes"]["-j 1"], res["modes"]["-j 2"]
        ratio = statistics.median(b["speedup_per_repeat"])
        lines.append("")
        lines.append(f"`-j 2` / `-j 1`: {ratio:.2f}× (median of the per-repeat ratios; target ≥ 1.7×)")
        if "rss_mb" in a and "rss_mb" in b:
            lines.append(f"peak memory `-j 2`: {b['rss_mb']:.0f} MB RSS / {b['pss_mb']:.0f} MB PSS; "
                         f"target ≤ 2 × `-j 1` + 100 MB = {2 * a['rss_mb'] + 100:.0f} MB RSS / {2 * a['pss_mb'] + 100:.0f} MB PSS")
    if any(m.startswith("--ray") for m in modes) and "-j 2" in res["modes"]:
        m = next(m for m in modes if m.startswith("--ray"))
        r, j2 = res["modes"][m], res["modes"]["-j 2"]
        per = [a / b for a, b in zip(r["speedup_per_repeat"], j2["speedup_per_repeat"])]
        lines.append(f"(`{m}`: CPU time of Ray's processes that `smile` does not wait for is not counted)")
        lines.append(f"`{m}` / `-j 2`: {statistics.median(per):.2f}× (median of the per-repeat ratios: "
                     f"{', '.join(f'{x:.2f}×' for x in per)}; target ≥ 0.75×); after start-up "
                     f"{r['pace_photos_per_s'] / j2['pace_photos_per_s']:.2f}×; start-up "
                     f"{r['fixed_seconds']:.1f} s against {j2['fixed_seconds']:.1f} s")
    return "\n".join(lines)
