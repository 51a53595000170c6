"""Piecewise-constant neural ODEs and the two baselines they are measured against.

Greydanus, Lee & Fern, "Piecewise-constant Neural ODEs", 2021 (arXiv:2106.06621).

Time is a real number measured in data frames everywhere in pcnode: a span of 1 is
one frame, 2.5 is two and a half frames.

The three models of the paper share one encoder, one GRU cell and one decoder, and
differ only in how the hidden state moves between cell updates (`advance`) and in
whether they choose how long to wait before the next update (the PC-ODE's `dt_raw`
head, bounded by its segment rule):

- `PCODE`: the state is `h = [z, v]`; between updates `z` moves on a straight line
  with velocity `c * v`, so one Euler step is exact for any span. A head predicts how
  long that line stays valid, and the model jumps that far before its next update.
- `RNN`: time passes only through cell updates, one per frame.
- `ODERNN` (`pcnode.flows`): between updates the state follows a learned vector field
  `dh/dt = f(h)`; one update per frame.

One peer a user might pick instead sits behind the same interface: `CfC`, a closed-form
continuous-time cell (`pcnode.flows`, the `peers` extra).

The decoder always predicts the change in the observation since the frame the cell
last read, never the observation itself.

Known inputs. A model with `input_dim > 0` reads, at every update, the frame's state
(`state_dim` numbers) followed by the known inputs in force at that time (`input_dim`
numbers: covariates recorded or scheduled, or a controller's actions). Inputs are given,
never predicted: the decoder predicts the state alone, and teacher forcing, rollouts and
scores take the inputs from the data (`Trajectories.u`, `rollout(..., u=, t_u=)`). A
change of input is an event: a PC-ODE ends its segment where an input moves more than
its rule's `input_threshold` away from the value its last update read, in training and
in rollouts alike (`pcnode.segments`).

Auxiliary dims (`aux_dims`, runs written before inputs existed): the last `aux_dims`
of the state dims were read by the cell and decoded like the others but left out of
every loss and score. New runs give inputs instead; an old run still loads, and its
rollouts hold the auxiliary dims at their last observed value rather than feed back an
output no loss trained. Between two updates a model is on a
*segment*: `segment(h)` summarises the state that opened it and `along(seg, span)`
reads the predicted change any span into it (for the PC-ODE, a straight line through
the decoder's first layer), so rollouts and losses read segments at many times cheaply
without knowing which model they hold.

Every model carries its segment rule, `model.rule` (`pcnode.segments.SegmentRule`):
where its updates happen, which `fit` resolves from the data and `load_run` restores.
The ODE-RNN and CfC are in `pcnode.flows`, `build_model` in `pcnode.kinds`; training is in
`pcnode.forcing`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import ConfigError, did_you_mean
from .segments import SegmentRule

MODELS = ("pcode", "rnn", "odernn", "cfc")
LINES = ("latent", "data")  # what a PC-ODE segment is a straight line in (`ModelConfig.line`)
PAPER_MODELS = MODELS[:3]  # the paper's three, what reproduce and plan run by default
MODEL_NAMES = {"pcode": "PC-ODE", "rnn": "RNN", "odernn": "ODE-RNN", "cfc": "CfC"}  # as reports name them
# The ODE-RNN's solvers: torchdiffeq's, whose adaptive ones choose one step size for the
# whole batch, and torchode's (the `peers` extra), which choose one for each trajectory.
TORCHDIFFEQ_SOLVERS = ("rk4", "euler", "midpoint", "dopri5", "bosh3", "adaptive_heun")
TORCHODE_SOLVERS = ("torchode-dopri5", "torchode-tsit5")
SOLVERS = TORCHDIFFEQ_SOLVERS + TORCHODE_SOLVERS
PEERS_EXTRA = "pip install 'pcnode[peers]'"


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode for the block, then back in the mode it was in, also on an error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved as JSON with every checkpoint.

    The defaults are the authors'.
    """

    kind: str = "pcode"  # pcode, rnn, odernn or cfc
    state_dim: int = 4  # numbers per frame (784 for 28x28 pixels)
    hidden: int = 128  # width of the encoder and decoder MLPs
    latent: int = 128  # GRU state; for the PC-ODE half position, half velocity
    time_constant: float = 0.2  # c: the latent moves as z + c * v * span; the decoder reads c * h
    line: str = "latent"  # a PC-ODE segment: "latent", a straight latent line read through the decoder
    # (the authors'), or "data", a straight line in data space (the decoder gives its velocity)
    aux_dims: int = 0  # old runs only: trailing state dims left out of losses (new runs: input_dim)
    input_dim: int = 0  # known inputs read with every frame, never predicted (0: none)
    encoder: str = "mlp"  # mlp, or conv for square images (then image_size**2 == state_dim)
    image_size: int = 0
    solver: str = "rk4"  # the ODE-RNN's solver (SOLVERS)
    solver_steps: int = 1  # fixed-step solvers: steps per frame
    rtol: float = 1e-3  # adaptive solvers: tolerances
    atol: float = 1e-4

    def validate(self) -> ModelConfig:
        if self.kind not in MODELS:
            raise ConfigError(
                f"unknown model '{self.kind}'; choose one of: {', '.join(MODELS)}{did_you_mean(self.kind, MODELS)}"
            )
        if self.solver not in SOLVERS:
            raise ConfigError(f"unknown ODE solver '{self.solver}'; choose one of: {', '.join(SOLVERS)}")
        if self.line not in LINES:
            raise ConfigError(f"unknown line '{self.line}'; choose one of: {', '.join(LINES)}")
        if self.line != "latent" and self.kind != "pcode":
            raise ConfigError(f"line '{self.line}' is a PC-ODE's; the {self.kind} has no segments to shape")
        if self.encoder not in ("mlp", "conv"):
            raise ConfigError(f"unknown encoder '{self.encoder}'; choose 'mlp' or 'conv'")
        if self.encoder == "conv" and self.image_size**2 != self.state_dim:
            raise ConfigError("a conv encoder needs square images: set image_size so that image_size**2 == state_dim")
        for name in ("state_dim", "hidden", "latent", "solver_steps", "aux_dims", "input_dim", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        for name in ("state_dim", "hidden", "latent", "solver_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("time_constant", "rtol", "atol"):
            value = getattr(self, name)
            # `not value > 0` also refuses NaN.
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not value > 0
            ):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.latent % 2:
            raise ConfigError(f"latent must be even (half position, half velocity), got {self.latent}")
        if not 0 <= self.aux_dims < self.state_dim:
            raise ConfigError(f"aux_dims must be in [0, state_dim), got {self.aux_dims}")
        if self.input_dim < 0:
            raise ConfigError(f"input_dim must be 0 or more, got {self.input_dim}")
        if self.input_dim and self.aux_dims:
            raise ConfigError(
                "give known inputs as input_dim; aux_dims is the form of runs written before inputs "
                "existed, and the two do not mix"
            )
        if self.input_dim and self.encoder == "conv":
            raise ConfigError("a conv encoder reads image frames alone; known inputs need the mlp encoder")
        return self


class ResidualMLP(nn.Module):
    """Linear-ReLU, two residual `h + ReLU(Linear(h))` layers, Linear. (..., n_in) -> (..., n_out)."""

    def __init__(self, n_in: int, width: int, n_out: int):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.res1 = nn.Linear(width, width)
        self.res2 = nn.Linear(width, width)
        self.out = nn.Linear(width, n_out)

    @property
    def first(self) -> nn.Linear:
        return self.inp

    def tail(self, pre: Tensor) -> Tensor:
        """Everything after the first linear layer, from its output `pre`."""
        h = pre.relu()
        h = h + self.res1(h).relu()
        h = h + self.res2(h).relu()
        return self.out(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.tail(self.inp(x))


class ConvEncoder(nn.Module):
    """Small CNN for square greyscale frames. (..., size*size) -> (..., width)."""

    def __init__(self, size: int, width: int):
        super().__init__()
        self.size = size
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * (size // 4) ** 2, width),
        )

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = self.net(x.reshape(-1, 1, self.size, self.size))
        return y.reshape(*lead, y.shape[-1])


class ConvDecoder(nn.Module):
    """Mirror of `ConvEncoder`. (..., n_in) -> (..., size*size)."""

    def __init__(self, n_in: int, size: int, width: int):
        super().__init__()
        self.size = size
        self.fc = nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, 32 * (size // 4) ** 2), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),
        )

    @property
    def first(self) -> nn.Linear:
        first = self.fc[0]
        assert isinstance(first, nn.Linear)
        return first

    def tail(self, pre: Tensor) -> Tensor:
        """Everything after the first linear layer, from its output `pre`."""
        lead = pre.shape[:-1]
        y = self.fc[1:](pre).reshape(-1, 32, self.size // 4, self.size // 4)
        return self.net(y).reshape(*lead, self.size * self.size)

    def forward(self, h: Tensor) -> Tensor:
        return self.tail(self.fc[0](h))


class SequenceModel(nn.Module):
    """Encoder, GRU cell and decoder shared by every model.

    Shapes: observations `x` are (..., state_dim); hidden states `h` are (..., latent);
    spans are (..., 1) or broadcastable to it, in frames.
    """

    jumpy = False  # whether the model has a dt head and so can choose its updates

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validate()
        self.rule = SegmentRule().bind(self)  # where its updates happen; `fit` and `load_run` set the run's
        c = config
        if c.encoder == "conv":
            self.encoder: nn.Module = ConvEncoder(c.image_size, c.hidden)
            self.decoder: ResidualMLP | ConvDecoder = ConvDecoder(c.latent, c.image_size, c.hidden)
        else:
            self.encoder = ResidualMLP(c.state_dim + c.input_dim, c.hidden, c.hidden)
            self.decoder = ResidualMLP(c.latent, c.hidden, c.state_dim)
        self.cell = self.make_cell(c)

    def make_cell(self, c: ModelConfig) -> nn.Module:
        """The recurrent cell: (encoded frame (B, hidden), state (B, latent)) -> state."""
        return nn.GRUCell(c.hidden, c.latent)

    @property
    def scored_dims(self) -> int:
        """The state dims that losses and scores count: all of them, but for the auxiliary
        dims of runs written before known inputs existed (`config.aux_dims`)."""
        return self.config.state_dim - self.config.aux_dims

    @property
    def state_size(self) -> int:
        """Numbers in the state `h` that `update` and `advance` pass along (`config.latent`,
        unless the model keeps more than its latent vector)."""
        return self.config.latent

    def encode(self, x: Tensor) -> Tensor:
        """(..., state_dim + input_dim) -> (..., hidden): a frame with its inputs (`with_inputs`)."""
        return self.encoder(x)

    def update(self, e: Tensor, h: Tensor) -> Tensor:
        """One cell update from an encoded frame `e` (B, hidden) and the advanced state `h` (B, latent)."""
        return self.cell(e, h)

    def decode(self, h: Tensor) -> Tensor:
        """(..., latent) -> (..., state_dim): the change in x since the frame last read."""
        return self.decoder(h * self.config.time_constant)

    def advance(self, h: Tensor, span: Tensor | float) -> Tensor:
        """Move the hidden state `span` frames forward without an update. (..., latent) -> (..., latent)"""
        raise NotImplementedError

    def change(self, h: Tensor, span: Tensor | float) -> Tensor:
        """Predicted change in x over `span` frames after the update that produced `h`."""
        return self.along(self.segment(h), span)

    def step(self, h: Tensor, span: Tensor) -> tuple[Tensor, Tensor]:
        """A rollout's step from the states `h` (B, state_size) over `span` (B, 1): the
        predicted change, and the state advanced to the step's end for the next update."""
        return self.change(h, span), self.advance(h, span)

    def segment(self, h: Tensor) -> Tensor:
        """What `along` needs to read the segment opened by the state `h`: (..., latent) -> (..., S)."""
        return h

    def along(self, seg: Tensor, span: Tensor | float) -> Tensor:
        """Predicted change `span` frames into segments `seg` (..., S), spans broadcastable to (..., 1)."""
        return self.decode(self.advance(seg, span))

    @property
    def nfe(self) -> int:
        """Vector-field evaluations so far, one per call over a batch (ODE-RNN only; 0 for the others)."""
        return 0

    @property
    def solver_steps(self) -> float:
        """Accepted ODE solver steps so far, summed over trajectories (ODE-RNN only; 0 for the
        others, which need no solver; NaN for torchdiffeq's adaptive solvers, which do not report them)."""
        return 0.0


class PCODE(SequenceModel):
    """Piecewise-constant neural ODE: straight-line latent dynamics and a learned `dt`."""

    jumpy = True

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.dt_head = nn.Linear(config.latent, 1)

    def advance(self, h: Tensor, span: Tensor | float) -> Tensor:
        """Exact Euler step over any real span: `z + c * v * span`, `v` unchanged."""
        z, v = h.chunk(2, dim=-1)
        return torch.cat([z + self.config.time_constant * v * span, v], dim=-1)

    def segment(self, h: Tensor) -> Tensor:
        """The decoder's first layer along the straight latent path from `h`, `[a, g]` (..., 2 * width).

        The path is linear in the span and so is the first layer, so its output at span
        `s` is `a + s * g`: `decode(advance(h, s)) == decoder.tail(a + s * g)`. A segment
        read at many spans pays for the first layer once.

        With `line="data"` the segment is a straight line in data space instead: the
        decoder reads `h` once for the line's velocity (..., state_dim), and the change at
        span `s` is `s` times it, so the prediction cannot bend inside a segment and a
        bounce has to be an update.
        """
        if self.config.line == "data":
            return self.decode(h)
        c = self.config.time_constant
        first = self.decoder.first
        v = h[..., self.config.latent // 2 :]
        a = first(h * c)
        g = nn.functional.linear(v * (c * c), first.weight[:, : self.config.latent // 2])
        return torch.cat([a, g], -1)

    def along(self, seg: Tensor, span: Tensor | float) -> Tensor:
        if self.config.line == "data":
            return seg * span
        a, g = seg.chunk(2, -1)
        return self.decoder.tail(torch.addcmul(a, torch.as_tensor(span, dtype=a.dtype, device=a.device), g))

    def dt_raw(self, h: Tensor) -> Tensor:
        """The authors' dt head, `LeakyReLU(Linear(h)) + 1`: (..., latent) -> (..., 1), unbounded."""
        return nn.functional.leaky_relu(self.dt_head(h)) + 1


class RNN(SequenceModel):
    """GRU baseline: one update per frame; between frames the prediction is interpolated linearly."""

    def advance(self, h: Tensor, span: Tensor | float) -> Tensor:
        return h

    def segment(self, h: Tensor) -> Tensor:
        return self.decode(h)

    def along(self, seg: Tensor, span: Tensor | float) -> Tensor:
        return seg * span


def with_inputs(x: Tensor, u: Tensor | None) -> Tensor:
    """What the encoder reads: the state (..., state_dim) followed by the inputs (..., input_dim), if any."""
    return x if u is None else torch.cat([x, u.to(x.dtype)], -1)


# Rows per layer call that keep a layer's input and output in a CPU core's cache.
CPU_CHUNK_ROWS = 1024


def in_chunks(fn, *rows: Tensor) -> Tensor:
    """`fn(*rows)` for tensors of N rows each, `CPU_CHUNK_ROWS` rows at a time on a CPU.

    Thousands of rows at once make each layer's input and output several MB, which spill
    out of a CPU core's cache (docs/performance.md, "Choices in the code"). Accelerators
    take all rows at once.
    """
    if rows[0].device.type != "cpu" or len(rows[0]) <= CPU_CHUNK_ROWS:
        return fn(*rows)
    return torch.cat([fn(*chunk) for chunk in zip(*(r.split(CPU_CHUNK_ROWS) for r in rows))])
