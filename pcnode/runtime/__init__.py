"""Run an exported model without PyTorch: numpy and onnxruntime only.

`pcnode export RUN --out DIR` (or `pcnode.export.export`) writes a model's two pure
step functions as ONNX files with its segment rule (`pcnode.export`). This package
reads them back and runs the host loop around them in numpy, the same loop as the
eager `pcnode.Stream` and `pcnode.rollout`, step for step:

    >>> from pcnode import runtime                          # doctest: +SKIP
    >>> model = runtime.load("exported/billiards2d-pcode")   # doctest: +SKIP
    >>> stream = runtime.Stream(model, batch=1)              # doctest: +SKIP
    >>> stream.observe(0.0, [0.2, 0.3, 0.7, 0.5])            # doctest: +SKIP
    array([ True])
    >>> ro = runtime.rollout(model, x_burn, horizon=44)      # doctest: +SKIP

Nothing here imports torch (`import pcnode.runtime` in a process without PyTorch
works), and nothing loaded runs code: model.json is JSON, the functions are ONNX graphs.
Time is in frames, as everywhere in pcnode.
"""

from .model import Exported, Rule, load
from .rollout import Rollout, rollout, rollout_from
from .stream import Stream

__all__ = ["load", "Exported", "Rule", "Stream", "Rollout", "rollout", "rollout_from"]
