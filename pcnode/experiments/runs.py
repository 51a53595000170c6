"""The jobs behind `pcnode data`, `train`, `eval` and `rollout`: a run folder from task
data or your series, its scores, its figures and forecasts."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

from .. import checkpoint as ckpt
from .. import pretrained
from ..checkpoint import load_run
from ..config import TrainConfig, load_config
from ..data import DATA_DIR, FileData, TaskData, Trajectories, save_npz, task_data
from ..errors import CheckpointError, ConfigError, DataError
from ..evaluate import evaluate
from ..forcing import forced_mean_dt
from ..kinds import build_model
from ..model import ModelConfig, SequenceModel
from ..planning.problems import PlanningData
from ..progress import bar
from ..segments import SegmentRule
from ..series import (
    Forecast,
    SeriesSpec,
    check_columns,
    evaluate_series,
    forecast,
    format_time,
    parse_time,
    prepare,
    scaling_of,
    write_forecast,
)
from .animations import draw_rollouts
from .figures import plot_forecast
from .progress import fit_with_bar

# What a run was trained on, as its config's "data" section describes it.
DataSpec = TaskData | FileData | PlanningData | SeriesSpec


def make_data(task: str, n: int, seed: int, out: Path | None = None) -> tuple[Path, tuple]:
    """Generate `n` trajectories of `task` into an .npz (default data/TASK-nN-seedS.npz)."""
    out = out or DATA_DIR / f"{task}-n{n}-seed{seed}.npz"
    arrays = task_data(task, n, seed)
    save_npz(out, **arrays)
    return out, arrays["x"].shape


def data_spec(d: dict) -> DataSpec:
    """The typed form of a run's "data" section: which kind of data, and how to read it again."""
    if not isinstance(d, dict):
        raise ConfigError(f"a run's data config must be a mapping, got {type(d).__name__}")
    if d.get("kind") == "series":
        return load_config(SeriesSpec, d, "data")
    if "planning" in d and isinstance(d["planning"], dict):  # a shipped planning model: its data is regenerated
        return load_config(PlanningData, {**d["planning"], "test_fraction": d.get("test_fraction", 0.1)}, "data")
    if "file" in d:
        return load_config(FileData, {k: d[k] for k in ("file", "test_fraction") if k in d}, "data")
    if {"task", "n", "seed"} <= set(d):
        return load_config(TaskData, {k: d[k] for k in ("task", "n", "seed", "test_fraction") if k in d}, "data")
    raise ConfigError(
        f"the run's data config {d} names neither a file nor a task with n and seed; "
        "this run cannot be evaluated from the command line"
    )


def dataset(spec: dict) -> tuple[Trajectories, Trajectories]:
    """The training and test trajectories a run's `data` config describes."""
    data = data_spec(spec)
    if isinstance(data, SeriesSpec):
        train, test, _ = prepare(data)
        return train, test
    return data.split()


def train_run(
    kind: str,
    out: Path,
    config: TrainConfig,
    rule: SegmentRule,
    model_fields: dict | None = None,
    task: str | None = None,
    n: int = 10_000,
    series: SeriesSpec | None = None,
    resume: bool = False,
) -> str:
    """Train a `kind` model on a built-in `task` (n trajectories) or on your `series` into `out`.

    Returns a line that describes what was trained on.
    """
    config.validate()
    fields = dict(model_fields or {})
    ModelConfig(kind=kind, **fields).validate()  # refused before any data is generated or read
    if series is None:
        spec = {"task": task, "n": n, "seed": config.seed, "test_fraction": 0.1}
        train, test = dataset(spec)
        about = f"{len(train)} training and {len(test)} test trajectories of {task}"
    else:
        stored = ckpt.read_json(out / ckpt.CONFIG).get("data") if resume and (out / ckpt.CONFIG).exists() else None
        if stored is not None and "scaling" not in stored:
            raise CheckpointError(
                f"{out} holds a run trained on a built-in task, not on a data file; "
                "resume it with `task` or choose another `run_dir`"
            )
        if stored:  # a resumed run keeps the scaling, inputs and windows it started with
            series = dataclasses.replace(
                series,
                scaling=stored["scaling"],
                **{k: stored.get(k, []) for k in ("input_columns", "aux_columns") if not getattr(series, k)},
            )
            if series.window == "auto":
                series = dataclasses.replace(series, window=stored.get("window"), stride=stored.get("stride"))
        if series.aux_columns and not (stored and stored.get("aux_columns")):
            # A new run reads auxiliary columns as known inputs: given in rollouts, never predicted
            # (runs from before inputs existed decoded them, and keep doing so when resumed).
            series = dataclasses.replace(
                series, input_columns=[*series.input_columns, *series.aux_columns], aux_columns=[]
            )
        chosen = series.window == "auto"
        train, test, series = prepare(series, rule.n_burn)
        if isinstance(series.window, int) and series.window <= rule.n_burn:
            raise DataError(
                f"windows of {series.window} readings are too short for rollouts, which need more than "
                f"the {rule.n_burn} burn-in readings: raise `window`"
            )
        fields["aux_dims"] = len(series.aux_columns)
        fields["input_dim"] = len(series.input_columns)
        spec = dataclasses.asdict(series)
        scale = series.scaling["time_scale"] if series.scaling else 1.0  # `prepare` fills the scaling in
        about = (
            f"{_count(len(train), 'training window')} {_windows_of(series, chosen, train)}, "
            f"{_count(len(test), 'test window')}, one frame = {scale:g} time unit" + ("s" if scale != 1 else "")
        )
    model_cfg = ModelConfig(kind=kind, state_dim=train.x.shape[-1], **fields).validate()
    model = build_model(model_cfg, seed=config.seed)
    fit_with_bar(model, train, test, config, out, spec, rule=rule, resume=resume)
    return about


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _windows_of(spec: SeriesSpec, chosen: bool, train) -> str:
    """How the series were cut (and whether `window="auto"` chose it), for `pcnode train`'s last line."""
    if spec.window is None:
        return f"(each series whole, the longest {int(train.lengths.max())} readings)"
    return f"of {spec.window} readings every {spec.stride or spec.window}" + (
        " (chosen for series this long; --window to change)" if chosen else ""
    )


def load(run: str | Path, device: str = "cpu") -> tuple[Path, SequenceModel, dict]:
    """(folder, model on `device`, config) of the run `run` (a folder or `pretrained:NAME`).

    A folder that holds run folders instead of being one (the demo's, reproduce's) is
    refused with their names, not as a damaged run.
    """
    folder = pretrained.resolve(run)
    config = folder / ckpt.CONFIG
    if folder.is_dir() and not (config.is_file() and "model" in _json_or_empty(config)):
        inside = sorted(p for p in folder.iterdir() if (p / ckpt.CONFIG).is_file() and (p / ckpt.CHECKPOINT).is_file())
        if inside:
            raise CheckpointError(
                f"{folder} is not a run folder: it holds the run folder"
                f"{'s' * (len(inside) > 1)} {', '.join(map(str, inside[:8]))}"
                f"{', ...' if len(inside) > 8 else ''}; give one of those"
            )
    model, cfg = load_run(folder, device=device)
    return folder, model, cfg


def _json_or_empty(path: Path) -> dict:
    try:
        return ckpt.read_json(path)
    except CheckpointError:
        return {}


def evaluate_run(
    run: str | Path, protocol: str = "pcnode", device: str = "cpu", series: dict | None = None, progress: bool = True
) -> tuple[dict, Path | None]:
    """Roll a trained run out on its test trajectories and score it.

    `run` is a folder or `pretrained:NAME`. For a series run, `series` overrides its
    stored reading of the data (another `file` is scored whole). Returns the scores and
    the file they were written to (None for a shipped model, whose folder is part of
    the installed package).
    """
    folder, model, cfg = load(run, device)
    if cfg["data"].get("kind") == "series":
        if protocol != "pcnode":
            raise ConfigError("the authors' protocol scores the built-in tasks; series runs are scored in your units")
        spec = load_config(SeriesSpec, {**cfg["data"], **(series or {})}, "data")
        data = spec.read()
        if "file" not in (series or {}):
            data = spec.split_series(data)[1]
        check_columns(load_config(SeriesSpec, cfg["data"], "data"), data, model.config, spec.file)
        # The bar clears itself so that the scores printed after it stand alone.
        with bar(progress, desc="rollouts", unit="window", leave=False) as shown:
            m = evaluate_series(model, spec, data, progress=shown.update)
        scale = spec.scaling["time_scale"]
        metrics = {
            "model": model.config.kind,
            "data": spec.file,
            "series": len(data),
            "mse": m["mse"],
            "mean_dt": m["mean_dt"] * scale,
            "mean_dt_frames": m["mean_dt"],
            "updates": m["updates"],
            "rollout_s": m["rollout_s"],
        }
        name = "eval.json" if "file" not in (series or {}) else f"eval-{Path(spec.file).stem}.json"
    else:
        if series:
            raise ConfigError("a series file works with runs trained on a series file; this run was trained on a task")
        _, test = dataset(cfg["data"])
        with bar(progress, total=len(test), desc="rollouts", unit="traj", leave=False) as shown:
            scores = evaluate(model, test.to(device), progress=shown.update, protocol=protocol)
        if protocol == "authors":  # their code reports the mean length of teacher forcing's segments
            train_config = load_config(TrainConfig, {**cfg["train"], "device": "cpu"}, "training")
            scores["mean_dt"] = forced_mean_dt(model, test.to(device), config=train_config)
        metrics = {"model": model.config.kind, "trajectories": len(test), "protocol": protocol, **scores}
        name = "eval.json" if protocol == "pcnode" else f"eval-{protocol}.json"
    if pretrained.is_pretrained(run):
        return metrics, None
    ckpt.write_json(folder / name, metrics)
    return metrics, folder / name


def draw_run(
    run: str | Path, out: Path | None = None, index: int = 0, count: int = 3, every: float = 0.25
) -> list[Path]:
    """`paths.png` and `rollout.gif` of a task run's test trajectories `index..index+count-1`,
    read every `every` frames, into `out` (default: the run folder; runs/pretrained/NAME
    for a shipped model)."""
    if not (math.isfinite(every) and every > 0):
        raise ConfigError(f"`every` must be a positive finite number of frames, got {every}")
    if count < 1:
        raise ConfigError(f"`count` must be at least 1, got {count}")
    folder, model, cfg = load(run)
    if cfg["data"].get("kind") == "series":
        raise ConfigError("a series run is rolled out from a time: give `start` and `ahead`")
    _, test = dataset(cfg["data"])
    if not 0 <= index < len(test):
        raise ConfigError(f"`index` must be in [0, {len(test) - 1}]")
    out = out or (Path("runs/pretrained") / folder.name if pretrained.is_pretrained(run) else folder)
    out.mkdir(parents=True, exist_ok=True)
    return list(
        draw_rollouts(
            out,
            {model.config.kind: model},
            test.x[index : index + count],
            model.rule.n_burn,
            every=every,
            box=cfg["data"].get("task", "").startswith("billiards"),
            first=index,
            progress=True,
        )
    )


def forecast_run(
    run: str | Path,
    start: str,
    ahead: float,
    every: float | None = None,
    series: dict | None = None,
    series_id: str | None = None,
    out: Path | None = None,
    extrapolate: bool = False,
) -> tuple[list[Path], Forecast]:
    """Forecast a series run `ahead` of your time units past `start` (the readings at or
    before it are the burn-in). Writes PREFIX.csv and PREFIX.png (default RUN/forecast);
    returns them and the `Forecast` (its `inputs_held_from` says whether a run with known
    inputs found them in the series over the forecast or held the last reading).

    A `start` past the series' last reading is refused unless `extrapolate`: the rollout
    would run unchecked from that reading to `start` before the forecast begins."""
    folder, model, cfg = load(run)
    if cfg["data"].get("kind") != "series":
        raise ConfigError("a forecast from a time needs a run trained on a series file")
    spec = load_config(SeriesSpec, {**cfg["data"], **(series or {})}, "data")
    data = spec.read()
    check_columns(load_config(SeriesSpec, cfg["data"], "data"), data, model.config, spec.file)
    if series_id is not None and series_id not in data.ids:
        raise DataError(f"no series '{series_id}' in {spec.file}; its ids are: {', '.join(data.ids[:20])}")
    i = 0 if series_id is None else data.ids.index(series_id)
    try:
        t0, _ = parse_time(start, spec.time_format if data.dates else None)
    except ValueError as e:
        raise ConfigError(f"`start`: {e}") from None
    last = float(data.t[i][-1])
    if t0 > last and not extrapolate:

        def shown(v):
            return format_time(v, data.dates, spec.time_format)

        raise ConfigError(
            f"`start` {start} is past the last reading of series '{data.ids[i]}', at {shown(last)}; "
            f"a forecast starts at or before it (`start` {shown(last)} with `ahead` "
            f"{t0 + ahead - last:g} ends at the same time), or give `extrapolate` to roll out "
            f"from that reading over the {t0 - last:g} time units before {start}"
        )
    t, x = data.with_scheduled(i)
    with warnings.catch_warnings():  # a forecast that holds the inputs says so in its result
        warnings.simplefilter("ignore", RuntimeWarning)
        f = forecast(model, scaling_of(spec), t, x, model.rule.n_burn, t0, ahead, every)
    prefix = out or folder / "forecast"
    csv_path, png_path = Path(f"{prefix}.csv"), Path(f"{prefix}.png")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    write_forecast(csv_path, f, data.state_columns, data.dates, spec.time_format, data.input_columns)

    def axis(v):  # dates as datetimes on the plot
        return (v * 1000).astype("datetime64[ms]") if data.dates else v

    seen = (t >= f.burn_t[0]) & (t <= t0 + ahead)
    held = "" if f.inputs_held_from is None else ", inputs held"
    plot_forecast(
        png_path,
        axis(t[seen]),
        x[seen, : len(data.state_columns)],
        data.state_columns,
        {model.config.kind: (axis(f.times), f.values, axis(f.update_times))},
        axis(f.burn_t),
        f.burn_x,
        title=f"{folder.name}: series {data.ids[i]} from {start}{held}",
        time_label="time" + (" (UTC)" if data.dates else ""),
    )
    return [csv_path, png_path], f
