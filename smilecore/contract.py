"""The model contract: what an ONNX smile model must look like (see docs/model-contract.md)."""
from __future__ import annotations

#: The contract of a model with rgb, mask and flow outputs.
CONTRACT_VERSION = "1"
#: The contract of a model that also has the shade output.
CONTRACT_SHADE = "2"
#: Contracts this engine reads.
CONTRACTS = (CONTRACT_VERSION, CONTRACT_SHADE)

INPUT_FACE = "face"  #: float32 [N,3,S,S], RGB in [-1, 1]
INPUT_STRENGTH = "strength"  #: float32 [N,1], lambda
OUTPUT_RGB = "rgb"  #: float32 [N,3,S,S] in [-1, 1]
OUTPUT_MASK = "mask"  #: float32 [N,1,S,S] in [0, 1]
OUTPUT_FLOW = "flow"  #: float32 [N,2,S,S], backward flow in crop pixels, channel 0 = dx, 1 = dy
OUTPUT_SHADE = "shade"  #: contract 2: float32 [N,1,S,S], log-luminance gain of the kept (warped) pixels
#: contract 2: the shade multiplies (pixel + SHADE_OFFSET) with pixels in [0, 1], so the darkest
#: pixels are not scaled towards black (8 of 255)
SHADE_OFFSET = 8.0 / 255.0
#: the shade is clipped to ± this (a gain between 0.5 and 2)
SHADE_LIMIT = 0.7

#: metadata_props keys every model carries
META_CONTRACT = "smile.contract"
META_SIZE = "smile.size"
#: The largest crop side (``smile.size``) a model may ask for: the engine's own models work at 256; every
#: crop, output and resampling grid grows with its square (a 542-byte model asking for 8192 took 6.65 GB).
MAX_SIZE = 1024
META_TEMPLATE = "smile.template"
META_STRENGTH_MIN = "smile.strength_min"
META_STRENGTH_MAX = "smile.strength_max"
META_MODEL_VERSION = "smile.model_version"
META_LICENSE = "smile.license"
META_NAME = "smile.name"

REQUIRED_META = (META_CONTRACT, META_SIZE, META_TEMPLATE, META_STRENGTH_MIN, META_STRENGTH_MAX, META_MODEL_VERSION, META_LICENSE)
