"""The GIMP 3 plug-in inside the real GIMP (3.0.4 from Debian 13, in a chroot, headless).

Needs root (to build and enter the chroot, see tests/hosts/gimp/setup_chroot.sh); it skips
only when the machine cannot build a chroot at all, and fails on anything else.  The plug-in
is installed with ``smile install-plugin gimp`` and runs this venv's ``smile worker`` (the
venv, its base Python and the sources are bind-mounted into the chroot at the same paths;
see engine_venv) with the fixture model: a pure 3-pixel translation flow, so the face region
visibly changes, and a strength range of its own (MODEL_RANGE), which the engine enforces.
The dialog runs against a stand-in engine whose model has yet another range: the slider it
builds from the greeting starts inside that range.  Undo and redo are pressed (Ctrl+Z, Ctrl+Y) in
the image's window of GIMP's full interface under Xvfb.  About a minute once the chroot exists (building it takes ~3 minutes).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.host

HOST = Path(__file__).resolve().parent / "hosts" / "gimp"
REPO = HOST.parents[2]
INSTALL_HINT = "pip install /path/to/smile && smile install-plugin gimp (/path/to/smile: the Smile project folder, or its wheel)"
# Where the astronaut's face is (detect_faces: box (175, 76, 266, 167)), with a generous margin
# for the feathered edit: (row0, row1, col0, col1).
FACE_ZONE = (30, 240, 120, 330)
STUB_CRASH_STRENGTH = 3.25  # tests/hosts/gimp/stub_smile.py dies on this strength
STUB_RANGE_LOW = 1.5  # the stub's model's lowest strength (stub_smile.STRENGTH_RANGE)
MODEL_RANGE = ("-1", "3")  # the fixture model's strength range (the bundled model's is [-2, 4])


# --------------------------------------------------------------------------- helpers
def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture(scope="module")
def gimp_root() -> Path:
    """The Debian 13 chroot with GIMP 3 (built on first use, then cached)."""
    missing = [tool for tool in ("chroot", "unshare", "mount") if shutil.which(tool) is None]
    if sys.platform != "linux" or os.geteuid() != 0 or missing:
        pytest.skip("GIMP host test skipped: it needs Linux and root (with chroot, unshare, mount) "
                    "to run GIMP 3 in a Debian 13 chroot")
    done = subprocess.run(["bash", str(HOST / "setup_chroot.sh")], capture_output=True, text=True,
                          timeout=3600)
    if done.returncode == 2:
        pytest.skip(f"GIMP host test skipped: cannot build a chroot here: {_tail(done.stderr, 1)}")
    assert done.returncode == 0, f"setup_chroot.sh failed ({done.returncode}):\n{_tail(done.stderr)}"
    return Path(done.stdout.split()[-1])


def engine_binds() -> list[str]:
    """Host paths `smile worker` needs inside the chroot: this venv, its base Python, the sources
    (plus any in SMILE_HOST_BINDS, os.pathsep-separated, e.g. folders a venv's .pth files name)."""
    extra = os.environ.get("SMILE_HOST_BINDS", "").split(os.pathsep)
    paths = {sys.prefix, str(REPO), *filter(None, extra)}
    if sys.base_prefix in ("/", "/usr", "/usr/local"):  # a system Python: bind only its own files
        paths |= {os.path.realpath(sys.executable), sysconfig.get_paths()["stdlib"]}
    else:
        paths.add(sys.base_prefix)
    return sorted(paths)


def engine_venv(folder: Path) -> Path:
    """A venv for the engine that also works inside the chroot; returns its python.

    A venv's ``bin/python`` is usually a symlink such as ``/usr/bin/python3``, which inside the
    chroot would name Debian 13's Python 3.13.  So make a venv with a *copy* of this
    interpreter whose site-packages include this venv's (the project and its dependencies).
    """
    subprocess.run([sys.executable, "-m", "venv", "--copies", "--without-pip", str(folder)],
                   check=True, capture_output=True, timeout=120)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "smile_test_engine.pth").write_text(
        "".join(f"import site; site.addsitedir({path!r})\n" for path in sorted(ours)))
    return python


def install_plugin(home: Path, work: Path) -> Path:
    """Install the plug-in into the GIMP profile under ``home`` with `smile install-plugin gimp`,
    run by the engine venv's Python (so smile-engine.json names that Python)."""
    plug_ins = home / ".config" / "GIMP" / "3.0" / "plug-ins"
    python = engine_venv(work / "engine-venv")
    done = subprocess.run([str(python), "-m", "smile_cli", "install-plugin", "gimp",
                           "--dir", str(plug_ins)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (f"smile install-plugin gimp failed (is the project installed in "
                                  f"this venv? pip install .):\n{done.stdout}{done.stderr}")
    folder = plug_ins / "smile"
    assert os.access(folder / "smile.py", os.X_OK), f"no executable smile.py in {folder}"
    record = json.loads((folder / "smile-engine.json").read_text())
    assert record["command"][-1] == "worker" and Path(record["command"][0]).is_file(), record
    return folder


def run_gimp(root: Path, home: Path, work: Path, cases: list[dict], env: dict[str, str],
             binds: list[str] = (), dialog: str | None = None, gui: bool = False,
             dialog_key: str = "Return") -> tuple[dict, str]:
    """Run batch_smile.py with ``cases`` in the chroot's gimp-console; return (report, console).

    ``dialog``: run under Xvfb and press ``dialog_key`` in the window with that title.  ``gui``: run GIMP's
    full interface under Xvfb (for cases that press keys in an image window).
    """
    job = {"procedure": "plug-in-smile", "report": str(work / "report.json"), "cases": cases}
    (work / "job.json").write_text(json.dumps(job))
    command = ["bash", str(HOST / "run_gimp.sh"), str(root), str(home), str(HOST / "batch_smile.py"),
               "--bind", str(work), "--bind", str(HOST)]
    for path in binds:
        command += ["--bind", path]
    for name, value in {"SMILE_GIMP_JOB": str(work / "job.json"), **env}.items():
        command += ["--env", f"{name}={value}"]
    if dialog:
        command += ["--accept-dialog", dialog, "--dialog-key", dialog_key]
    if gui:
        command.append("--gui")
    limit = 120 if dialog else 300  # GIMP waits forever on a dialog nobody answers
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "SMILE_GIMP_TIMEOUT": str(limit)})
    console = done.stdout + done.stderr
    assert done.returncode == 0, f"gimp-console failed ({done.returncode}):\n{_tail(console)}"
    report = json.loads((work / "report.json").read_text())
    assert report["found"], f"GIMP did not register plug-in-smile:\n{_tail(console)}"
    return report, console


def pixels(layer: dict) -> np.ndarray:
    """A dumped layer as an (H, W, 4) uint8 array."""
    return np.fromfile(layer["pixels"], np.uint8).reshape(layer["height"], layer["width"], 4)


def mask_pixels(layer: dict) -> np.ndarray:
    """A dumped layer mask as an (H, W) uint8 array."""
    return np.fromfile(layer["mask_pixels"], np.uint8).reshape(layer["height"], layer["width"])


def assert_untouched(case: dict) -> None:
    """The failed run left exactly the layers it found, pixel for pixel."""
    assert len(case["after"]) == len(case["before"]) == 1
    assert case["after"][0]["name"] == case["before"][0]["name"]
    assert np.array_equal(pixels(case["after"][0]), pixels(case["before"][0]))


def case(name: str, image: Path, work: Path, **extra) -> dict:
    return {"name": name, "input": str(image), "dump": str(work / name), **extra}


# --------------------------------------------------------------------------- the real engine
@pytest.fixture(scope="module")
def real_run(gimp_root: Path, tmp_path_factory) -> tuple[dict, str]:
    """One GIMP session with the real engine (fixture model) on a few cases."""
    sys.path.insert(0, str(Path(__file__).parent))
    from fixture_model import build_fixture_model
    from portrait import neutral_astronaut, smiling_astronaut

    work = tmp_path_factory.mktemp("gimp-real")
    home = work / "home"
    install_plugin(home, work)
    model = build_fixture_model(work / "fixture.onnx", dx=3.0, dy=0.0, mask=0.0, rgb=0.0,
                                strength_range=MODEL_RANGE)
    portrait, plain = work / "astronaut.png", work / "noface.png"
    Image.fromarray(np.array(neutral_astronaut())).save(portrait)
    smiling = work / "smiling.png"
    Image.fromarray(np.array(smiling_astronaut())).save(smiling)
    two = work / "two.png"  # the astronaut and her mirror image, side by side
    Image.fromarray(np.hstack([np.array(neutral_astronaut()), np.array(neutral_astronaut())[:, ::-1]])).save(two)
    rows, cols = np.mgrid[0:240, 0:320]
    Image.fromarray(np.dstack([cols % 256, rows, (cols + rows) % 256]).astype(np.uint8)).save(plain)
    cases = [
        case("portrait", portrait, work),
        case("in-place", portrait, work, args={"strength": 2.0, "faces": "largest", "new-layer": False}),
        # cuts through the face (its centre x=220 is inside; the edit would reach x=281)
        case("selected", portrait, work, select=[100, 0, 140, 260]),
        case("selection-elsewhere", portrait, work, select=[300, 330, 200, 170]),
        case("no-face", plain, work),
        case("too-strong", portrait, work, args={"strength": 3.5}),  # beyond this model's range
        case("already-smiling", smiling, work),  # she smiles more than strength 1 asks for
        case("two-faces", two, work),
        case("two-faces-largest", two, work, args={"faces": "largest"}),
    ]
    return run_gimp(gimp_root, home, work, cases, {"SMILE_MODEL": str(model)}, engine_binds())


def test_plugin_is_registered_in_the_filters_menu(real_run):
    report, _ = real_run
    assert report["menu_label"] == "Smile…"
    assert report["menu_paths"] == ["<Image>/Filters"]
    assert {"strength", "faces", "new-layer", "layer-mask"} <= set(report["arguments"])


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=-1)


def _assert_change_is_on_the_face(changed: np.ndarray) -> None:
    r0, r1, c0, c1 = FACE_ZONE
    assert changed.sum() > 1000, f"only {changed.sum()} pixels changed"
    outside = changed.copy()
    outside[r0:r1, c0:c1] = False
    assert not outside.any(), f"{outside.sum()} pixels changed away from the face, e.g. {np.argwhere(outside)[:3]}"


def test_portrait_gets_a_new_smile_layer(real_run):
    report, console = real_run
    result = report["cases"]["portrait"]
    assert result["success"], f"{result['status']}: {result['error']}\n{_tail(console)}"
    new, source = result["after"]
    assert new["name"] == "Smile (λ=1.0)" and source["name"] == result["before"][0]["name"]
    assert np.array_equal(pixels(source), pixels(result["before"][0])), "the source layer changed"
    _assert_change_is_on_the_face(_changed(pixels(new), pixels(source)))
    assert new["mask"], "the new layer has no layer mask"
    mask = mask_pixels(new)
    assert mask[120, 220] == 255 and mask[450, 450] == 0 and mask[5, 5] == 0
    assert set(np.unique(mask)) <= {0, 255}
    # the mask shows every changed pixel, so the composite is exactly the engine's result
    assert (mask[_changed(pixels(new), pixels(source))] == 255).all()


def test_in_place_edit_changes_only_the_face(real_run):
    result = real_run[0]["cases"]["in-place"]
    assert result["success"], result["error"]
    assert len(result["after"]) == 1
    _assert_change_is_on_the_face(_changed(pixels(result["after"][0]), pixels(result["before"][0])))


def test_selection_limits_the_edit(real_run):
    result = real_run[0]["cases"]["selected"]
    assert result["success"], result["error"]
    new, source = result["after"]
    changed = _changed(pixels(new), pixels(source))
    _assert_change_is_on_the_face(changed)
    outside = changed.copy()
    outside[0:260, 100:240] = False
    assert not outside.any(), "pixels outside the selection changed"


@pytest.mark.parametrize("name, where", [("no-face", "in this layer"),
                                         ("selection-elsewhere", "inside the selection")])
def test_no_face_reports_an_error_and_leaves_the_image(real_run, name, where):
    report, console = real_run
    result = report["cases"][name]
    assert not result["success"] and result["status"] == "execution-error"
    assert f"Smile: no face found {where}" in result["error"]
    assert f"no face found {where}" in console  # GIMP's message output
    assert_untouched(result)


@pytest.mark.parametrize("name, edited", [("two-faces", 2), ("two-faces-largest", 1)])
def test_several_faces_all_or_the_largest(real_run, name, edited):
    result = real_run[0]["cases"][name]
    assert result["success"], result["error"]
    new, source = result["after"]
    changed = _changed(pixels(new), pixels(source))
    r0, r1, c0, c1 = FACE_ZONE
    faces = [changed[r0:r1, c0:c1].sum(), changed[r0:r1, 1024 - c1:1024 - c0].sum()]
    assert sum(count > 1000 for count in faces) == edited, f"changed pixels on each face: {faces}"
    assert changed.sum() == sum(faces), "pixels away from the faces changed"


def test_strength_outside_the_models_range_is_refused_by_the_engine(real_run):
    result = real_run[0]["cases"]["too-strong"]
    assert not result["success"] and result["status"] == "execution-error"
    assert ("Smile: the Smile engine refused the request: strength 3.5 is outside this model's range [-1, 3]"
            in result["error"]), result["error"]
    assert_untouched(result)


def test_a_face_already_smiling_that_much_is_left_and_the_reason_shown(real_run):
    result = real_run[0]["cases"]["already-smiling"]
    assert not result["success"] and result["status"] == "execution-error"
    assert "Smile: no face was changed: already smiling (about strength 1." in result["error"], result["error"]
    assert_untouched(result)


# --------------------------------------------------------------------------- stub engine
def copy_plugin(home: Path) -> None:
    """Install just the plug-in's files and the shared modules (no smile-engine.json) into the GIMP
    profile under ``home``."""
    folder = home / ".config" / "GIMP" / "3.0" / "plug-ins" / "smile"
    folder.mkdir(parents=True)
    for shared in [*(REPO / "plugins" / "gimp" / "smile").glob("*.py"), *(REPO / "plugins" / "common").glob("*.py")]:
        shutil.copy2(shared, folder)
    (folder / "smile.py").chmod(0o755)  # GIMP ignores a plug-in without the execute bit


@pytest.fixture(scope="module")
def stub_run(gimp_root: Path, tmp_path_factory) -> tuple[dict, str, Path]:
    """One GIMP session under Xvfb with a stand-in engine (SMILE_ENGINE=stub_smile.py), whose
    "face" is the centre third of the layer, which it inverts."""
    work = tmp_path_factory.mktemp("gimp-stub")
    home = work / "home"
    copy_plugin(home)
    gray = work / "gray.png"
    Image.fromarray((np.arange(200 * 300) % 251).reshape(200, 300).astype(np.uint8)).save(gray)
    cases = [
        case("crash", gray, work, args={"strength": STUB_CRASH_STRENGTH}),
        case("offset-layer", gray, work, crop_layer=[30, 20, 240, 150], select=[0, 0, 160, 200],
             args={"new-layer": False}),
        case("dialog", gray, work, interactive=True),
        # the layer's own (all white) mask is selected, as GIMP selects a mask it adds
        case("mask-selected", gray, work, hide=[0, 0, 1, 1, 255], drawables="mask"),
        case("two-layers", gray, work, drawables="two"),
        case("channel", gray, work, drawables="channel"),
    ]
    stub = work / "stub_smile.py"
    shutil.copy2(HOST / "stub_smile.py", stub)
    stub.chmod(0o755)
    report, console = run_gimp(gimp_root, home, work, cases, {"SMILE_ENGINE": str(stub)},
                               dialog="Smile…")
    return report, console, home


def test_engine_crash_is_reported_and_leaves_the_image(stub_run):
    crash = stub_run[0]["cases"]["crash"]
    assert not crash["success"] and crash["status"] == "execution-error"
    assert ("Smile: the Smile engine stopped unexpectedly (exit status 3): stub engine: simulated crash"
            in crash["error"])
    assert_untouched(crash)


def test_layer_with_offsets_and_selection_edited_in_place(stub_run):
    result = stub_run[0]["cases"]["offset-layer"]
    assert result["success"], result["error"]
    before, after = pixels(result["before"][0]), pixels(result["after"][0])
    assert result["after"][0]["offsets"] == [30, 20] and before.shape == (150, 240, 4)
    expected = before.copy()
    # centre third of the 240×150 layer, limited to the selection (image x < 160 → layer x < 130)
    expected[50:100, 80:130, :3] = 255 - before[50:100, 80:130, :3]
    assert np.array_equal(after, expected)  # a gray layer travels as gray: no rounding anywhere


def test_dialog_opens_and_runs_with_its_defaults(stub_run):
    """Interactive run under Xvfb: the Smile… dialog appears; Return accepts the defaults.  The
    slider is the stub model's range (from the engine's greeting), so it starts at that range's
    low end, not at the procedure's default 1.0."""
    report, console, home = stub_run
    seen = home / "dialog-seen.txt"
    assert seen.is_file(), f"the Smile… dialog never appeared:\n{_tail(console)}"
    assert seen.read_text().strip() == "Smile…"
    result = report["cases"]["dialog"]
    assert result["success"], f"{result['error']}\n{_tail(console)}"
    new, source = result["after"]
    assert new["name"] == f"Smile (λ={STUB_RANGE_LOW})" and new["mask"]
    changed = _changed(pixels(new), pixels(source))
    assert changed[66:133, 100:200].all() and changed.sum() == 67 * 100  # the stub's centre third


def test_a_selected_layer_mask_smiles_its_layer(stub_run):
    result = stub_run[0]["cases"]["mask-selected"]
    assert result["success"], result["error"]
    new, source = result["after"]
    assert np.array_equal(pixels(source), pixels(result["before"][0])), "the source layer changed"
    changed = _changed(pixels(new), pixels(source))
    assert changed[66:133, 100:200].all() and changed.sum() == 67 * 100  # the stub's centre third


@pytest.mark.parametrize("name, message", [
    ("two-layers", "Smile: 2 layers are selected: select one layer (in the Layers dialog), then run Smile again; "
                   "it edits one layer at a time."),
    ("channel", "Smile: the channel 'Spot' is selected: select the photo's layer in the Layers dialog, then run "
                "Smile again.")])
def test_what_smile_cannot_edit_is_refused_with_one_line(stub_run, name, message):
    result = stub_run[0]["cases"][name]
    assert not result["success"] and result["status"] == "execution-error"
    assert result["error"].strip() == message
    assert not any(layer["name"].startswith("Smile") for layer in result["after"]), "a layer was added"
    assert np.array_equal(pixels(result["after"][-1]), pixels(result["before"][0]))  # (the source, lowest)


@pytest.fixture(scope="module")
def undo_run(gimp_root: Path, tmp_path_factory) -> tuple[dict, str]:
    """GIMP's full interface under Xvfb with the stand-in engine: each case shows its image in a
    window, runs Smile, then presses Ctrl+Z and Ctrl+Y there."""
    work = tmp_path_factory.mktemp("gimp-undo")
    home = work / "home"
    copy_plugin(home)
    gray = work / "gray.png"
    Image.fromarray((np.arange(200 * 300) % 251).reshape(200, 300).astype(np.uint8)).save(gray)
    cases = [case("new-layer", gray, work, undo=True),
             case("in-its-place", gray, work, undo=True, opacity=50.0),  # the source is hidden under it
             case("in-place", gray, work, undo=True, args={"new-layer": False})]
    stub = work / "stub_smile.py"
    shutil.copy2(HOST / "stub_smile.py", stub)
    stub.chmod(0o755)
    return run_gimp(gimp_root, home, work, cases, {"SMILE_ENGINE": str(stub)}, gui=True)


def _same_layers(one: list[dict], other: list[dict]) -> bool:
    return [(layer["name"], layer["visible"], layer["mask"]) for layer in one] == \
        [(layer["name"], layer["visible"], layer["mask"]) for layer in other] and \
        all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(one, other))


@pytest.mark.parametrize("name", ["new-layer", "in-its-place", "in-place"])
def test_one_undo_takes_the_whole_edit_back_and_redo_does_it_again(undo_run, name):
    """In GIMP's own window: one Ctrl+Z gives back the image as it was (the new layer gone, a
    source hidden under the layer in its place shown again, an edit in place undone), and Ctrl+Y
    makes it again, mask included."""
    report, console = undo_run
    result = report["cases"][name]
    assert result["success"], f"{result['error']}\n{_tail(console)}"
    assert not _same_layers(result["after"], result["before"]), "Smile changed nothing"
    assert _same_layers(result["undone"], result["before"]), \
        f"after one Ctrl+Z: {[(layer['name'], layer['visible']) for layer in result['undone']]}"
    assert _same_layers(result["redone"], result["after"]), \
        f"after Ctrl+Y: {[(layer['name'], layer['visible']) for layer in result['redone']]}"


def test_cancelling_the_dialog_leaves_the_image_and_says_nothing(gimp_root, tmp_path):
    home = tmp_path / "home"
    copy_plugin(home)
    stub = tmp_path / "stub_smile.py"
    shutil.copy2(HOST / "stub_smile.py", stub)
    stub.chmod(0o755)
    image = tmp_path / "gray.png"
    Image.fromarray((np.arange(200 * 300) % 251).reshape(200, 300).astype(np.uint8)).save(image)
    report, console = run_gimp(gimp_root, home, tmp_path, [case("cancelled", image, tmp_path, interactive=True)],
                               {"SMILE_ENGINE": str(stub)}, dialog="Smile…", dialog_key="Escape")
    assert (home / "dialog-seen.txt").is_file(), f"the Smile… dialog never appeared:\n{_tail(console)}"
    result = report["cases"]["cancelled"]
    assert result["status"] == "cancel", result
    assert "Smile:" not in console, "a message was shown for a cancelled dialog"
    assert_untouched(result)


def test_missing_engine_says_how_to_install_it(gimp_root, tmp_path):
    home = tmp_path / "home"
    copy_plugin(home)
    image = tmp_path / "plain.png"
    Image.new("RGB", (64, 48), (200, 100, 50)).save(image)
    report, console = run_gimp(gimp_root, home, tmp_path, [case("not-installed", image, tmp_path)], {})
    result = report["cases"]["not-installed"]
    assert not result["success"]
    assert f"Smile: the Smile engine is not installed. Install it with: {INSTALL_HINT}" in result["error"]
    assert INSTALL_HINT in console
    assert_untouched(result)
