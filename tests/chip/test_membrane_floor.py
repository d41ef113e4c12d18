"""The chip's leak ``h = (v + x) >> 1`` (floor) spikes exactly where the float LIF does, when the
inputs and the threshold are integers in membrane units (docs/chip.md, "Where the disagreement
comes from"): the float membrane then exceeds the integer one by less than one unit, which cannot
cross an integer threshold.  With a threshold off the integers the floor does move spikes."""

import numpy as np
import torch

from snn.backends.chip.reference import shr
from snn.neurons.lif import lif_step


def _spikes(x_seq: np.ndarray, theta_int: int, v_threshold: float):
    """Spikes of the chip's integer LIF (floor leak, threshold ``theta_int``) and of the float LIF
    (``snn.neurons.lif_step``, float64, threshold ``v_threshold``) on the same integer inputs."""
    v_int = np.zeros(x_seq.shape[1], np.int64)
    v_f = None
    chip, flt = [], []
    for x in x_seq:
        h = shr(v_int + x, 1, half_up=False)
        s = h >= theta_int
        v_int = np.where(s, 0, h)
        chip.append(s)
        sf, v_f = lif_step(torch.from_numpy(x.astype(np.float64)), v_f, tau=2.0, v_threshold=v_threshold)
        flt.append(sf.numpy().astype(bool))
    return np.array(chip), np.array(flt)


def test_the_floor_never_moves_a_spike_on_integer_inputs_and_thresholds():
    rng = np.random.default_rng(0)
    for theta in (1, 3, 16, 255, 1286, 9000):
        x = rng.integers(-theta, 2 * theta + 1, size=(300, 500))
        chip, flt = _spikes(x, theta, float(theta))
        assert chip.any() and not chip.all()
        np.testing.assert_array_equal(chip, flt)


def test_with_a_threshold_off_the_integers_the_floor_moves_spikes():
    """The control: the same inputs with the float threshold half a unit lower than the chip's
    (the ``ceil`` of a threshold that is not an integer) differ."""
    rng = np.random.default_rng(0)
    x = rng.integers(-16, 33, size=(300, 500))
    chip, flt = _spikes(x, 16, 15.5)
    assert (chip != flt).any()
