"""Convert MediaPipe's BlazeFace and face-mesh ``.tflite`` models to ONNX (run once, by hand).

The models ship inside the ``mediapipe`` 0.10.x wheel on PyPI (Apache-2.0)::

    pip download --no-deps mediapipe==0.10.14 -d /tmp/dl
    pip install tflite onnx            # pure-Python flatbuffer reader + ONNX builder (build time only)
    python tools/convert_mediapipe.py /tmp/dl/mediapipe-0.10.14-*.whl

which writes ``smilecore/models/blazeface-short-range.onnx`` (the engine's detector) and
``smilecore/models/facemesh.onnx`` (the face mesh: 468 landmarks, whose face oval bounds the
edit, see ``smilecore/facemesh.py``) and prints their sha256 (recorded in ``smilecore/blazeface.py``
and ``smilecore/facemesh.py``); ``--full-range`` also converts the full-range detector (not
shipped: about 8 × the short-range model's time for no face the tiled short-range model misses,
see docs/architecture.md). The conversion is deterministic: running it again gives the same
bytes (``tests/test_detector.py`` checks that when ``tflite`` and the wheel are at hand). The
BlazeFace outputs were checked against the TFLite interpreter (``ai-edge-litert``, dev only) on
the astronaut: max abs difference 1e-4 (short) / 2e-4 (full range) in the raw outputs.

How: the flatbuffer is read with the ``tflite`` package (generated from TensorFlow's
schema); every operator is mapped to its ONNX equivalent with the graph moved from NHWC to
NCHW; constant chains (float16 ``DEQUANTIZE``, block-sparse ``DENSIFY``) are folded into
float32 initializers.  Each ONNX model takes ``input``: float32 ``[N, H, W, 3]`` (the TFLite
layout).  The detectors are fully convolutional (H and W multiples of 16 for the short-range
model, 128 × 128 is the size it was trained at) and return ``regressors`` ``[N, A, 16]`` and
``classificators`` ``[N, A, 1]`` (logits), A anchors.  The face mesh takes 192 × 192 in [0, 1]
and returns ``landmarks`` ``[N, 1404]`` (468 × x, y, z in input pixels) and ``presence``
``[N, 1]`` (a logit).  Only the operators these files use are supported; anything else stops
the conversion.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np

#: (member of the wheel, ONNX file, output names ordered by their last dimension, largest first,
#: fixed input side or None for a fully convolutional graph, what the model is)
SHORT_RANGE = ("mediapipe/modules/face_detection/face_detection_short_range.tflite", "blazeface-short-range.onnx",
               ("regressors", "classificators"), None, "BlazeFace face detector")
FULL_RANGE = ("mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite", "blazeface-full-range.onnx",
              ("regressors", "classificators"), None, "BlazeFace face detector")
FACE_MESH = ("mediapipe/modules/face_landmark/face_landmark.tflite", "facemesh.onnx",
             ("landmarks", "presence"), 192, "face mesh (468 landmarks)")
OUT_DIR = Path(__file__).resolve().parents[1] / "smilecore" / "models"


def _builtin_names(tflite) -> dict[int, str]:
    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _np_dtype(tflite, t: int):
    T = tflite.TensorType
    return {T.FLOAT32: np.float32, T.FLOAT16: np.float16, T.INT32: np.int32, T.INT64: np.int64, T.UINT8: np.uint8, T.INT8: np.int8}[t]


def _vector_values(tflite, union_type: int, table) -> np.ndarray:
    """Values of a SparseIndexVector union (Int32Vector / Uint16Vector / Uint8Vector)."""
    S = tflite.SparseIndexVector
    cls = {S.Int32Vector: tflite.Int32Vector, S.Uint16Vector: tflite.Uint16Vector, S.Uint8Vector: tflite.Uint8Vector}[union_type]
    v = cls()
    v.Init(table.Bytes, table.Pos)
    return v.ValuesAsNumpy().astype(np.int64)


def densify(tflite, tensor, values: np.ndarray) -> np.ndarray:
    """Dense array of a sparse constant tensor (TFLite's SparsityParameters, CSR levels with
    optional blocks), following the format's definition: each level of ``traversal_order``
    is either dense (``dense_size`` entries) or sparse (``array_segments``/``array_indices``);
    levels past the tensor's rank are block dimensions of the original dims in ``block_map``."""
    sp = tensor.Sparsity()
    shape = [int(s) for s in tensor.ShapeAsNumpy()]
    rank = len(shape)
    order = [int(x) for x in sp.TraversalOrderAsNumpy()]
    block_map = [int(x) for x in sp.BlockMapAsNumpy()] if sp.BlockMapLength() else []
    levels = []
    for i in range(sp.DimMetadataLength()):
        dm = sp.DimMetadata(i)
        if dm.Format() == tflite.DimensionType.DENSE:
            levels.append(("dense", dm.DenseSize(), None, None))
        else:
            levels.append(("sparse", None, _vector_values(tflite, dm.ArraySegmentsType(), dm.ArraySegments()),
                           _vector_values(tflite, dm.ArrayIndicesType(), dm.ArrayIndices())))
    # block sizes: the dense size of each block level
    block_size = {}
    for k, orig in enumerate(block_map):
        lvl = order.index(rank + k)
        block_size[orig] = levels[lvl][1]
    out = np.zeros(shape, dtype=values.dtype)
    coord = [0] * len(order)

    def rec(level: int, pos: int) -> None:
        if level == len(order):
            idx = list(coord[:rank])
            for k, orig in enumerate(block_map):
                idx[orig] = coord[orig] * block_size[orig] + coord[rank + k]
            out[tuple(idx)] = values[pos]
            return
        kind, size, seg, ind = levels[level]
        dim = order[level]
        if kind == "dense":
            for i in range(size):
                coord[dim] = i
                rec(level + 1, pos * size + i)
        else:
            for i in range(seg[pos], seg[pos + 1]):
                coord[dim] = int(ind[i])
                rec(level + 1, i)

    rec(0, 0)
    return out


def convert(tfl_bytes: bytes, graph_name: str, out_names: tuple[str, ...] = ("regressors", "classificators"),
            side: int | None = None, what: str = "BlazeFace face detector"):
    """The ONNX model of a TFLite flatbuffer (see the module's docstring for the layouts)."""
    import onnx
    import tflite
    from onnx import TensorProto, helper, numpy_helper

    names = _builtin_names(tflite)
    model = tflite.Model.GetRootAsModel(tfl_bytes, 0)
    g = model.Subgraphs(0)
    BO = tflite.BuiltinOperator
    ACT = tflite.ActivationFunctionType

    def tensor_name(i: int) -> str:
        return f"t{i}"

    consts: dict[int, np.ndarray] = {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        buf = model.Buffers(t.Buffer())
        if buf is not None and buf.DataLength():
            raw = buf.DataAsNumpy().tobytes()
            arr = np.frombuffer(raw, dtype=_np_dtype(tflite, t.Type())).copy()
            if t.Sparsity() is None:
                arr = arr.reshape([int(s) for s in t.ShapeAsNumpy()])
            consts[i] = arr
    sparse = {i: g.Tensors(i) for i in consts if g.Tensors(i).Sparsity() is not None}

    nodes, inits = [], {}
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def init(arr: np.ndarray, prefix: str = "c") -> str:
        name = fresh(prefix)
        inits[name] = numpy_helper.from_array(np.ascontiguousarray(arr), name)
        return name

    def add(node, out: str, act: int) -> None:
        """Appends ``node`` (whose output is named ``out``) followed by its fused activation."""
        if act == ACT.NONE:
            node.output[:] = [out]
            nodes.append(node)
            return
        raw = fresh("preact")
        node.output[:] = [raw]
        nodes.append(node)
        if act == ACT.RELU:
            nodes.append(helper.make_node("Relu", [raw], [out]))
        elif act == ACT.RELU6:
            nodes.append(helper.make_node("Clip", [raw, init(np.float32(0)), init(np.float32(6))], [out]))
        else:
            raise SystemExit(f"unsupported fused activation {act}")

    rank4 = set()  # tensors whose ONNX layout is NCHW (TFLite NHWC)
    in_idx = g.Inputs(0)
    t_in = g.Tensors(in_idx)
    _, _, _, C = [int(s) for s in t_in.ShapeAsNumpy()]
    nodes.append(helper.make_node("Transpose", ["input"], [tensor_name(in_idx)], perm=[0, 3, 1, 2]))
    rank4.add(in_idx)

    def const_of(i: int) -> np.ndarray:
        return consts[i]

    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ins = [int(x) for x in op.InputsAsNumpy()]
        outs = [int(x) for x in op.OutputsAsNumpy()]
        o = outs[0]
        opt_table = op.BuiltinOptions()

        def opts(cls):
            x = cls()
            x.Init(opt_table.Bytes, opt_table.Pos)
            return x

        if b == BO.DENSIFY:
            consts[o] = densify(tflite, sparse[ins[0]], consts[ins[0]])
            continue
        if b == BO.DEQUANTIZE:
            if ins[0] not in consts:
                raise SystemExit("DEQUANTIZE of a non-constant tensor")
            consts[o] = consts[ins[0]].astype(np.float32)
            continue
        x = tensor_name(ins[0])
        y = tensor_name(o)
        if b in (BO.CONV_2D, BO.DEPTHWISE_CONV_2D):
            w = const_of(ins[1]).astype(np.float32)
            bias = const_of(ins[2]).astype(np.float32) if len(ins) > 2 and ins[2] >= 0 else None
            if b == BO.CONV_2D:
                o_ = opts(tflite.Conv2DOptions)
                weight = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                group = 1
            else:
                o_ = opts(tflite.DepthwiseConv2DOptions)
                weight = w.transpose(3, 0, 1, 2)  # 1HWO -> O1HW
                group = weight.shape[0] // o_.DepthMultiplier()
            pad = "SAME_UPPER" if o_.Padding() == tflite.Padding.SAME else "VALID"
            inputs = [x, init(weight, "w")] + ([init(bias, "b")] if bias is not None else [])
            add(helper.make_node(
                "Conv", inputs, [y], auto_pad=pad, strides=[o_.StrideH(), o_.StrideW()],
                dilations=[o_.DilationHFactor(), o_.DilationWFactor()], group=group,
                kernel_shape=list(weight.shape[2:])), y, o_.FusedActivationFunction())
            rank4.add(o)
        elif b == BO.ADD:
            o_ = opts(tflite.AddOptions)
            add(helper.make_node("Add", [x, tensor_name(ins[1])], [y]), y, o_.FusedActivationFunction())
            if ins[0] in rank4:
                rank4.add(o)
        elif b == BO.PRELU:
            alpha = const_of(ins[1]).astype(np.float32)  # [1, 1, C] (NHWC): one slope per channel
            if ins[0] in rank4:
                # PRelu(x) = a x + (1 - a) Relu(x), each product a depthwise 1 × 1 convolution:
                # ONNX Runtime keeps these in its blocked (NCHWc) layout and fuses the sum, where its
                # own PRelu broadcasts slowly and converts the layout around it (the face mesh runs
                # in about half the time; landmarks within 8e-5 px)
                a = alpha.reshape(-1)
                c = a.size
                r, ax, rx = fresh("relu"), fresh("scaled"), fresh("kept")
                nodes.append(helper.make_node("Relu", [x], [r]))
                nodes.append(helper.make_node("Conv", [x, init(a.reshape(c, 1, 1, 1), "slope")], [ax], group=c,
                                              kernel_shape=[1, 1]))
                nodes.append(helper.make_node("Conv", [r, init((1 - a).reshape(c, 1, 1, 1), "slope")], [rx], group=c,
                                              kernel_shape=[1, 1]))
                nodes.append(helper.make_node("Add", [ax, rx], [y]))
                rank4.add(o)
            else:
                nodes.append(helper.make_node("PRelu", [x, init(alpha, "slope")], [y]))
        elif b == BO.RELU:
            nodes.append(helper.make_node("Relu", [x], [y]))
            if ins[0] in rank4:
                rank4.add(o)
        elif b == BO.PAD:
            p = const_of(ins[1]).astype(np.int64)  # [4, 2] in NHWC
            p = p[[0, 3, 1, 2]]
            nodes.append(helper.make_node("Pad", [x, init(np.concatenate([p[:, 0], p[:, 1]]))], [y], mode="constant"))
            rank4.add(o)
        elif b == BO.MAX_POOL_2D:
            o_ = opts(tflite.Pool2DOptions)
            pad = "SAME_UPPER" if o_.Padding() == tflite.Padding.SAME else "VALID"
            add(helper.make_node("MaxPool", [x], [y], auto_pad=pad, kernel_shape=[o_.FilterHeight(), o_.FilterWidth()],
                                 strides=[o_.StrideH(), o_.StrideW()]), y, o_.FusedActivationFunction())
            rank4.add(o)
        elif b == BO.RESIZE_BILINEAR:
            o_ = opts(tflite.ResizeBilinearOptions)
            size = const_of(ins[1]).astype(np.int64)
            mode = "align_corners" if o_.AlignCorners() else ("half_pixel" if o_.HalfPixelCenters() else "asymmetric")
            shape_n = fresh("shape")
            nc = fresh("nc")
            nodes.append(helper.make_node("Shape", [x], [shape_n]))
            nodes.append(helper.make_node("Slice", [shape_n, init(np.array([0], np.int64)), init(np.array([2], np.int64))], [nc]))
            sizes = fresh("sizes")
            nodes.append(helper.make_node("Concat", [nc, init(size)], [sizes], axis=0))
            nodes.append(helper.make_node("Resize", [x, "", "", sizes], [y], mode="linear", coordinate_transformation_mode=mode))
            rank4.add(o)
        elif b == BO.DEPTH_TO_SPACE:
            o_ = opts(tflite.DepthToSpaceOptions)
            nodes.append(helper.make_node("DepthToSpace", [x], [y], blocksize=o_.BlockSize(), mode="DCR"))
            rank4.add(o)
        elif b == BO.RESHAPE:
            shape = [int(s) for s in g.Tensors(o).ShapeAsNumpy()]
            if len(shape) != 3:
                raise SystemExit("only the (batch, anchors, values) reshapes are expected")
            shape = [0, -1, shape[2]]  # batch and anchor count follow the input's size
            src = x
            if ins[0] in rank4:
                src = fresh("nhwc")
                nodes.append(helper.make_node("Transpose", [x], [src], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Reshape", [src, init(np.array(shape, np.int64))], [y]))
        elif b == BO.CONCATENATION:
            o_ = opts(tflite.ConcatenationOptions)
            axis = o_.Axis()
            if ins[0] in rank4:
                axis = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}[axis]
                rank4.add(o)
            add(helper.make_node("Concat", [tensor_name(i) for i in ins], [y], axis=axis), y, o_.FusedActivationFunction())
        else:
            raise SystemExit(f"unsupported operator {names.get(b, b)}")

    outputs = []
    # order the outputs by their last dimension: 16 (box + keypoints) or 1404 (landmarks), then 1 (score)
    out_idx = sorted((int(g.Outputs(i)) for i in range(g.OutputsLength())), key=lambda i: -int(g.Tensors(i).ShapeAsNumpy()[-1]))
    for name, i in zip(out_names, out_idx):
        shape = [int(s) for s in g.Tensors(i).ShapeAsNumpy()]
        if i in rank4:  # [N, 1, 1, C] in TFLite: the values of one 1 × 1 map
            if shape[1:3] != [1, 1]:
                raise SystemExit("only 1 x 1 four-dimensional outputs are expected")
            nodes.append(helper.make_node("Flatten", [tensor_name(i)], [name], axis=1))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", shape[3]]))
            continue
        nodes.append(helper.make_node("Identity", [tensor_name(i)], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", "A", shape[2]]))
    # a detector is fully convolutional: any H, W that are multiples of its largest stride work
    in_shape = ["N", side, side, C] if side else ["N", "H", "W", C]
    graph = helper.make_graph(nodes, graph_name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                              outputs, initializer=list(inits.values()))
    # (the producer name is the one the shipped detector was made with: the bytes stay the same)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="smile tools/convert_blazeface.py")
    m.ir_version = 8
    m.doc_string = (f"{what} converted from MediaPipe's TFLite file (Apache-2.0, "
                    "Copyright The MediaPipe Authors); see smilecore/models/NOTICE")
    onnx.checker.check_model(m)
    return m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="the mediapipe 0.10.x wheel, or a folder holding the .tflite files")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--full-range", action="store_true", help="also convert the full-range model")
    args = ap.parse_args(argv)
    src = Path(args.source)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for member, out_name, out_names, side, what in [SHORT_RANGE, FACE_MESH] + ([FULL_RANGE] if args.full_range else []):
        if src.is_dir():
            data = (src / Path(member).name).read_bytes()
        else:
            with zipfile.ZipFile(src) as z:
                data = z.read(member)
        m = convert(data, Path(out_name).stem, out_names, side, what)
        blob = m.SerializeToString()
        (args.out_dir / out_name).write_bytes(blob)
        print(f"{out_name}: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()} (from {Path(member).name}, "
              f"sha256 {hashlib.sha256(data).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
