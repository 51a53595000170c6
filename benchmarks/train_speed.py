"""Training step time on Billiards2D (batch 256, 44 transitions), every contender in one run.

A step is teacher forcing + backward + Adam. The contenders take their steps in turn on
the same batch (A B C A B C ...), so a ratio between two of them is taken in one
sitting even on a machine whose speed drifts. Prints one JSON line per contender:
{"name", "ms_median", "ms_p25", "ms_p75", "mean_dt", ...}, then the ratios to the
authors' loop when it is timed.

Contenders:
  pcode, rnn, odernn       our models from initialisation (a PC-ODE that has not yet
                           learned to skip: mean dt about 1.1); also the peers by their
                           `pcnode reproduce` names (cfc, odernn-adaptive, odernn-kinetic);
  pcode@RUN (--init RUN)   our PC-ODE with the weights of a trained run (or pretrained:NAME), which skips;
                           timed at a negligible learning rate so that the steps do not
                           knock it off its skip rate;
  reference (--reference)  the plain per-frame formulation `pcnode.forcing.reference_forcing`
                           on the trained PC-ODE (or from initialisation without --init);
  authors-pcode, authors-rnn (--authors DIR)
                           the authors' released training step (greydanus/piecewise_node)
                           imported from DIR/piecewise_node, which stays outside this
                           project. Their step costs the same at every stage of training
                           (every row runs every frame), so it is timed from initialisation.

    python benchmarks/train_speed.py [--threads 1] [--steps 30] [--models pcode rnn odernn]
        [--init RUN] [--reference] [--authors DIR] [--device cpu] [--precision float32|bfloat16]
"""
import argparse
import dataclasses
import json
import sys
import time
import types

import torch

from pcnode import ModelConfig, SegmentRule, TrainConfig, build_model, load_run, pretrained, teacher_forcing
from pcnode.data import split, task_data
from pcnode.experiments.reproduce import VARIANTS
from pcnode.reference import reference_forcing
from pcnode.segments import mean_square_change


class Contender:
    """A model, its optimiser and a loss function `loss(model, seq) -> (total, mean_dt)`."""

    def __init__(self, name, model, loss, lr=1e-3, precision="float32"):
        self.name, self.model, self.loss, self.precision = name, model, loss, precision
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-7)
        self.ms, self.dts = [], []

    def step(self, seq, device, record):
        tick = time.perf_counter()
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            total, mean_dt = self.loss(self.model, seq)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if record:
            self.ms.append(1e3 * (time.perf_counter() - tick))
            self.dts.append(mean_dt)


def ours(change, config):
    """Our teacher forcing under the default rule, its threshold fixed on the data's change per frame."""
    def loss(model, seq):
        out = teacher_forcing(model, seq, SegmentRule.resolve(model.rule, change), config)
        return out.total, out.mean_dt
    return loss


def plain(change, config):
    def loss(model, seq):
        out = reference_forcing(model, seq, SegmentRule.resolve(model.rule, change), config)
        return out.total, out.mean_dt
    return loss


def authors_step(folder):
    """The authors' teacher forcing, imported from FOLDER/piecewise_node.

    Their package imports optional libraries that the training step never uses
    (torchdyn for their ODE variant); empty stand-ins let it import."""
    for name in ("torchdyn", "torchdyn.models"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["torchdyn.models"].NeuralDE = None
    sys.path.insert(0, folder)
    from piecewise_node.models import SequenceModel
    from piecewise_node.teacher_forcing import teacher_forcing as their_forcing
    from piecewise_node.train import get_train_args

    def make(jumpy, device):
        args = get_train_args()
        args.input_dim, args.aux_dims, args.jumpy, args.device = 4, 0, jumpy, device
        torch.manual_seed(0)
        model = SequenceModel(args.input_dim, args.hidden_dim, args.rnn_dim)

        def loss(model, seq):
            x = seq.transpose(0, 1)  # their tensors are time-major
            ldx, ldt, mean_dt = their_forcing(model, x[:-1], x[1:] - x[:-1], args, jumpy=jumpy)
            return ldx + ldt, mean_dt
        return model, loss
    return make


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--models", nargs="*", default=["pcode", "rnn", "odernn"])
    p.add_argument("--init", help="a trained PC-ODE run folder, or pretrained:NAME, to time as well "
                   "(a trained model skips)")
    p.add_argument("--reference", action="store_true", help="also time the plain per-frame formulation")
    p.add_argument("--authors", help="folder holding the authors' piecewise_node checkout")
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16: our forward passes under torch.autocast (the authors' stay float32)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = split(task_data("billiards2d", 2000, 0)["x"])
    change, config = mean_square_change(train), TrainConfig()

    def ours_model(name):
        v = VARIANTS[name]
        return build_model(ModelConfig(kind=v.kind, state_dim=4, solver=v.solver), seed=0).to(args.device)

    contenders = [Contender(name, ours_model(name),
                            ours(change, dataclasses.replace(config, field_penalty=VARIANTS[name].field_penalty)),
                            precision=args.precision)
                  for name in args.models]
    trained = None
    if args.init:
        trained = ours_model("pcode")
        trained.load_state_dict(load_run(pretrained.resolve(args.init))[0].state_dict())
        # A fresh Adam would knock a trained model off its skip rate in its first steps.
        contenders.append(Contender(f"pcode@{args.init}", trained, ours(change, config), lr=1e-7,
                                    precision=args.precision))
    if args.reference:
        model = ours_model("pcode")
        if trained is not None:
            model.load_state_dict(trained.state_dict())
        contenders.append(Contender("reference", model, plain(change, config), lr=1e-7 if trained is not None else 1e-3,
                                      precision=args.precision))
    if args.authors:
        make = authors_step(args.authors)
        for kind in ("pcode", "rnn"):
            model, loss = make(kind == "pcode", args.device)
            contenders.append(Contender(f"authors-{kind}", model.to(args.device), loss))

    gen = torch.Generator().manual_seed(0)
    warmup = 3
    for k in range(args.steps + warmup):
        seq = train[torch.randint(len(train), (args.batch,), generator=gen)].to(args.device)
        for c in contenders:
            torch.manual_seed(k)  # the same random skips for every PC-ODE
            c.step(seq, args.device, record=k >= warmup)

    def quantile(v, q):
        v = sorted(v)
        return v[min(len(v) - 1, int(q * len(v)))]
    medians = {}
    for c in contenders:
        medians[c.name] = quantile(c.ms, 0.5)
        print(json.dumps({"name": c.name, "ms_median": round(medians[c.name], 1),
                          "ms_p25": round(quantile(c.ms, 0.25), 1), "ms_p75": round(quantile(c.ms, 0.75), 1),
                          "mean_dt": round(sum(c.dts) / len(c.dts), 2), "threads": args.threads,
                          "batch": args.batch, "device": args.device, "precision": c.precision}), flush=True)
    if "authors-pcode" in medians:
        for name, ms in medians.items():
            base = "authors-rnn" if name == "rnn" else "authors-pcode" if name.startswith("pcode") else None
            if base is not None:
                print(f"{name}: {ms / medians[base]:.2f}x {base}")


if __name__ == "__main__":
    main()
