"""The training configuration: ``training/config.toml`` read once into typed dataclasses.

``config.toml`` is the one source of values.  A config file given with ``--config`` is merged
over it (tables key by key, arrays and values replaced), so it names only what it changes;
a key config.toml does not know is an error.  Each step loads a :class:`Config` once and
passes the parts it needs down; nothing below a step's ``main`` reads a file of settings.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

#: The repository root (the folder holding ``training/``).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The configuration file every other one is merged over.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.toml"

#: Environment variable overriding ``[paths] cache_dir``.
CACHE_ENV = "SMILE_TRAINING_CACHE"

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file that does not fit config.toml (unknown key, wrong kind of value)."""


@dataclass(frozen=True)
class Paths:
    """``[paths]``, both absolute (relative ones are taken from the repository root)."""

    data_dir: Path  #: the face photographs (never committed)
    cache_dir: Path  #: everything derived from them (``SMILE_TRAINING_CACHE`` overrides it)


@dataclass(frozen=True)
class PrepareConfig:
    """``[prepare]``: detection, alignment and splits (``training.prepare``)."""

    crop_size: int  #: side of the cached crops (``crops_<size>.npy``)
    seed: int  #: of the person-wise split
    val_fraction: float  #: share of people in the validation split
    test_fraction: float  #: share of people in the test split
    min_face_px: int  #: faces narrower than this (detector box, source px) are dropped


@dataclass(frozen=True)
class DirectionConfig:
    """``[direction]`` (``training.direction``)."""

    seed: int  #: of the split-half test
    #: random halvings of the people for the split-half cosine (how stable the direction is)
    split_half_repeats: int


@dataclass(frozen=True)
class TeacherConfig:
    """``[teacher]``: how the teacher moves landmarks and which mouths it pastes (``training.teacher``)."""

    keep_donors: int  #: the best this many donors of donors.npz
    donor_pool: int  #: each paste draws from the this-many donors closest in opening
    geometry: str  #: "linear" (λ·Δ) or "real" (``training.geometry``)
    open_ramp: tuple[float, float]  #: new inner-lip gap (/ mouth width) over which the mouth fades in


@dataclass(frozen=True)
class ClassifierConfig:
    """``[classifier]`` (``training.classifier``)."""

    input_size: int
    epochs: int
    batch_size: int
    lr: float
    threads: int
    seed: int
    neutral_below: float
    smiling_above: float


@dataclass(frozen=True)
class PairsConfig:
    """``[pairs]``: the teacher's contact sheet (``python -m training pairs --sheet N``)."""

    size: int


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's loss terms (a stage's ``weights``); a term left out has this default."""

    l1: float = 1.0  #: composited output vs. the teacher's target
    ssim: float = 0.5  #: 1 − SSIM of the same
    flow: float = 0.1  #: flow vs. the teacher's flow
    mask: float = 0.5  #: mask vs. the teacher's (class-balanced cross-entropy)
    tv: float = 0.05  #: total variation of the flow
    identity0: float = 1.0  #: output vs. input at λ = 0
    adv: float = 0.0  #: hinge GAN term on the mouth region
    feat: float = 0.0  #: discriminator feature matching against the target
    rank: float = 0.0  #: the smile classifier ranks output vs. input by the sign of λ
    id: float = 0.0  #: dlib descriptor distance input → output
    rgb: float = 0.0  #: RGB head vs. the target under the teacher's mask
    uv: float = 0.0  #: TeethAtlas picture coordinates vs. the teacher's (atlas stages)

    @classmethod
    def from_dict(cls, d: dict) -> "LossWeights":
        """Build from a config table; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        bad = set(d) - known
        if bad:
            raise ConfigError(f"unknown loss weight(s) {sorted(bad)}; known: {sorted(known)}")
        return cls(**{k: float(v) for k, v in d.items()})


@dataclass(frozen=True)
class Stage:
    """One curriculum stage (a ``[[train.stages]]`` table); a field left out keeps this default."""

    name: str
    until: float = 1.0  #: fraction of total_steps at which the stage ends
    until_step: int | None = None  #: or the step at which it ends (takes precedence over ``until``)
    size: int = 128
    lam_min: float = 0.0
    lam_max: float = 1.5
    batch_size: int | None = None
    #: teacher overrides for this stage (default: ``[teacher]``)
    keep_donors: int | None = None
    donor_pool: int | None = None
    #: probability of a real smiling input (the teacher then mostly keeps its teeth)
    smiler_p: float = 0.0
    #: the teacher pastes the drawn mouth (``training.teeth``) and the net draws its RGB by
    #: sampling the same picture (``nets.TeethAtlas``; needs ``[train.net] teeth_atlas = true``)
    atlas: bool = False
    #: how the teacher moves the landmarks: "linear" or "real" (``training.geometry``); default ``[teacher]``
    geometry: str | None = None
    #: the teacher's mouth opacity ramp (``Teacher.open_ramp``); default ``[teacher] open_ramp``
    open_ramp: tuple[float, float] | None = None
    weights: LossWeights = field(default_factory=LossWeights)

    def teacher_config(self, base: TeacherConfig) -> TeacherConfig:
        """``[teacher]`` with this stage's overrides."""
        return TeacherConfig(
            keep_donors=base.keep_donors if self.keep_donors is None else int(self.keep_donors),
            donor_pool=base.donor_pool if self.donor_pool is None else int(self.donor_pool),
            geometry=base.geometry if self.geometry is None else self.geometry,
            open_ramp=base.open_ramp if self.open_ramp is None else self.open_ramp,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Stage":
        """Build from a ``[[train.stages]]`` table."""
        d = dict(d)
        w = LossWeights.from_dict(d.pop("weights", {}))
        if d.get("open_ramp") is not None:
            d["open_ramp"] = tuple(float(x) for x in d["open_ramp"])
        return _build(cls, d, "train.stages", weights=w)


@dataclass(frozen=True)
class TrainConfig:
    """``[train]`` (with ``[train.gpu]`` merged over it for ``--gpu``): the network's training recipe."""

    arch: str
    run_name: str
    seed: int
    threads: int
    num_workers: int
    batch_size: int
    lr: float
    lr_d: float
    betas: tuple[float, float]
    grad_clip: float
    ema_decay: float
    total_steps: int
    max_minutes: float
    checkpoint_minutes: float
    log_every: int
    val_every: int
    val_faces: int
    val_lams: tuple[float, ...]
    plateau_factor: float
    plateau_patience: int
    min_lr: float
    disc_width: int
    rank_margin: float
    #: keyword arguments of the network (``[train.net]``, see ``training.nets``)
    net: dict[str, Any]
    stages: tuple[Stage, ...]

    def net_kwargs(self) -> dict[str, Any]:
        """``[train.net]`` as keyword arguments of ``nets.build_net`` (lists become tuples)."""
        kw = dict(self.net)
        if "widths" in kw:
            kw["widths"] = tuple(kw["widths"])
        return kw

    def to_dict(self) -> dict[str, Any]:
        """Plain values (stored in checkpoints; ``training.export`` writes the model card from them)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ExportConfig:
    """``[export]`` (``training.export``)."""

    name: str
    model_version: str
    size: int
    strength_min: float
    strength_max: float
    tolerance: float
    flow_tolerance: float
    fp16_tolerance: float


@dataclass(frozen=True)
class EvaluateConfig:
    """``[evaluate]`` (``training.evaluate``, ``training.teacher_realism``)."""

    faces: int
    seed: int
    lams: tuple[float, ...]
    sheet_rows: int
    threads: int
    teacher: str
    realism_lams: tuple[float, ...]
    realism_faces: int
    realism_folds: int
    realism_repeats: int
    realism_l2: float
    realism_smilers: bool = True
    trained_judge_faces: int = 700
    trained_judge_bands: tuple[str, ...] = ("fine", "coarse")
    geometry_lams: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)
    #: the realism test again with these composites (:data:`PHOTO_COMPOSITES`): what ``smile``
    #: makes on the faces' source photos and what it writes; () skips it
    photo_composites: tuple[str, ...] = ("photo", "saved")
    #: the smile bars on every neutral face of the split as well as on the realism sample's
    smile_bars_every: bool = True

    def __post_init__(self) -> None:
        bad = [b for b in self.trained_judge_bands if b not in JUDGE_BANDS]
        if bad:
            raise ValueError(f"trained_judge_bands: unknown {bad}; choose from {list(JUDGE_BANDS)}")
        bad = [c for c in self.photo_composites if c not in PHOTO_COMPOSITES]
        if bad:
            raise ValueError(f"photo_composites: unknown {bad}; choose from {list(PHOTO_COMPOSITES)}")


#: The evaluation's composites that edit each face's source photo (``training.evaluate.COMPOSITES``):
#: ``photo``, at the photo's own resolution, cut again; ``saved``, that photo as ``smile`` writes it, read back.
PHOTO_COMPOSITES = ("photo", "saved")

#: The scales of the lower face the trained judge can be run on alone (``[evaluate]
#: trained_judge_bands``; what each is: :func:`training.realism.band_features`).
JUDGE_BANDS = ("fine", "coarse")


@dataclass(frozen=True)
class MouthConfig:
    """``[mouth]`` (``training.mouth``: the mouth network, self-supervised mouth completion)."""

    min_open: float
    min_face_px: int
    min_teeth: float
    grow_max: int
    reach_max: int
    steps: int
    batch: int
    width: int
    lr: float
    lr_critic: float
    critic_steps: int
    w_hole: float
    w_edge: float
    w_outside: float
    w_adv: float
    warmup: int
    save_every: int
    seed: int
    sigma_px: float = 9.0


@dataclass(frozen=True)
class TuneConfig:
    """``[tune]`` (``training.tune``: the shipped model tuned against real smiles)."""

    minutes: float
    batch: int
    lr: float
    net_lr_scale: float
    lr_d: float
    lam: tuple[float, float]
    lam_neg: tuple[float, float]
    neg_share: float
    w_adv: float
    w_anchor: float
    w_mask: float
    w_rank: float
    w_shade: float
    shade_grid: int
    disc_width: int
    d_warmup: int
    threads: int
    checkpoint_minutes: float
    snapshot_every: int
    seed: int
    #: what learns: any of "net" (the smile network), "shade" (the shared shade field), "mouth"
    #: (the mouth network, at ``lr × mouth_lr_scale``, its fill anchored to its own by ``w_fill``)
    parts: tuple[str, ...]
    #: what the discriminator sees: this window of the crop (x0, y0, x1, y1, fractions), grey, at this (height, width)
    disc_window: tuple[float, float, float, float]
    disc_size: tuple[int, int]
    mouth_lr_scale: float
    w_fill: float
    w_fill_chroma: float
    #: the anchor weighs the flow and mask this much more (1 + hold) inside the model's own opening
    #: (its mask above 0.05, grown by ``hold_margin`` crop pixels): 0 = the same everywhere
    hold_opening: float = 0.0
    hold_margin: int = 4
    #: weight of dlib's descriptor distance between each judged edit and its input (issue 15's identity
    #: measure, :class:`training.identity.FaceDescriptor`): 0 = no identity term
    w_identity: float = 0.0
    #: the identity term weighs only the judged edits at this λ and above
    identity_from: float = 0.0
    #: the crease network (part "crease", :mod:`training.crease`): its width, its learning rate / lr,
    #: and the weight of the mean square of the log gain it adds
    crease_width: int = 8
    crease_lr_scale: float = 1.0
    w_crease: float = 0.0
    #: the discriminator sees only the fine band of its window (the window less its blur of this σ, in
    #: its own pixels; :func:`training.tune.fine_band`): 0 = the whole window
    disc_fine: float = 0.0
    #: the edits' HOG statistics of the lower face pulled towards real smiles' (:mod:`training.hog_stats`):
    #: its weight (0 = none), with the fine band's HOG too, from this many real smiles of the train
    #: split (each also mirrored), the edits' running mean (``stat_kind = "mean"``) kept with this decay
    w_stat: float = 0.0
    stat_fine: bool = True
    stat_reals: int = 2000
    stat_decay: float = 0.9
    #: how the edits meet real smiles' statistics: "mean" or "mmd" (training.hog_stats.STAT_KINDS)
    stat_kind: str = "mean"
    #: ... on the judged edits at this λ and above only
    stat_from: float = 0.0
    #: ... and below this λ only (inf: no upper end)
    stat_to: float = float("inf")
    #: ``stat_kind = "linear"``: the logistic critic's L2 penalty (on the sum of its squared weights)
    stat_critic_l2: float = 1e-2
    #: ... and how many of the latest edits it learns from (against as many real smiles)
    stat_critic_buffer: int = 240
    #: a box of the crop (x0, y0, x1, y1, fractions) painted mid-grey before the term's features, in the
    #: edits and the real smiles alike: what is in it does not count (empty: none)
    stat_hide: tuple[float, ...] = ()
    #: the share of the squared distance that the soft LBP histograms carry (training.hog_stats.soft_lbp;
    #: 0: HOG only, as model 1.11.0)
    stat_lbp: float = 0.0
    #: the anchor weighs the faces below ``stat_from`` this many times more (1: the same as the others),
    #: so that a term on the strong edits leaves the weaker ones where they were
    anchor_below: float = 1.0
    #: the smile classifier's logit of the judged edits at ``floor_from`` and above held at ``smile_floor``
    #: or more (:func:`training.losses.smile_floor`), weighted by this (0: none)
    w_floor: float = 0.0
    smile_floor: float = 1.0
    floor_from: float = 1.5
    #: the edits at ``reach_low`` ≤ λ ≤ ``reach_high`` asked to read, by the engine's own measure (the input's
    #: face mesh moved by the edit's flow), as at least ``reach_share`` × λ of a smile
    #: (:func:`training.losses.smile_reach`), weighted by this (0: none)
    w_reach: float = 0.0
    reach_share: float = 0.5
    reach_low: float = 0.75
    reach_high: float = 1.5


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``train`` is the CPU recipe, :meth:`train_recipe` picks one."""

    paths: Paths
    prepare: PrepareConfig
    direction: DirectionConfig
    teacher: TeacherConfig
    classifier: ClassifierConfig
    pairs: PairsConfig
    train: TrainConfig
    train_gpu: TrainConfig
    export: ExportConfig
    evaluate: EvaluateConfig
    mouth: MouthConfig
    tune: TuneConfig

    def train_recipe(self, gpu: bool) -> TrainConfig:
        """``[train]``, or ``[train]`` with ``[train.gpu]`` merged over it."""
        return self.train_gpu if gpu else self.train

    @property
    def cache(self) -> Path:
        """The cache folder (created if missing)."""
        self.paths.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.paths.cache_dir

    @property
    def donor_path(self) -> Path:
        """``cache_dir/donors.npz``: the teacher's bank of real open mouths."""
        return self.paths.cache_dir / "donors.npz"

    @property
    def classifier_path(self) -> Path:
        """``cache_dir/classifier.pt``: the smile classifier."""
        return self.paths.cache_dir / "classifier.pt"

    def run_dir(self, name: str | None = None) -> Path:
        """``cache_dir/runs/<name>`` (default ``[train] run_name``), not created."""
        return self.paths.cache_dir / "runs" / (name or self.train.run_name)


def _merge(base: dict[str, Any], over: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: tables key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        name = f"{where}.{k}" if where else k
        if k not in base:
            raise ConfigError(f"unknown config key [{name}] (config.toml has none)")
        if isinstance(v, dict) and isinstance(base[k], dict) and k != "net":
            out[k] = _merge(base[k], v, name)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _build(cls: type[T], table: dict[str, Any], where: str, **given: Any) -> T:
    """``cls(**table)`` with tuples for lists; a missing or unknown key is a :class:`ConfigError`."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(table) - names - set(given)
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{where}]")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items() if k not in given}
    try:
        return cls(**values, **given)
    except (TypeError, ValueError) as exc:  # a missing key, or a value a table's own check refuses
        raise ConfigError(f"[{where}]: {exc}") from None


def _train(table: dict[str, Any], where: str) -> TrainConfig:
    t = dict(table)
    t.pop("gpu", None)
    stages = tuple(Stage.from_dict(s) for s in t.pop("stages", []))
    if not stages:
        raise ConfigError(f"config has no [[{where}.stages]]")
    return _build(TrainConfig, t, where, stages=stages, net=dict(t.pop("net", {})))


def _absolute(p: str | Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def load_config(path: str | Path | None = None) -> Config:
    """Read config.toml, merge the file ``path`` over it (when given) and build the dataclasses.

    ``[paths]`` become absolute (relative to the repository root); ``SMILE_TRAINING_CACHE``
    overrides ``cache_dir``.  Raises ``FileNotFoundError``, ``tomllib.TOMLDecodeError`` or
    :class:`ConfigError`.
    """
    with open(DEFAULT_CONFIG, "rb") as fh:
        raw = tomllib.load(fh)
    if path is not None:
        with open(path, "rb") as fh:
            raw = _merge(raw, tomllib.load(fh))
    paths = Paths(_absolute(raw["paths"]["data_dir"]), _absolute(os.environ.get(CACHE_ENV) or raw["paths"]["cache_dir"]))
    train = raw["train"]
    gpu = {k: v for k, v in _merge(train, train.get("gpu", {})).items() if k != "gpu"}
    return Config(
        paths=paths,
        prepare=_build(PrepareConfig, raw["prepare"], "prepare"),
        direction=_build(DirectionConfig, raw["direction"], "direction"),
        teacher=_build(TeacherConfig, raw["teacher"], "teacher"),
        classifier=_build(ClassifierConfig, raw["classifier"], "classifier"),
        pairs=_build(PairsConfig, raw["pairs"], "pairs"),
        train=_train(train, "train"),
        train_gpu=_train(gpu, "train.gpu"),
        export=_build(ExportConfig, raw["export"], "export"),
        evaluate=_build(EvaluateConfig, raw["evaluate"], "evaluate"),
        mouth=_build(MouthConfig, raw["mouth"], "mouth"),
        tune=_build(TuneConfig, raw["tune"], "tune"),
    )


def cache_dir(cfg: Config) -> Path:
    """The cache folder (created if missing)."""
    return cfg.cache


def prepared_dir(cfg: Config) -> Path:
    """Folder holding ``crops_<size>.npy`` and ``index.npz`` (created if missing)."""
    p = cfg.cache / "prepared"
    p.mkdir(parents=True, exist_ok=True)
    return p


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (works under output capture)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def get_logger(step: str, cfg: Config) -> logging.Logger:
    """A logger writing to stdout and to ``cache_dir/logs/<step>.log``."""
    log = logging.getLogger(f"training.{step}")
    for h in list(log.handlers):  # a new call may name another cache folder
        log.removeHandler(h)
        h.close()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(name)s %(message)s", "%H:%M:%S")
    out = _StdoutHandler()
    out.setFormatter(fmt)
    log.addHandler(out)
    logs = cache_dir(cfg) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(logs / f"{step}.log")
    fh.setFormatter(fmt)
    log.addHandler(fh)
    return log
