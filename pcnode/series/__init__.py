"""Your own time series: read them, put them on the model's clock and scale, cut them into windows.

Main entry points: `from_csv`, `from_npz`, `from_arrays` and `jena_climate` read a
`Series`; `prepare` turns a `SeriesSpec` (what a run's config stores as its data)
into training and test `Windows` and the `Scaling` that undoes everything on output.

Time. The model's clock runs in frames. For your series one frame is the median
sampling interval of the training data (`Scaling.time_scale`, in your time units;
dates count in seconds), so evenly sampled data lands on 0, 1, 2, ... and unevenly
sampled data keeps its real gaps: a reading 2.5 intervals after the previous one is
2.5 frames later, and the training rule measures segments and spans in those units.
Each window's clock starts at 0 at its first reading.

Values. Each column is standardised with the mean and standard deviation of the
training split; the numbers are stored in the run's config and undone on output, so
rollouts, queries and errors come back in your units.

Choosing the skip threshold. By default it is relative (`TrainConfig.relative_epsilon`,
2.5): a segment is kept while its stretched prediction's squared error, averaged over
columns, stays below 2.5 times the mean squared change of the standardised training
data over one reading. That change is measured when a run starts and stored with it,
so the same series in other units makes the same decisions. Raise the multiple for
fewer, longer segments; lower it for more updates. Noise counts as change and as
error alike; a series whose readings are mostly noise may need an absolute threshold
(`TrainConfig.epsilon`, a fraction of each column's variance here): with noise of
standard deviation s in a column of standard deviation sigma, start near
epsilon = 2 (s / sigma)^2 and raise it while the mean dt grows and the rollout error
does not.

Known inputs. Columns named as `input_columns` (`--input-columns a,b`; in an .npz, an
`inputs` array (series, frames, inputs) with optional `input_columns` names) are
covariates or actions the model is given, never asked to predict: the cell reads them
with the state at every update, and no loss or score counts them. In a rollout, a
forecast or an evaluation each update reads the last reading at or before its time, the
readings after the start included, so the state is predicted from the true future
inputs. Inputs known ahead of the state end a CSV series as scheduled readings, rows
with the state columns blank (`Series.scheduled`): forecasts read them, training does
not. A forecast whose series has no reading after its start holds the last one and
says so (`Forecast.inputs_held_from`; the CSV heads those columns `NAME (held)`). A
change of input is an event: a PC-ODE ends its segment at the first reading where an
input moves more than `SegmentRule.input_threshold` (standardised units) from what its
last update read, in teacher forcing as in rollouts. With the default 0, an input that
changes at every reading makes it update at every reading; raise the threshold to let it
jump over small changes. `aux_columns` is the form of runs written before inputs existed
(their auxiliary columns were decoded and fed back); a new run takes them as inputs.

Lengths. A long series is cut into windows of `window` readings every `stride`
readings (the last window is aligned to the end, so no reading is lost). By default
(`window="auto"`, `choose_window`) a series longer than twice `AUTO_WINDOW` (50)
readings is cut into windows of 50 every `AUTO_STRIDE` (10): whole, it would be one
slow training example. `window=None` keeps every series whole. Shorter series are
padded to the batch's length and masked: padded transitions carry no weight in the
loss and are never scored.
"""

from .csvfile import JENA_FORMAT, JENA_TIME, from_csv, jena_climate, to_csv
from .forecast import Forecast, forecast, write_forecast
from .io import Series, format_time, from_arrays, from_npz, parse_time, to_npz
from .windows import (
    AUTO_STRIDE,
    AUTO_WINDOW,
    Scaling,
    SeriesSpec,
    Windows,
    check_columns,
    choose_window,
    cut,
    evaluate_series,
    prepare,
    scaling_of,
    split,
)

__all__ = [
    "Series",
    "from_arrays",
    "from_csv",
    "from_npz",
    "to_csv",
    "to_npz",
    "jena_climate",
    "parse_time",
    "format_time",
    "JENA_TIME",
    "JENA_FORMAT",
    "Scaling",
    "Windows",
    "cut",
    "choose_window",
    "AUTO_WINDOW",
    "AUTO_STRIDE",
    "SeriesSpec",
    "split",
    "prepare",
    "scaling_of",
    "check_columns",
    "evaluate_series",
    "Forecast",
    "forecast",
    "write_forecast",
]
