"""Known inputs on a real record: US unemployment driven by output growth (Okun's law), 1959-2009.

The series ship inside statsmodels (`statsmodels.datasets.macrodata`, quarterly), so
nothing is downloaded. The state is the unemployment rate (`unemp`, %); the known input
is real GDP growth (`realgdp`, quarter on quarter, annualised %): when output grows
slower than its trend, unemployment rises. A PC-ODE trained with GDP growth as an input
reads the growth in force at each of its updates, the held-out quarters' included, and
never predicts it (a scenario: "had GDP done this"); one trained without it has only
unemployment's own past. Both are rolled out over the same held-out years.

    pip install -e ".[examples]"
    python examples/okun.py          # a few minutes on one CPU core; writes runs/okun/okun.png

The first 70% of the quarters train (windows of 24 quarters, stride 1); the rest
(1994-2009: the 2001 recession and the 2008-2009 one) is held out and rolled out from 4
burn-in quarters. Errors are in the data's units (percentage points squared). A change
of input is an event: the PC-ODE with inputs updates where GDP growth moves more than
`--input-threshold` (in standard deviations of the training split) from the value its
last update read; with 0 it would update every quarter, since growth changes every quarter.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, evaluate, fit
from pcnode.experiments.figures import plot_forecast
from pcnode.series import Scaling, cut, forecast, from_arrays, split

N_BURN = 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--epsilon", type=float, default=0.01, help="skip threshold (fraction of the variance)")
    p.add_argument("--input-threshold", type=float, default=0.05,
                   help="income change that ends a segment, in training-split standard deviations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/okun"))
    args = p.parse_args()
    torch.set_num_threads(1)
    from statsmodels.datasets import macrodata

    df = macrodata.load_pandas().data
    t = (df["year"] + (df["quarter"] - 1) / 4).to_numpy()[1:]
    unemp = df[["unemp"]].to_numpy()[1:]
    growth = 400 * np.diff(np.log(df[["realgdp"]].to_numpy()), axis=0)  # over the quarter that ends at t
    runs = {"with GDP": from_arrays([unemp], [t], ["unemployment"], ["us"], inputs=[growth],
                                    input_columns=["GDP growth"]),
            "without": from_arrays([unemp], [t], ["unemployment"], ["us"])}

    print(f"{'PC-ODE':>12} {'MSE':>9} {'RMSE':>7} {'mean dt (quarters)':>19} {'updates/rollout':>16} {'train s':>8}")
    forecasts = {}
    for name, series in runs.items():
        train, test = split(series, test_fraction=0.3, by="time")
        scaling = Scaling.fit(train)
        tw, vw = cut(train, scaling, window=24, stride=1), cut(test, scaling)
        std = torch.tensor(scaling.std[:1], dtype=torch.float32)  # errors in the state column only
        torch.manual_seed(args.seed)
        model = build_model(ModelConfig(state_dim=1, input_dim=series.input_dims, hidden=64, latent=64))
        rule = SegmentRule(n_burn=N_BURN, input_threshold=args.input_threshold if series.input_dims else 0.0)
        cfg = TrainConfig(steps=args.steps, batch_size=32, eval_every=args.steps, decay_every=200, seed=args.seed,
                          epsilon=args.epsilon)
        start = time.perf_counter()
        fit(model, tw, cfg, rule=rule)
        seconds = time.perf_counter() - start
        m = evaluate(model, vw, scale=std)
        print(f"{name:>12} {m['mse']:9.2e} {m['mse'] ** 0.5:7.4f} {m['mean_dt']:19.2f} {m['updates']:16.1f} "
              f"{seconds:8.0f}")
        burn_end = test.t[0][N_BURN - 1]
        f = forecast(model, scaling, series.t[0], series.x[0], N_BURN, burn_end, ahead=t[-1] - burn_end)
        forecasts[f"PC-ODE {name}"] = (f.times, f.values, f.update_times)
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "okun.png"
    plot_forecast(png, t, np.concatenate([unemp, growth], 1), ["unemployment (%)", "GDP growth (%, given)"],
                  {k: (ft, np.concatenate([fv, np.interp(ft, t, growth[:, 0])[:, None] if "GDP" in k
                                           else np.full((len(ft), 1), np.nan)], 1), ups)
                   for k, (ft, fv, ups) in forecasts.items()},
                  f.burn_t, np.concatenate([f.burn_x, np.interp(f.burn_t, t, growth[:, 0])[:, None]], 1),
                  title=f"US unemployment: rollouts from {burn_end:g}, with and without GDP growth as a known input",
                  time_label="year")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
