"""ONNX Runtime session wrapper that checks the model contract (docs/model-contract.md)."""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import contract
from .align import TEMPLATE_VERSION
from .errors import ModelError, UsageError
from .network_io import to_network_input


@dataclass(frozen=True)
class ModelOutput:
    """Network outputs for a batch of crops (float32, NCHW)."""

    rgb: np.ndarray  #: [N,3,S,S] in [-1,1]
    mask: np.ndarray  #: [N,1,S,S] in [0,1]
    flow: np.ndarray  #: [N,2,S,S] backward flow, crop pixels
    shade: np.ndarray | None = None  #: [N,1,S,S] log-luminance gain (contract 2), None: no shading


class SmileModel:
    """One loaded smile model: an ONNX Runtime session plus its contract metadata."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
        """Load the model file ``path`` with ``threads`` ONNX Runtime threads (None: ``SMILE_THREADS``, 0: all
        cores) on ``providers`` (ONNX Runtime's execution providers, default the CPU's; one not available here is
        left out by ONNX Runtime, with its warning)."""
        import onnxruntime as ort

        from .arguments import check_count
        from .registry import check_model_file

        if not isinstance(path, (str, os.PathLike)):
            raise UsageError(f"model path must be a file path, not {type(path).__name__}")
        if threads is not None:
            threads = check_count(threads, "threads", 0, "threads")
        if providers is not None:  # (names, or (name, options) pairs; ONNX Runtime falls back to the CPU's itself)
            def named(p) -> bool:
                return isinstance(p, str) or (isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                                              and isinstance(p[1], dict))

            if isinstance(providers, (str, bytes)) or not isinstance(providers, (list, tuple)) or not providers \
                    or not all(named(p) for p in providers):
                raise UsageError("providers must be a list of ONNX Runtime provider names or (name, options) pairs "
                                 f"(here: {', '.join(ort.get_available_providers())})")
        self.path = check_model_file(Path(path))
        if self.path.suffix.lower() != ".onnx":
            raise ModelError(f"{self.path} is not an .onnx file: only ONNX models are loaded")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        n = threads if threads is not None else env_threads()
        if n > 0:
            opts.intra_op_num_threads = n
            opts.inter_op_num_threads = 1
        try:
            # onnxruntime prints an "EP Error" banner on stdout before retrying a file it cannot read:
            # stdout belongs to the --json report (and the worker's replies), so it is kept off it
            with contextlib.redirect_stdout(io.StringIO()):
                self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                    providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several private exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            unreadable = ("INVALID_PROTOBUF", "Protobuf parsing failed", "No graph was found")  # the last: an empty file
            if any(t in first for t in unreadable) or isinstance(exc, UnicodeError):
                raise ModelError(f"cannot load model {self.path}: it is not a readable ONNX model (truncated, corrupt, "
                                 "or another kind of file named .onnx); use the model's original file") from None
            raise ModelError(f"cannot load model {self.path}: {first[:200]}") from None
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_contract()
        self.size = int(self.meta[contract.META_SIZE])
        self.strength_range = (float(self.meta[contract.META_STRENGTH_MIN]), float(self.meta[contract.META_STRENGTH_MAX]))
        self.version = self.meta[contract.META_MODEL_VERSION]
        self.license = self.meta[contract.META_LICENSE]
        self.name = self.meta.get(contract.META_NAME, self.path.stem)

    def _check_contract(self) -> None:
        where = f"model {self.path.name}"
        missing = [k for k in contract.REQUIRED_META if k not in self.meta]
        if missing:
            raise ModelError(f"{where} is not a Smile model: metadata {', '.join(missing)} missing")
        if self.meta[contract.META_CONTRACT] not in contract.CONTRACTS:
            raise ModelError(
                f"{where} follows model contract {self.meta[contract.META_CONTRACT]}, this engine reads contracts "
                f"{' and '.join(contract.CONTRACTS)}: update smile-filter or use a matching model"
            )
        if self.meta[contract.META_TEMPLATE] != TEMPLATE_VERSION:
            raise ModelError(
                f"{where} was trained for alignment template {self.meta[contract.META_TEMPLATE]!r}, "
                f"this engine aligns faces with {TEMPLATE_VERSION!r}"
            )
        try:
            size = int(self.meta[contract.META_SIZE])
            lo, hi = float(self.meta[contract.META_STRENGTH_MIN]), float(self.meta[contract.META_STRENGTH_MAX])
        except ValueError:
            raise ModelError(f"{where} has unreadable size/strength metadata") from None
        if size < 1 or not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ModelError(f"{where} has impossible metadata: size {size}, strength range "
                             f"[{self.meta[contract.META_STRENGTH_MIN]}, {self.meta[contract.META_STRENGTH_MAX]}] "
                             "(expected finite numbers, min <= max): the model file is broken")
        if size > contract.MAX_SIZE:
            raise ModelError(f"{where} asks for face crops of {size} px; this engine runs models on crops of at most "
                             f"{contract.MAX_SIZE} px (a larger one would take gigabytes of memory)")
        ins = {i.name: i for i in self.session.get_inputs()}
        outs = {o.name: o for o in self.session.get_outputs()}
        for name, channels in ((contract.INPUT_FACE, 3), (contract.INPUT_STRENGTH, 1)):
            if name not in ins:
                raise ModelError(f"{where} has no input named {name!r} (inputs: {', '.join(ins)})")
        for name in self._outputs():
            if name not in outs:
                raise ModelError(f"{where} has no output named {name!r} (outputs: {', '.join(outs)})")
        shape = ins[contract.INPUT_FACE].shape
        if len(shape) != 4 or shape[1] != 3 or any(isinstance(d, int) and d != size for d in shape[2:]):
            raise ModelError(f"{where}: input 'face' has shape {shape}, expected [N,3,{size},{size}]")

    def _outputs(self) -> tuple[str, ...]:
        """The outputs this model's contract requires, in the order :meth:`run` reads them."""
        base = (contract.OUTPUT_RGB, contract.OUTPUT_MASK, contract.OUTPUT_FLOW)
        return base + ((contract.OUTPUT_SHADE,) if self.meta[contract.META_CONTRACT] == contract.CONTRACT_SHADE else ())

    def check_strength(self, strength: float, what: str = "strength") -> None:
        """:class:`UsageError` unless ``strength`` lies in this model's range (``what`` names it in the message)."""
        lo, hi = self.strength_range
        if not lo <= strength <= hi:
            raise UsageError(f"{what} {exact_number(strength)} is outside this model's range [{exact_number(lo)}, {exact_number(hi)}]")

    def run(self, crops: np.ndarray, strength: float | np.ndarray) -> ModelOutput:
        """Run the network on ``crops`` (uint8 [N,S,S,3] RGB) at ``strength``."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"crops must be [N,{self.size},{self.size},3], got {crops.shape}")
        x = to_network_input(crops)
        lam = np.asarray(strength, np.float32).reshape(-1, 1)
        if len(lam) not in (1, len(crops)):
            raise ValueError(f"strength must be one number or one per crop ({len(crops)}), got {len(lam)}")
        lam = np.broadcast_to(lam, (len(crops), 1)).copy()
        names = self._outputs()
        outs = self.session.run(list(names), {contract.INPUT_FACE: np.ascontiguousarray(x), contract.INPUT_STRENGTH: lam})
        n, s = len(crops), self.size
        channels = {contract.OUTPUT_RGB: 3, contract.OUTPUT_MASK: 1, contract.OUTPUT_FLOW: 2, contract.OUTPUT_SHADE: 1}
        for name, arr in zip(names, outs):
            if arr.shape != (n, channels[name], s, s):
                raise ModelError(f"model {self.path.name} returned {name} of shape {arr.shape}, expected {(n, channels[name], s, s)}")
            if not np.isfinite(arr).all():
                raise ModelError(f"model {self.path.name} returned NaN or infinite values in its {name} output: the model file is broken")
        rgb, mask, flow = outs[:3]
        # out-of-range values are clipped: colours to [-1,1], the mask to [0,1], the flow to a few crops,
        # the shade to a gain within [1/2, 2]
        lim = 4.0 * s
        shade = None
        if len(outs) > 3:
            shade = np.clip(outs[3], -contract.SHADE_LIMIT, contract.SHADE_LIMIT, dtype=np.float32)
        return ModelOutput(rgb=np.clip(rgb, -1.0, 1.0, dtype=np.float32), mask=np.clip(mask, 0.0, 1.0, dtype=np.float32),
                           flow=np.clip(flow, -lim, lim, dtype=np.float32), shade=shade)


#: Most threads ``SMILE_THREADS`` may ask for (more is a typo, not a machine).
MAX_THREADS = 1024


def env_threads() -> int:
    """``$SMILE_THREADS``: ONNX Runtime threads, 0 (or unset) = its own choice (all cores).

    Anything but a whole number from 0 to :data:`MAX_THREADS` is a :class:`UsageError` (exit 2)."""
    text = os.environ.get("SMILE_THREADS", "").strip()
    if not text:
        return 0
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_THREADS:
        raise UsageError(f"SMILE_THREADS={text[:40]!r} is not a number of threads: use a whole number from 0 "
                         f"(all cores) to {MAX_THREADS}, or unset it")
    return n


def exact_number(x: float) -> str:
    """``x`` written short (``4``, ``-2``, ``1.5``) but never rounded: ``4.0000001`` stays ``4.0000001``."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))
