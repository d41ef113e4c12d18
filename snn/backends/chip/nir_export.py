"""NIR export of what NIR can express: the folded convs, LIF neurons and the membrane shortcuts.

``export_nir(model, path, input_size=None)`` writes the float, folded network (BatchNorms folded,
RepConvs collapsed into 3x3 convs, as the chip runs it) as a NIR graph:

* every conv (MLP 1x1 Conv1d over tokens included, as a 1x1 Conv2d on the token map) -> ``Conv2d``;
* every LIF (tau = 2 with dt = 1, R = 1, v_leak = 0, hard reset to 0) -> ``LIF``;
* the residual stream (membrane shortcut) -> edges: NIR sums a node's inputs, so each neuron reading
  the stream has an edge from every conv that wrote it before;
* the head's token mean -> ``SumPool2d`` over the token map, then ``Scale(1/N)``.

NIR cannot express three things, which are cut and named in ``graph.metadata["cuts"]`` (JSON): the input
table (the graph's input is the float, normalised frame), and each SDSA's spike-spike products
``Q (K^T V)``: the Q/K/V neuron leaves the graph through an ``Output`` node ``<attn>.cut_in`` and the
attention neuron takes its input from an ``Input`` node ``<attn>.cut_out``.  NIR has no integer
semantics: the chip's numbers are in the program file, not here.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import json

import numpy as np

from .errors import ChipError
from .lower import lower


def export_nir(model, path, input_size: Optional[Tuple[int, int]] = None):
    """Write ``model`` (a Meta-SpikeFormer, unfolded, eval) to ``path`` as NIR; returns the graph."""
    try:
        import nir
    except ImportError:  # pragma: no cover - nir is an optional extra
        raise ChipError("NIR export needs the 'nir' package (pip install eventpipe[chip])") from None
    if input_size is None:
        input_size = (getattr(model, "recipe", {}) or {}).get("input_size")
        if input_size is None:
            raise ChipError("the model does not say its input size; pass input_size=(W, H)")
    graph = lower(model.eval(), tuple(input_size))
    nodes: Dict[str, object] = {}
    edges: List[Tuple[str, str]] = []
    cuts = []
    c, h, w = graph.buffers["frame"]
    nodes["input"] = nir.Input(input_type={"input": np.array([c, h, w])})
    # who currently feeds each buffer: a list of nodes whose outputs sum to it
    feeds: Dict[str, List[str]] = {"input": ["input"]}
    for op in graph.ops:
        if op.kind == "input":
            continue
        src = feeds.get(op.src, [])
        if op.kind == "conv":
            ci, hi, wi = graph.buffers[op.src]
            wt = op.arrays["weight"].astype(np.float32)
            g = int(op.attrs["groups"])
            if g > 1:  # nir 1.0.8 infers a grouped conv's input channels as Ci/g: write it block-diagonal
                co, cig = wt.shape[:2]
                full = np.zeros((co, ci) + wt.shape[2:], np.float32)
                for j in range(g):
                    full[j * (co // g):(j + 1) * (co // g), j * cig:(j + 1) * cig] = wt[j * (co // g):(j + 1) * (co // g)]
                wt = full
            nodes[op.name] = nir.Conv2d(input_shape=(hi, wi), weight=wt, stride=op.attrs["stride"],
                                        padding=op.attrs["pad"], dilation=1, groups=1,
                                        bias=op.arrays["bias"].astype(np.float32), metadata={"groups": g})
            edges += [(s, op.name) for s in src]
            if op.attrs["mode"] == "add":
                feeds[op.dst] = feeds[op.dst] + [op.name]
            else:
                feeds[op.dst] = [op.name]
        elif op.kind == "lif":
            shape = graph.buffers[op.dst]
            th = op.arrays["threshold"].astype(np.float32)[:, None, None] * np.ones(shape, np.float32)
            nodes[op.name] = nir.LIF(tau=np.full(shape, 2.0, np.float32), r=np.ones(shape, np.float32),
                                     v_leak=np.zeros(shape, np.float32), v_threshold=th,
                                     v_reset=np.zeros(shape, np.float32),
                                     metadata={"dt": 1.0, "reset": "hard", "neurons": ",".join(op.attrs["float_keys"])})
            edges += [(s, op.name) for s in src]
            feeds[op.dst] = [op.name]
        elif op.kind == "attn":
            cin, cout = f"{op.name}.cut_in", f"{op.name}.cut_out"
            nodes[cin] = nir.Output(output_type={"output": np.array(graph.buffers[op.src])})
            nodes[cout] = nir.Input(input_type={"input": np.array(graph.buffers[op.dst])})
            edges += [(s, cin) for s in src]
            feeds[op.dst] = [cout]
            cuts.append({"op": op.name, "inputs": [cin], "outputs": [cout],
                         "reason": "SDSA-3 multiplies spikes by spikes (Q (K^T V)); NIR has no such node",
                         "heads": op.attrs["heads"], "scale": op.attrs["scale"]})
        elif op.kind == "pool":
            ci, hi, wi = graph.buffers[op.src]
            pool, scale = f"{op.name}.sum", f"{op.name}.mean"
            nodes[pool] = nir.SumPool2d(kernel_size=np.array([hi, wi]), stride=np.array([hi, wi]),
                                        padding=np.array([0, 0]))
            nodes[scale] = nir.Scale(scale=np.full((ci, 1, 1), 1.0 / op.attrs["n"], np.float32))
            edges += [(s, pool) for s in src] + [(pool, scale)]
            feeds[op.dst] = [scale]
    nodes["output"] = nir.Output(output_type={"output": np.array(graph.buffers[graph.output])})
    edges += [(s, "output") for s in feeds[graph.output]]
    cuts.insert(0, {"op": "input", "inputs": [], "outputs": ["input"],
                    "reason": "the chip's input table (counts -> codes) is not a NIR node; 'input' takes the "
                              "normalised float frame"})
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"cuts": json.dumps(cuts), "source": "eventpipe snn.chip"},
                     type_check=False)
    nir.write(str(path), g)
    return g
