"""Meta-SpikeFormer (Spike-driven Transformer V2) with sequence and single-step execution.

Layout (official ``Spiking_vit_MetaFormer``), widths ``C0..C3``:

    downsample1_1 (7x7/2, C0/2, no LIF) -> ConvBlock1_1
    downsample1_2 (3x3/2, C0)            -> ConvBlock1_2
    downsample2   (3x3/2, C1)            -> ConvBlock2_1 -> ConvBlock2_2
    downsample3   (3x3/2, C2)            -> block3 x depth3   (SDSA + channel MLP)
    downsample4   (3x3/1, C3)            -> block4 x depth4
    head: mean over tokens -> LIF -> Linear  (per timestep), output = mean over T
          (``head_input="features"``: Linear on the token mean before the LIF, as the published
          BICLab classification code has it; the distillation head always reads the LIF spikes)

The state of all neurons lives outside the model (see :mod:`snn.state`).  This is the definition
only: folding lives in :mod:`snn.compile`, fast execution in :mod:`snn.backends`; neither is known
here.  ``forward_features`` / ``forward_head`` are the two halves of a pass (timm's names), and
``stages()`` lists the stages so that an executor can run them its own way.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from torch import Tensor, nn

from ..frame_size import warn_if_other_size
from ..neurons import LIFNode, MultiSpikeNode, SpikingNeuron
from ..state import ModelState, StepContext
from .attention import SpikeDrivenSelfAttention
from .blocks import ChannelMLP, ConvBlock, Downsampling, TransformerBlock

# what the classification head reads: the head LIF's spikes (the specification and the
# golden vector's code), or the token mean before that LIF (BICLab's published classification code,
# ``x = self.head(x).mean(0)``); ``head_kd`` reads the spikes in both
HEAD_INPUTS = ("spikes", "features")

STAGES = (
    "downsample1_1", "ConvBlock1_1", "downsample1_2", "ConvBlock1_2", "downsample2", "ConvBlock2_1",
    "ConvBlock2_2", "downsample3", "block3", "downsample4", "block4",
)


class MetaSpikeFormer(nn.Module):
    """Meta-SpikeFormer; parameters only - neuron state is passed in and returned (see ``step``).

    Submodule names follow the official code so official state dicts load strictly.
    """

    def __init__(
        self,
        embed_dims: Sequence[int] = (64, 128, 256, 360),
        depths: Sequence[int] = (6, 2),
        in_channels: int = 3,
        num_classes: int = 1000,
        num_heads: int = 8,
        mlp_ratio: float = 4,
        conv_mlp_ratio: int = 4,
        sep_expansion: float = 2,
        sep_kernel: int = 7,
        kd: bool = False,
        T: int = 4,
        attn_mode: str = "sdsa3",
        attn_conv: str = "repconv",
        neuron: str = "lif",
        tau: float = 2.0,
        v_threshold: float = 1.0,
        attn_threshold: float = 0.5,
        soft_reset: bool = False,
        decay_input: bool = True,
        max_spikes: int = 4,
        head_input: str = "spikes",
    ) -> None:
        super().__init__()
        if len(embed_dims) != 4 or len(depths) != 2:
            raise ValueError("embed_dims needs 4 widths and depths 2 (transformer stage depths)")
        if embed_dims[0] % 2:
            raise ValueError("embed_dims[0] must be even (the stem outputs embed_dims[0] // 2)")
        if neuron not in ("lif", "multispike"):
            raise ValueError(f"neuron must be 'lif' or 'multispike', got {neuron!r}")
        if head_input not in HEAD_INPUTS:
            raise ValueError(f"head_input must be one of {HEAD_INPUTS}, got {head_input!r}")
        self._check_T(T)
        self.head_input = head_input
        self.embed_dims = tuple(int(c) for c in embed_dims)
        self.depths = tuple(int(d) for d in depths)
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.kd = bool(kd)
        self.T = int(T)  # repeats for static images

        def make_neuron(attention: bool = False) -> SpikingNeuron:
            th = attn_threshold if attention else v_threshold
            if neuron == "multispike":
                return MultiSpikeNode(max_spikes, v_threshold=th)
            return LIFNode(tau, th, soft_reset=soft_reset, decay_input=decay_input)

        c0, c1, c2, c3 = self.embed_dims
        cb = dict(neuron=make_neuron, mlp_ratio=conv_mlp_ratio, sep_expansion=sep_expansion, sep_kernel=sep_kernel)
        self.downsample1_1 = Downsampling(in_channels, c0 // 2, 7, 2, 3, make_neuron, first_layer=True)
        self.ConvBlock1_1 = nn.ModuleList([ConvBlock(c0 // 2, **cb)])
        self.downsample1_2 = Downsampling(c0 // 2, c0, 3, 2, 1, make_neuron)
        self.ConvBlock1_2 = nn.ModuleList([ConvBlock(c0, **cb)])
        self.downsample2 = Downsampling(c0, c1, 3, 2, 1, make_neuron)
        self.ConvBlock2_1 = nn.ModuleList([ConvBlock(c1, **cb)])
        self.ConvBlock2_2 = nn.ModuleList([ConvBlock(c1, **cb)])
        self.downsample3 = Downsampling(c1, c2, 3, 2, 1, make_neuron)

        def transformer_block(dim: int) -> TransformerBlock:
            mixer = SpikeDrivenSelfAttention(dim, num_heads, make_neuron, mode=attn_mode, conv=attn_conv)
            return TransformerBlock(mixer, ChannelMLP(dim, int(dim * mlp_ratio), make_neuron))

        self.block3 = nn.ModuleList([transformer_block(c2) for _ in range(self.depths[0])])
        self.downsample4 = Downsampling(c2, c3, 3, 1, 1, make_neuron)
        self.block4 = nn.ModuleList([transformer_block(c3) for _ in range(self.depths[1])])
        self.lif = make_neuron()
        self.head = nn.Linear(c3, num_classes) if num_classes > 0 else nn.Identity()
        self.head_kd = (nn.Linear(c3, num_classes) if num_classes > 0 else nn.Identity()) if kd else None
        for name, m in self.named_modules():
            if isinstance(m, SpikingNeuron):
                m.state_key = name
        self.apply(self._init_weights)
        self.recipe: Dict[str, Any] = {}

    # set on derived inference-only copies (e.g. by snn.compile.fold_model): train() refuses them
    inference_only = False
    # (W, H) the model was trained at: set by snn.load_checkpoint from the checkpoint's recipe;
    # step() warns at the first frame of each other size (snn.frame_size)
    input_size: Optional[Tuple[int, int]] = None

    def train(self, mode: bool = True):
        if mode and self.inference_only:
            raise RuntimeError("this model is an inference-only copy (folded for inference: eval only); "
                               "train the unfolded model")
        return super().train(mode)

    @property
    def is_folded(self) -> bool:
        """True for a derived inference-only copy (folded weights; not to be trained or saved)."""
        return self.inference_only

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_T(T: Any) -> None:
        if not isinstance(T, numbers.Integral) or isinstance(T, bool) or T < 1:
            raise ValueError(f"T must be a positive int, got {T!r}")

    def _check_frames(self, x: Tensor, what: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{what} must be a floating tensor, got {x.dtype}")
        if x.shape[-3] != self.in_channels:
            raise ValueError(
                f"{what} has {x.shape[-3]} channels at dim -3 (shape {tuple(x.shape)}); "
                f"this model expects {self.in_channels}"
            )
        if min(x.shape) == 0:
            raise ValueError(f"{what} has an empty dimension: {tuple(x.shape)}")

    def as_sequence(self, x: Tensor, T: Optional[int] = None) -> Tensor:
        """``[B, C, H, W]`` static images -> repeated ``[T, B, C, H, W]``; events pass through."""
        if not isinstance(x, Tensor) or x.dim() not in (4, 5):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"expected static images [B, C, H, W] or event frames [T, B, C, H, W], got {shape}"
            )
        self._check_frames(x, "input")
        if x.dim() == 4:
            T = self.T if T is None else T
            self._check_T(T)
            return x.unsqueeze(0).repeat(int(T), 1, 1, 1, 1)
        if T is not None and T != x.shape[0]:
            raise ValueError(f"event input has T={x.shape[0]} frames but T={T} was requested")
        return x

    # ------------------------------------------------------------------ core
    def stages(self) -> Iterator[Tuple[str, List[nn.Module]]]:
        """``(name, blocks)`` of every stage in order; each block is called as ``block(x, ctx)``."""
        for name in STAGES:
            mod = getattr(self, name)
            yield name, (list(mod) if isinstance(mod, nn.ModuleList) else [mod])

    def forward_features(self, x_seq: Tensor, ctx: Optional[StepContext] = None) -> Tensor:
        """Stage features ``[T, B, C3, H/16, W/16]`` (membranes of the last stage) of a sequence;
        neuron state is read from and written to ``ctx`` (None: from rest, state discarded)."""
        ctx = StepContext() if ctx is None else ctx
        x = x_seq
        for name, blocks in self.stages():
            for blk in blocks:
                x = blk(x, ctx)
            ctx.feature(name, x)
        return x

    def forward_head(self, feat: Tensor, ctx: Optional[StepContext] = None):
        """Per-step logits ``[T, B, classes]`` from stage features (the head neuron's state in
        ``ctx``); with a distillation head, ``(out, out_kd)`` in training and their mean in eval."""
        ctx = StepContext() if ctx is None else ctx
        m = feat.flatten(3).mean(3)  # [T, B, C]
        z = ctx.run(self.lif, m)
        out = self.head(z if self.head_input == "spikes" else m)
        if self.head_kd is None:
            return out
        out_kd = self.head_kd(z)
        if self.training:
            return out, out_kd
        return (out + out_kd) / 2

    def run(self, x_seq: Tensor, state: Optional[ModelState] = None, *, record_spikes: bool = False,
            record_features: bool = False) -> Tuple[Any, StepContext]:
        """Run a ``[T, B, C, H, W]`` sequence from ``state``; returns per-step logits and the context
        (``ctx.new`` = state after the last step, plus optional recordings)."""
        if state is not None:
            self.check_state(state)
        ctx = StepContext(state, record_spikes, record_features)
        return self.forward_head(self.forward_features(x_seq, ctx), ctx), ctx

    def state_keys(self):
        """Names of the neurons that carry a membrane (the keys of a model state)."""
        return [m.state_key for m in self.modules() if isinstance(m, LIFNode)]

    def check_state(self, state) -> None:
        """Refuse a state that is not a dict with exactly this model's neuron names."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict of LIFState (or None), got {type(state).__name__}")
        expected = getattr(self, "_state_key_set", None)
        if expected is None:
            expected = self._state_key_set = frozenset(self.state_keys())
        got = set(state)
        if got != expected:
            extra, missing = sorted(got - expected)[:3], sorted(expected - got)[:3]
            raise ValueError(f"state does not belong to this model: unexpected {extra}, missing {missing}")

    def forward(self, x: Tensor, T: Optional[int] = None, per_step: bool = False):
        """Logits ``[B, classes]`` (mean over T of the per-step logits), starting from rest;
        with ``per_step`` the per-step logits ``[T, B, classes]`` (for per-timestep losses)."""
        out, _ = self.run(self.as_sequence(x, T))
        if per_step:
            return out
        if isinstance(out, tuple):
            return tuple(o.mean(0) for o in out)
        return out.mean(0)

    def forward_sequence(self, x: Tensor, state: Optional[ModelState] = None, T: Optional[int] = None):
        """Per-step logits ``[T, B, classes]`` and the state after the last step."""
        out, ctx = self.run(self.as_sequence(x, T), state)
        return out, ctx.new

    def step(self, x_t: Tensor, state: Optional[ModelState] = None):
        """Advance one timestep: ``x_t`` ``[B, C, H, W]`` -> (logits at this step ``[B, classes]``, state)."""
        if not isinstance(x_t, Tensor) or x_t.dim() != 4:
            shape = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"step() takes one frame [B, C, H, W], got {shape}; use forward_sequence for [T, ...]")
        self._check_frames(x_t, "frame")
        warn_if_other_size(self, x_t)
        out, ctx = self.run(x_t.unsqueeze(0), state)
        if isinstance(out, tuple):
            return tuple(o[0] for o in out), ctx.new
        return out[0], ctx.new

    def neuron_names(self):
        return [m.state_key for m in self.modules() if isinstance(m, SpikingNeuron)]

    def extra_repr(self) -> str:
        return f"embed_dims={self.embed_dims}, depths={self.depths}, in_channels={self.in_channels}, " \
               f"num_classes={self.num_classes}, kd={self.kd}, T={self.T}" + \
               ("" if self.head_input == "spikes" else f", head_input={self.head_input!r}")
