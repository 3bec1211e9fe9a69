"""The production loop: model registry, drift monitoring, re-tuning, simulation.

* :mod:`tuneops.ops.registry` - versions, champion and events in the study storage; ``deploy``.
* :mod:`tuneops.ops.drift` - drift tests and reference profiles (pure functions).
* :mod:`tuneops.ops.monitor` - thresholds, batch validation, the decision rule, ``check_batch``.
* :mod:`tuneops.ops.retune` - challenger vs champion on recent data, promote or keep.
* :mod:`tuneops.ops.simulate` - a drifting stream from a real dataset, end to end.
"""
