"""The CPU backend: a folded Meta-SpikeFormer with an event-driven fast path (numba, float32).

* :mod:`.kernels` / :mod:`.dense_kernels` - the numba kernels (LIF -> active lists, gather convs,
  depthwise convs, the fused attention);
* :mod:`.layout` - aligned arrays, weight packing, active lists, channels-last views, scratch;
* :mod:`.runners` - one runner per block kind; :mod:`.threads` - numba's pool vs torch's threads;
* :mod:`.modules` - ``Pointwise`` (1x1 conv as GEMM), ``FastBlock`` (runner or folded block);
* :mod:`.spikeconv` - ``SpikeConv2d`` (event-driven 3x3 conv for blocks without a runner);
* :mod:`.build` - :func:`build` (model -> CPU stepper) and :func:`install`.
"""

from .build import build, fast_runners, install
from .modules import FastBlock, Pointwise, eligible
from .spikeconv import SpikeConv2d

__all__ = ["FastBlock", "Pointwise", "SpikeConv2d", "build", "eligible", "fast_runners", "install"]
