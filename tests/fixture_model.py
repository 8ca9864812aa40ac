"""A tiny contract-compliant ONNX model with known outputs, for testing the engine.

``flow = strength * (dx, dy)`` everywhere, ``mask`` and ``rgb`` constant: compositing
can then be checked exactly.  With ``shade`` it follows contract 2: ``shade = strength * shade``
everywhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from smilecore import contract
from smilecore.align import CROP_SIZE, TEMPLATE_VERSION


def build_fixture_model(
    path: str | Path,
    dx: float = 0.0,
    dy: float = 0.0,
    mask: float = 0.0,
    rgb: float = 0.0,
    size: int = CROP_SIZE,
    template: str = TEMPLATE_VERSION,
    contract_version: str | None = None,
    shade: float | None = None,
    strength_range: tuple[str, str] = ("-2", "4"),
) -> Path:
    """Write the fixture model to ``path`` and return the path (``strength_range``: its metadata's [min, max])."""
    n = "N"
    inputs = [
        helper.make_tensor_value_info(contract.INPUT_FACE, TensorProto.FLOAT, [n, 3, size, size]),
        helper.make_tensor_value_info(contract.INPUT_STRENGTH, TensorProto.FLOAT, [n, 1]),
    ]
    outputs = [
        helper.make_tensor_value_info(contract.OUTPUT_RGB, TensorProto.FLOAT, [n, 3, size, size]),
        helper.make_tensor_value_info(contract.OUTPUT_MASK, TensorProto.FLOAT, [n, 1, size, size]),
        helper.make_tensor_value_info(contract.OUTPUT_FLOW, TensorProto.FLOAT, [n, 2, size, size]),
    ]
    inits = [
        numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        numpy_helper.from_array(np.array([dx, dy], np.float32).reshape(1, 2, 1, 1), "dxdy"),
        numpy_helper.from_array(np.array(mask, np.float32).reshape(1, 1, 1, 1), "maskv"),
        numpy_helper.from_array(np.array(rgb, np.float32).reshape(1, 1, 1, 1), "rgbv"),
        numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), "s_shape"),
        numpy_helper.from_array(np.array([0], np.int64), "c0"),
        numpy_helper.from_array(np.array([1], np.int64), "c1"),
        numpy_helper.from_array(np.array([2], np.int64), "c2"),
    ]
    nodes = [
        helper.make_node("Mul", [contract.INPUT_FACE, "zero"], ["z3"]),  # zeros [N,3,S,S]
        helper.make_node("Slice", ["z3", "c0", "c2", "c1"], ["z2"]),  # zeros [N,2,S,S]
        helper.make_node("Slice", ["z3", "c0", "c1", "c1"], ["z1"]),  # zeros [N,1,S,S]
        helper.make_node("Reshape", [contract.INPUT_STRENGTH, "s_shape"], ["s4"]),
        helper.make_node("Add", ["z2", "dxdy"], ["f0"]),
        helper.make_node("Mul", ["f0", "s4"], [contract.OUTPUT_FLOW]),
        helper.make_node("Add", ["z1", "maskv"], [contract.OUTPUT_MASK]),
        helper.make_node("Add", ["z3", "rgbv"], [contract.OUTPUT_RGB]),
    ]
    if shade is not None:
        outputs.append(helper.make_tensor_value_info(contract.OUTPUT_SHADE, TensorProto.FLOAT, [n, 1, size, size]))
        inits.append(numpy_helper.from_array(np.array(shade, np.float32).reshape(1, 1, 1, 1), "shadev"))
        nodes += [helper.make_node("Add", ["z1", "shadev"], ["sh0"]), helper.make_node("Mul", ["sh0", "s4"], [contract.OUTPUT_SHADE])]
    if contract_version is None:
        contract_version = contract.CONTRACT_VERSION if shade is None else contract.CONTRACT_SHADE
    graph = helper.make_graph(nodes, "smile_fixture", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="smile-tests")
    model.ir_version = 8
    meta = {
        contract.META_CONTRACT: contract_version,
        contract.META_SIZE: str(size),
        contract.META_TEMPLATE: template,
        contract.META_STRENGTH_MIN: strength_range[0],
        contract.META_STRENGTH_MAX: strength_range[1],
        contract.META_MODEL_VERSION: "0.0.0-fixture",
        contract.META_LICENSE: "CC0-1.0",
        contract.META_NAME: "fixture",
    }
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
