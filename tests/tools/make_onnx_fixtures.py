#!/usr/bin/python3
"""ONNX fixtures for tests/test_onnx.c, made at test time into OUTDIR (too big
to commit): torchvision resnet18, mobilenet_v2 and squeezenet1_1 with seeded
weights and non-trivial BatchNorm statistics, exported at opsets 9, 11, 13 and
17 (one copy with external data), small graphs for the operators torchvision
does not use, and bad files. References come from the same networks in
PyTorch float64: the output, two inner nodes, and the input gradients of a
class logit and of a filter objective (spatial mean of one channel).

  /usr/bin/python3 tests/tools/make_onnx_fixtures.py OUTDIR

Per case NAME: NAME.onnx (or NAME_opsetK.onnx), NAME.x.npy (input, NCHW),
NAME.ref.npy and NAME.cases.txt (what test_onnx.c compares). Skips the work
when OUTDIR/stamp matches this script."""
import hashlib
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from onnx import TensorProto, helper, numpy_helper

torch.set_num_threads(2)
OPSETS = [9, 11, 13, 17]
OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
STAMP = os.path.join(OUT, "stamp")
ME = hashlib.sha256(open(__file__, "rb").read()).hexdigest()
if os.path.exists(STAMP) and open(STAMP).read() == ME:
    sys.exit(0)


def seed_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


def export(model, x, path, opset, **kw):
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"],
                      output_names=["logits"], do_constant_folding=kw.pop("fold", True), **kw)


def scope_output(path, scope):
    """Output tensor and node name of the last node in a module's scope."""
    g = onnx.load(path, load_external_data=False).graph
    # torch names nodes /features/features.3/...: each level is the dotted prefix
    parts = scope.split(".")
    pre = "/" + "/".join(".".join(parts[:i + 1]) for i in range(len(parts))) + "/"
    last = None
    for n in g.node:
        if n.name.startswith(pre):
            last = n
    assert last is not None, (path, scope, pre)
    return last.name, last.output[0]


def references(model, x, inner, cls, filt):
    """float64 output, inner outputs, and input gradients of class cls and of
    the spatial mean of channel filt[1] of inner module filt[0]."""
    m = model.double().eval()
    acts = {}
    hooks = [dict(m.named_modules())[s].register_forward_hook(
        lambda mod, i, o, s=s: acts.__setitem__(s, o)) for s in set(inner) | {filt[0]}]
    xd = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = m(xd)
    g_cls = torch.autograd.grad(out[0, cls], xd, retain_graph=True)[0]
    g_filt = torch.autograd.grad(acts[filt[0]][0, filt[1]].mean(), xd)[0]
    for h in hooks:
        h.remove()
    # a gradient of zero (a dead channel) would test nothing
    assert g_cls.abs().max() > 0 and g_filt.abs().max() > 0, "zero gradient"
    return out.detach().numpy(), [acts[s].detach().numpy() for s in inner], \
        g_cls.numpy(), g_filt.numpy()


def live_channel(model, x, scope):
    """The channel of a module's output with the largest spatial mean."""
    acts = {}
    h = dict(model.named_modules())[scope].register_forward_hook(lambda mod, i, o: acts.__setitem__(0, o))
    with torch.no_grad():
        model(torch.tensor(x, dtype=next(model.parameters()).dtype))
    h.remove()
    return int(acts[0][0].mean(dim=(1, 2)).argmax())


def write_case(name, x, onnx_files, out, inner_names, inners, cls, g_cls, filt_node, ch, g_filt,
               tol=1e-4):
    np.save(os.path.join(OUT, name + ".x.npy"), x.astype(np.float32))
    arrays = [out] + inners + [g_cls, g_filt]
    flat = np.concatenate([a.astype(np.float64).ravel() for a in arrays])
    np.save(os.path.join(OUT, name + ".ref.npy"), flat)
    with open(os.path.join(OUT, name + ".cases.txt"), "w") as f:
        # line 1: files; then one line per compared array: kind, node, count (, channel/class)
        f.write(" ".join(onnx_files) + "\n")
        f.write("tol %g\n" % tol)
        f.write("out logits %d\n" % out.size)
        for n, a in zip(inner_names, inners):
            f.write("node %s %d\n" % (n, a.size))
        f.write("gclass %d %d\n" % (cls, g_cls.size))
        f.write("gfilter %s %d %d\n" % (filt_node, ch, g_filt.size))


def torchvision_case(name, ctor, inner, filt, seed, size=64):
    torch.manual_seed(seed)
    model = ctor().eval()
    seed_bn(model, seed + 1)
    x = np.random.RandomState(seed).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    files = []
    for op in OPSETS:
        p = "%s_opset%d.onnx" % (name, op)
        export(model, torch.tensor(x), os.path.join(OUT, p), op)
        files.append(p)
    # inner nodes named by node name (first) and by output tensor name (second)
    first = os.path.join(OUT, files[-1])
    n0, _ = scope_output(first, inner[0])
    _, t1 = scope_output(first, inner[1])
    fn, _ = scope_output(first, filt[0])
    filt = (filt[0], live_channel(model, x, filt[0]))
    out, inners, g_cls, g_filt = references(model, x, inner, 3, filt)
    write_case(name, x, files, out, [n0, t1], inners, 3, g_cls, fn, filt[1], g_filt)
    return model, x


model, x = torchvision_case("resnet18", torchvision.models.resnet18, ["layer1", "layer3.0"],
                            ("layer2", 5), 1)
# external data: the resnet18 exported again with its weights beside it
torch.manual_seed(1)
ext = os.path.join(OUT, "resnet18_external.onnx")
m2 = onnx.load(os.path.join(OUT, "resnet18_opset13.onnx"))
onnx.save_model(m2, ext, save_as_external_data=True, all_tensors_to_one_file=True,
                location="resnet18_external.weights", size_threshold=1024)
with open(os.path.join(OUT, "resnet18.cases.txt")) as f:
    lines = f.readlines()
lines[0] = lines[0].rstrip("\n") + " resnet18_external.onnx\n"
with open(os.path.join(OUT, "resnet18.cases.txt"), "w") as f:
    f.writelines(lines)
torchvision_case("mobilenet_v2", torchvision.models.mobilenet_v2, ["features.2", "features.14"],
                 ("features.7", 11), 2)
torchvision_case("squeezenet1_1", torchvision.models.squeezenet1_1, ["features.3", "features.9"],
                 ("features.6", 7), 3)


# ---- small graphs for the operators torchvision does not use ----

class Ops1(nn.Module):
    """Pad, Resize (nearest, linear), AveragePool both ways, LeakyReLU, Clip,
    HardSigmoid, HardSwish, Sigmoid, Tanh, Sub/Div broadcasting, Transpose,
    ReduceMean, Squeeze/Unsqueeze, Shape->...->Reshape, Gemm, MatMul."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=(0, 1))
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.c3 = nn.Conv2d(8, 6, 1)
        self.c4 = nn.Conv2d(12, 6, 3, dilation=2, padding=2)
        self.fc = nn.Linear(6 * 16 * 20, 20)
        self.w = nn.Parameter(torch.randn(20, 10) * 0.3)
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.leaky_relu(self.c1(x), 0.1)                         # 16x16
        x = F.pad(x, (1, 2, 0, 1))                                # 17x19
        x = torch.clamp(self.c2(x), -0.5, 0.8)                    # 15x19
        x = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
        x = F.hardsigmoid(x) + F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        x = F.max_pool2d(x, 3, stride=2, padding=1)               # 8x10
        x = F.hardswish(self.dw(x))                               # 4x5
        x = F.interpolate(x, scale_factor=2, mode="nearest")      # 8x10
        a = torch.sigmoid(self.c3(x))
        b = torch.tanh(self.c3(x) * 0.5)
        x = torch.cat([a, b], 1)                                  # 12
        x = F.relu6(self.c4(x))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = x.permute(0, 1, 3, 2).contiguous()
        x = x.view(x.size(0), -1)                                 # Shape Gather Unsqueeze Concat Reshape
        x = F.relu(self.fc(x))
        x = x.unsqueeze(2).squeeze(2)
        return x @ self.w


class Ops2(nn.Module):
    """ReduceMean (keepdims), Upsample linear, MaxPool ceil_mode, Flatten."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 5, stride=3, padding=2)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 5, 2, stride=2)
        self.fc = nn.Linear(5, 7)

    def forward(self, x):
        x = self.bn(F.relu(self.c1(x)))                           # 11x11 (BN after ReLU: not fused)
        x = F.max_pool2d(x, 2, stride=2, ceil_mode=True)          # 6x6
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.c2(x)
        x = x.mean(dim=(2, 3), keepdim=True)
        return self.fc(torch.flatten(x, 1))


def small_case(name, model, size, inner, filt, opsets, seed, fold=True):
    torch.manual_seed(seed)
    m = model().eval()
    seed_bn(m, seed + 1)
    x = np.random.RandomState(seed).uniform(0, 1, (1, 3) + size).astype(np.float32)
    files = []
    for op in opsets:
        p = "%s_opset%d.onnx" % (name, op)
        export(m, torch.tensor(x), os.path.join(OUT, p), op, fold=fold)
        files.append(p)
    first = os.path.join(OUT, files[-1])
    n0, _ = scope_output(first, inner[0])
    _, t1 = scope_output(first, inner[1])
    fn, _ = scope_output(first, filt[0])
    filt = (filt[0], live_channel(m, x, filt[0]))
    out, inners, g_cls, g_filt = references(m, x, inner, 2, filt)
    write_case(name, x, files, out, [n0, t1], inners, 2, g_cls, fn, filt[1], g_filt)
    return m, x, files


small_case("ops1", Ops1, (32, 32), ["c2", "c4"], ("dw", 3), [11, 13, 14, 17], 10)
# (opset 9's Upsample 'linear' is asymmetric, unlike PyTorch: not exported there)
small_case("ops2", Ops2, (32, 32), ["c1", "c2"], ("c2", 1), [11, 13, 17], 11)

# Ops1 at opset 9 (Upsample, Clip as attribute, HardSigmoid, decomposed HardSwish)
class Ops1v9(Ops1):
    def forward(self, x):
        x = (x - self.mean) / self.std
        x = F.leaky_relu(self.c1(x), 0.1)
        x = F.pad(x, (1, 2, 0, 1))
        x = torch.clamp(self.c2(x), -0.5, 0.8)
        x = F.hardsigmoid(x)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = F.max_pool2d(x, 2)
        x = self.dw(x)
        x = x * F.relu6(x + 3) / 6
        return x.mean(dim=(2, 3))


small_case("ops1v9", Ops1v9, (32, 32), ["c2", "dw"], ("dw", 5), [9], 12)


# ---- hand-edited graphs: Dropout, Identity, Constant, float16 initializers ----

def hand_graph():
    """conv (float16 kernel through Cast) -> Dropout -> Identity -> Mul by a
    Constant node -> Add Constant (per channel) -> Relu -> AveragePool with
    count_include_pad=1 -> MaxPool with pads and ceil_mode -> Squeeze (attr
    form, opset 11) of a pooled (N,C,1,1) -> Softmax."""
    rs = np.random.RandomState(5)
    w16 = (rs.randn(4, 3, 3, 3) * 0.4).astype(np.float16)
    b = rs.randn(4).astype(np.float32) * 0.1
    scale = rs.uniform(0.5, 1.5, (1, 4, 1, 1)).astype(np.float32)
    shift = rs.randn(1, 4, 1, 1).astype(np.float32) * 0.2
    nodes = [
        helper.make_node("Cast", ["w16"], ["w"], name="cast_w", to=TensorProto.FLOAT),
        helper.make_node("Conv", ["input", "w", "b"], ["conv_out"], name="conv", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Dropout", ["conv_out"], ["drop_out"], name="drop", ratio=0.5),
        helper.make_node("Identity", ["drop_out"], ["id_out"], name="ident"),
        helper.make_node("Constant", [], ["scale"], name="const_scale",
                         value=numpy_helper.from_array(scale, "scale")),
        helper.make_node("Mul", ["id_out", "scale"], ["mul_out"], name="mul"),
        helper.make_node("Constant", [], ["shift"], name="const_shift",
                         value=numpy_helper.from_array(shift, "shift")),
        helper.make_node("Add", ["shift", "mul_out"], ["add_out"], name="add"),
        helper.make_node("Relu", ["add_out"], ["relu_out"], name="relu"),
        helper.make_node("AveragePool", ["relu_out"], ["avg_out"], name="avg", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1], count_include_pad=1),
        helper.make_node("MaxPool", ["avg_out"], ["max_out"], name="maxp", kernel_shape=[3, 3],
                         pads=[1, 0, 0, 1], strides=[2, 2], ceil_mode=1),
        helper.make_node("GlobalMaxPool", ["max_out"], ["gp"], name="gmax"),
        helper.make_node("Squeeze", ["gp"], ["sq"], name="squeeze", axes=[2, 3]),
        helper.make_node("Softmax", ["sq"], ["logits"], name="softmax", axis=1),
    ]
    g = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
                          [numpy_helper.from_array(w16, "w16"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], producer_name="make_onnx_fixtures")
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, "hand_opset11.onnx"))

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.conv.weight.data = torch.tensor(w16.astype(np.float32))
            self.conv.bias.data = torch.tensor(b)

        def forward(self, x):
            y = torch.relu(self.conv(x) * torch.tensor(scale, dtype=x.dtype) + torch.tensor(shift, dtype=x.dtype))
            y = F.avg_pool2d(y, 3, 1, 1, count_include_pad=True)
            y = F.max_pool2d(F.pad(y, (0, 1, 1, 0), value=-float("inf")), 3, 2, ceil_mode=True)
            return torch.softmax(F.adaptive_max_pool2d(y, 1).flatten(1), 1)

    m = Ref()
    x = rs.uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)
    ch = live_channel(m, x, "conv")
    out, inners, _, g_filt = references(m, x, ["conv"], 1, ("conv", ch))
    # the class objective on a Softmax output is the logit: its input
    md = m.double()
    xd = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = torch.relu(md.conv(xd) * torch.tensor(scale, dtype=torch.float64) + torch.tensor(shift, dtype=torch.float64))
    y = F.avg_pool2d(y, 3, 1, 1, count_include_pad=True)
    y = F.max_pool2d(F.pad(y, (0, 1, 1, 0), value=-float("inf")), 3, 2, ceil_mode=True)
    logit = F.adaptive_max_pool2d(y, 1).flatten(1)
    cls = int(logit[0].argmax())
    g_cls = torch.autograd.grad(logit[0, cls], xd)[0].numpy()
    assert abs(g_cls).max() > 0
    write_case("hand", x, ["hand_opset11.onnx"], out, ["conv"], inners, cls, g_cls, "conv", ch, g_filt)


hand_graph()


def upsample_linear_v9():
    """opset 9 Upsample 'linear' is asymmetric (src = dst / scale), unlike
    PyTorch's interpolate: the reference is that rule as interpolation
    matrices in float64 (A_h x A_w^T), then a 1x1 conv and a Gemm."""
    rs = np.random.RandomState(7)
    H, W, sh, sw = 5, 4, 2, 3
    wc = rs.randn(3, 2, 1, 1).astype(np.float32)
    wg = rs.randn(4, 3 * H * sh * W * sw).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Constant", [], ["scales"], name="scales",
                         value=numpy_helper.from_array(np.array([1, 1, sh, sw], np.float32), "s")),
        helper.make_node("Upsample", ["input", "scales"], ["up"], name="up", mode="linear"),
        helper.make_node("Conv", ["up", "wc"], ["conv"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("Flatten", ["conv"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "wg"], ["logits"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "upsample9", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, H, W])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])],
                          [numpy_helper.from_array(wc, "wc"), numpy_helper.from_array(wg, "wg")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)])
    onnx.save(model, os.path.join(OUT, "upsample9_opset9.onnx"))

    def interp(n, s):
        A = np.zeros((n * s, n))
        for o in range(n * s):
            src = o / s
            i0 = int(np.floor(src))
            i1 = min(i0 + 1, n - 1)
            A[o, i0] += 1 - (src - i0)
            A[o, i1] += src - i0
        return torch.tensor(A)

    Ah, Aw = interp(H, sh), interp(W, sw)
    x = rs.uniform(-1, 1, (1, 2, H, W)).astype(np.float32)
    xd = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    up = Ah @ xd @ Aw.T
    conv = F.conv2d(up, torch.tensor(wc, dtype=torch.float64))
    out = conv.flatten(1) @ torch.tensor(wg, dtype=torch.float64).T
    g_cls = torch.autograd.grad(out[0, 1], xd, retain_graph=True)[0]
    g_filt = torch.autograd.grad(up[0, 1].mean(), xd)[0]
    write_case("upsample9", x, ["upsample9_opset9.onnx"], out.detach().numpy(), ["up", "conv"],
               [up.detach().numpy(), conv.detach().numpy()], 1, g_cls.numpy(), "up", 1, g_filt.numpy())


upsample_linear_v9()


# ---- bad files ----

def bad(name, data):
    with open(os.path.join(OUT, "bad_" + name + ".onnx"), "wb") as f:
        f.write(data)


good = open(os.path.join(OUT, "hand_opset11.onnx"), "rb").read()
bad("truncated", good[: len(good) // 2])
bad("notproto", b"\xff\xff\xff\xff this is not a protobuf message at all \x00\x01")


def graph_with(nodes, inits=(), opset=13, inputs=None, outputs=None):
    g = helper.make_graph(nodes, "bad",
                          inputs or [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


bad("unknown_op", graph_with([helper.make_node("FrobnicateXYZ", ["input"], ["y"], name="frob_node")]))
bad("lstm", graph_with([helper.make_node("LSTM", ["input", "W", "R"], ["y"], name="my_lstm", hidden_size=4)],
                       [numpy_helper.from_array(np.zeros((1, 16, 8), np.float32), "W"),
                        numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "R")]))
bad("convtranspose", graph_with([helper.make_node("ConvTranspose", ["input", "W"], ["y"], name="deconv")],
                                [numpy_helper.from_array(np.zeros((3, 2, 3, 3), np.float32), "W")]))
# a weight whose dims overflow, and one whose dims disagree with its data
huge = numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "W")
del huge.dims[:]
huge.dims.extend([1 << 40, 1 << 40, 3, 3])
bad("dims_overflow", graph_with([helper.make_node("Conv", ["input", "W"], ["y"], name="conv")], [huge]))
short = numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "W")
del short.dims[:]
short.dims.extend([4, 3, 3, 3])
bad("dims_disagree", graph_with([helper.make_node("Conv", ["input", "W"], ["y"], name="conv")], [short]))
miss = numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "W")
miss.ClearField("raw_data")
miss.data_location = TensorProto.EXTERNAL
for k, v in (("location", "no_such_weights.bin"), ("offset", "0"), ("length", "216")):
    e = miss.external_data.add()
    e.key, e.value = k, v
bad("external_missing", graph_with([helper.make_node("Conv", ["input", "W"], ["y"], name="conv")], [miss]))
bad("cycle", graph_with([helper.make_node("Add", ["input", "b"], ["a"], name="add_a"),
                         helper.make_node("Relu", ["a"], ["b"], name="relu_b"),
                         helper.make_node("Relu", ["b"], ["y"], name="relu_y")]))
bad("dangling", graph_with([helper.make_node("Relu", ["input"], ["a"], name="relu_a"),
                            helper.make_node("Add", ["a", "nowhere"], ["y"], name="add_y")]))

open(STAMP, "w").write(ME)
