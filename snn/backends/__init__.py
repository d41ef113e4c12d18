"""Execution backends of Meta-SpikeFormer; each turns a model into a :class:`~snn.stepper.Stepper`.

* ``cpu`` (:mod:`snn.backends.cpu`): folded model, event-driven float32 fast path (numba).

Pick one by name with :func:`snn.stepper.make_stepper`.
"""
