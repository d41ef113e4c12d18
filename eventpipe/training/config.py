"""Training configuration: dataclasses loaded from TOML (``configs/train_*.toml``).

Every field has a default, so a config file only lists what it changes; unknown
keys are errors (:func:`eventpipe.config.from_dict`).  Overrides from the command
line look like ``optim.epochs=3`` or ``data.n_per_class=10``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal, Optional

from eventpipe.config import apply_overrides, bounded, from_dict, load_toml
from eventpipe.errors import ConfigError
from eventpipe.represent import InputRecipe, RecipeError
from eventpipe.training.robust import validate_noise

DatasetKind = Literal["synthetic", "synthetic_stream", "hardvs", "gesture", "gesture_npy", "folder",
                      "recordings", "recordings_stream"]


@dataclass
class AugmentConfig:
    enabled: bool = True
    hflip: float = 0.5            # probability; labels are swapped through the class names
    vflip: float = 0.0            # (left<->right, up<->down, clockwise<->anticlockwise)
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random crop side (fraction), resized back
    crop_aspect: float = 0.1      # max relative aspect change of the crop
    event_drop: float = 0.2       # up to this fraction of events dropped (frames: binomial thinning)
    time_jitter_us: int = 2_000   # event datasets: std of per-event time noise; the clip start is random too
    time_reverse: float = 0.0     # frame datasets: probability of playing the windows backwards (order
                                  # reversed, the two channels swapped; motion labels swapped: clockwise<->
                                  # anticlockwise, swipe up<->down and left<->right; augment.time_reverse_map)


@dataclass
class DataConfig:
    dataset: DatasetKind = "synthetic"
    root: str = ""                      # dataset root (not synthetic)
    cache_dir: str = ".cache/eventpipe/frames"   # synthetic frame cache
    # synthetic
    n_per_class: int = bounded(100, ge=1)
    n_test_per_class: int = 30
    seed: int = 0
    sensor_size: tuple[int, int] = (64, 64)     # (W, H) of the generated clips
    duration_us: int = 1_000_000
    gen_workers: int = 1
    # synthetic_stream: live streams windowed like the runtime, one target per window
    n_streams: int = 20                 # training streams (test: n_test_streams), seeds in stream_data
    n_test_streams: int = 4
    stream_seconds: float = 60.0        # event time per stream
    switch_every_s: float = 3.0         # a new action every this many seconds
    run_windows: int = 32               # windows per training run (the model's T stays data.T)
    clips_per_stream: int = 32          # training runs drawn per stream and epoch
    burn_in: int = 8                    # first windows of a run carry no loss (state from rest)
    switch_grace_us: int = 100_000      # windows ending this soon after a switch carry no loss
    switch_weight: float = 1.0          # loss weight of the windows ending within switch_focus_us
    switch_focus_us: int = 500_000      # after a switch (past the grace): learn to switch fast
    class_weights: dict = field(default_factory=dict)   # stream loss weight per class name (default 1)
    switch_runs: float = 0.0            # fraction of training runs cut around a switch: the burn-in
    switch_run_lead: int = 6            # and 1..switch_run_lead more windows of the old action, then
                                        # the new one (stream_data.switch_offset)
    # clips
    T: int = bounded(8, ge=1)           # windows per clip (model timesteps)
    window_us: int = bounded(100_000, ge=1)     # window length
    stride_us: int = 0                  # window start to start (0 = window_us); runtime default too
    # the model input (eventpipe.represent.InputRecipe, stored in the checkpoint; docs/represent.md)
    input_size: tuple[int, int] = (64, 64)      # (W, H) fed to the model
    representation: str = "log1p"       # counts | binary | log1p | clip:N ("log" = log1p)
    # input channels: "polarity" = (OFF, ON) counts per window; "halves" = all-polarity counts of
    # the first and second half of each window (shows the direction of motion inside a window)
    channels: Literal["polarity", "halves"] = "polarity"
    clip_count: int = 255               # pooled counts saturate here before the representation
    pooling: Literal["mean", "sum"] = "mean"    # mean: counts / f**2 (f = the sensor pooling factor)
    policy: Literal["pad", "crop"] = "pad"      # sensor -> input: pool to fit + zero border | to cover + crop
    roi: Optional[tuple[int, int, int, int]] = None  # (x0, y0, w, h) of the sensor (None = all)
    flip_x: bool = False                # mirror every sample (a mounting, not an augmentation)
    flip_y: bool = False
    # real datasets
    train_split: str = "train"
    test_split: str = "test"
    class_names: list[str] = field(default_factory=list)  # optional names (hardvs); folder/gesture infer them
    extensions: list[str] = field(default_factory=list)   # folder layout: allowed suffixes (empty = any)
    test_fraction: float = 0.2          # folder layout without train/test subfolders (recordings: of the takes)
    test_takes: list[str] = field(default_factory=list)   # recordings: held-out takes (names without suffix)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    name: str = "meta_spikeformer_tiny"
    embed_dims: tuple[int, int, int, int] = (16, 32, 64, 128)
    depths: tuple[int, int] = (1, 1)
    conv_mlp_ratio: int = 2
    mlp_ratio: float = 4
    num_heads: int = 8
    extra: dict = field(default_factory=dict)   # any other MetaSpikeFormer keyword


@dataclass
class OptimConfig:
    optimizer: Literal["adamw", "lamb"] = "adamw"
    lr: float = bounded(2e-3, gt=0)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    epochs: int = bounded(12, ge=1)
    batch_size: int = bounded(16, ge=1)
    warmup_epochs: float = bounded(1.0, ge=0)
    min_lr_ratio: float = 0.01
    label_smoothing: float = 0.1
    clip_grad: float = 1.0
    per_step_loss: bool = False         # cross-entropy on every timestep's logits (TET)
    freeze_bn: bool = False             # BatchNorm keeps its running statistics (fine-tuning)
    aux_weight: float = 1.0             # loss weight of the aux_data batch
    consistency_weight: float = 0.0     # stream data: weight of the squared change of the class
                                        # probabilities between consecutive windows of one action
    consistency_settle: int = 0         # ... only where both windows' target has held (valid, the
                                        # same) for this many windows of the run: steady labels
                                        # once an action has settled, free to change at a switch
    decoded_weight: float = 0.0         # stream data: weight of the loss on the decoder-smoothed
                                        # probabilities (eventpipe.training.decoded_loss): the
                                        # target must lead by decoded_margin in the EMA (decoded_ema)
    decoded_ema: float = 0.6
    decoded_margin: float = 0.4
    decoded_start: int = 5              # windows a new target has held (after the grace) before it counts
    decoded_focus_end: int = 8          # ... and up to here after a switch it weighs decoded_focus_weight
    decoded_focus_weight: float = 4.0
    transition_weight: float = 0.0      # while the label turns at a switch, no third class may lead
    transition_margin: float = 0.1      # ... in the decoded EMA (by this margin; decoded_loss)
    direction_weight: float = 0.0       # stream data: the target's logit must lead its time
    direction_margin: float = 2.0       # reversal's (the other direction: clockwise <-> anticlockwise,
                                        # swipes) by this margin (decoded_loss.direction_loss)
    aux_batch_size: int = bounded(16, ge=1)
    noise_lif_std: float = 0.0          # robustness (eventpipe.training.robust; all 0 = off): Gaussian
                                        # noise on every LIF input, std in thresholds, per step
    noise_weight_std: float = 0.0       # relative Gaussian weight noise, drawn anew per batch
    noise_consistency_weight: float = 0.0   # > 0: clean training pass + a perturbed pass of the same
                                        # batch, loss weight * KL(clean || perturbed); 0: noise in every pass
    amp: bool = True                    # only used when CUDA is present
    channels_last: bool = True          # only used when CUDA is present


@dataclass
class TrainConfig:
    out_dir: str = "runs/synthetic"
    seed: int = 0
    threads: int = bounded(1, ge=1)     # torch intra-op threads on CPU (1 is fastest on a loaded box)
    num_workers: int = bounded(0, ge=0)
    eval_every: int = 1                 # epochs
    log_every: int = 10                 # steps
    resume: str = ""                    # path to last.pt, or "auto" = <out_dir>/last.pt if present
    init: str = ""                      # start from these weights (an snn checkpoint; fine-tuning)
    made_by: str = ""                   # how the exported model was made (the commands), kept in
                                        # the export's extra["made_by"]
    export: str = ""                    # also save the final/best weights here (fp16 if export_fp16)
    export_fp16: bool = True
    export_best: bool = True
    device: str = "auto"                # auto | cpu | cuda
    progress: bool = True
    max_steps: int = bounded(0, ge=0)   # stop after this many steps (0 = all epochs); for tests
    data: DataConfig = field(default_factory=DataConfig)
    # optional second training set, one batch of it per step added to the loss with
    # optim.aux_weight (e.g. clips while fine-tuning on streams, to keep clip accuracy)
    aux_data: Optional[DataConfig] = None
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


def load_train_config(path: Optional[str] = None, overrides: Optional[list[str]] = None) -> TrainConfig:
    data = load_toml(path) if path else {}
    data = apply_overrides(data, list(overrides or []))
    cfg = from_dict(TrainConfig, data)
    validate_noise(cfg.optim)               # a bad noise setting fails here, naming its key
    data_recipe(cfg.data)                   # a bad input recipe fails here, naming its key
    if cfg.aux_data is not None:
        data_recipe(cfg.aux_data, "aux_data")
    return cfg


def config_dict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def data_recipe(d: DataConfig, where: str = "data") -> InputRecipe:
    """The model-input recipe of a data config (what the checkpoint stores); a bad value is
    a :class:`~eventpipe.errors.ConfigError` naming ``<where>.<key>``."""
    from eventpipe.represent.checkpoint import V1_NORMALISATION

    key = {"size": "input_size", "normalisation": "representation", "stride_us": "stride_us"}
    try:
        return InputRecipe(size=tuple(d.input_size), window_us=d.window_us,
                           stride_us=d.stride_us or None, channels=d.channels, policy=d.policy,
                           roi=d.roi, flip_x=d.flip_x, flip_y=d.flip_y, clip_count=d.clip_count,
                           pooling=d.pooling,
                           normalisation=V1_NORMALISATION.get(d.representation, d.representation))
    except RecipeError as e:
        base, _, index = e.field.partition("[")
        name = key.get(base, base) + (f"[{index}" if index else "")
        raise ConfigError(f"{where}.{name}: {e.message}") from None


def synthetic_cache_key(d: DataConfig, split: str) -> str:
    """Hash of everything that changes the cached synthetic counts of one split (sensor
    resolution, the recipe's windows and ceiling; the geometry is applied when read)."""
    from eventpipe.synthetic import CLASS_NAMES

    r = data_recipe(d)
    keyed = dict(split=split, n=d.n_per_class if split == "train" else d.n_test_per_class,
                 seed=d.seed, sensor_size=list(d.sensor_size), duration_us=d.duration_us,
                 window_us=r.window_us, stride_us=r.stride, channels=r.channels,
                 classes=list(CLASS_NAMES), clip_count=r.count_ceiling, v=2)
    return hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
