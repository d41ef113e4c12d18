"""Execution backends of Meta-SpikeFormer; each turns a model into a :class:`~snn.stepper.Stepper`.

* ``cpu`` (:mod:`snn.backends.cpu`): folded model, event-driven float32 fast path (numba).
* ``chip`` (:mod:`snn.backends.chip`, public names in :mod:`snn.chip`): integer, event-driven.

Pick one by name with :func:`snn.stepper.make_stepper`.
"""
