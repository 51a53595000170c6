"""Piecewise-constant neural ODEs and the two baselines they are measured against.

Greydanus, Lee & Fern, "Piecewise-constant Neural ODEs", 2021 (arXiv:2106.06621).

Time is a real number measured in data frames everywhere in pcnode: a span of 1 is
one frame, 2.5 is two and a half frames.

The three models share one encoder, one GRU cell and one decoder, and differ only in
how the hidden state moves between cell updates (`advance`) and in how long they wait
before the next update (`next_dt`):

- `PCODE`: the state is `h = [z, v]`; between updates `z` moves on a straight line
  with velocity `c * v`, so one Euler step is exact for any span. A head predicts how
  long that line stays valid, and the model jumps that far before its next update.
- `RNN`: time passes only through cell updates, one per frame.
- `ODERNN`: between updates the state follows a learned vector field `dh/dt = f(h)`,
  integrated with torchdiffeq; one update per frame.

The decoder always predicts the change in the observation since the frame the cell
last read, never the observation itself.

Training is jumpy teacher forcing (`teacher_forcing`): the PC-ODE learns where it can
skip updates by trying to stretch its current straight segment one more frame and
keeping the stretch wherever it still predicts the data well.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from .errors import ConfigError

MODELS = ("pcode", "rnn", "odernn")
SOLVERS = ("rk4", "euler", "midpoint", "dopri5", "bosh3", "adaptive_heun")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved as JSON with every checkpoint.

    The defaults are the authors'.
    """

    kind: str = "pcode"
    state_dim: int = 4
    hidden: int = 128
    latent: int = 128
    time_constant: float = 0.2
    aux_dims: int = 0
    encoder: str = "mlp"
    image_size: int = 0
    min_dt: float = 1.0
    max_dt: float = 1000.0
    solver: str = "rk4"
    solver_steps: int = 1
    rtol: float = 1e-3
    atol: float = 1e-4

    def validate(self) -> "ModelConfig":
        if self.kind not in MODELS:
            raise ConfigError(f"unknown model '{self.kind}'; choose one of: {', '.join(MODELS)}")
        if self.solver not in SOLVERS:
            raise ConfigError(f"unknown ODE solver '{self.solver}'; choose one of: {', '.join(SOLVERS)}")
        if self.encoder not in ("mlp", "conv"):
            raise ConfigError(f"unknown encoder '{self.encoder}'; choose 'mlp' or 'conv'")
        if self.encoder == "conv" and self.image_size ** 2 != self.state_dim:
            raise ConfigError("a conv encoder needs square images: set image_size so that image_size**2 == state_dim")
        for name in ("state_dim", "hidden", "latent", "solver_steps", "aux_dims", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        for name in ("state_dim", "hidden", "latent", "solver_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("time_constant", "min_dt", "max_dt", "rtol", "atol"):
            value = getattr(self, name)
            # `not value > 0` also refuses NaN; an infinite max_dt would let a rollout's clock overflow.
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not value > 0:
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.latent % 2:
            raise ConfigError(f"latent must be even (half position, half velocity), got {self.latent}")
        if not 0 <= self.aux_dims < self.state_dim:
            raise ConfigError(f"aux_dims must be in [0, state_dim), got {self.aux_dims}")
        if not 0 < self.min_dt <= self.max_dt:
            raise ConfigError(f"need 0 < min_dt <= max_dt, got {self.min_dt} and {self.max_dt}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown model settings {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d).validate()


class ResidualMLP(nn.Module):
    """Linear-ReLU, two residual `h + ReLU(Linear(h))` layers, Linear. (..., n_in) -> (..., n_out)."""

    def __init__(self, n_in: int, width: int, n_out: int):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.res1 = nn.Linear(width, width)
        self.res2 = nn.Linear(width, width)
        self.out = nn.Linear(width, n_out)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x).relu()
        h = h + self.res1(h).relu()
        h = h + self.res2(h).relu()
        return self.out(h)


class ConvEncoder(nn.Module):
    """Small CNN for square greyscale frames. (..., size*size) -> (..., width)."""

    def __init__(self, size: int, width: int):
        super().__init__()
        self.size = size
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * (size // 4) ** 2, width),
        )

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = self.net(x.reshape(-1, 1, self.size, self.size))
        return y.reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """Mirror of `ConvEncoder`. (..., n_in) -> (..., size*size)."""

    def __init__(self, n_in: int, size: int, width: int):
        super().__init__()
        self.size = size
        self.fc = nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, 32 * (size // 4) ** 2), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),
        )

    def forward(self, h: Tensor) -> Tensor:
        lead = h.shape[:-1]
        y = self.fc(h).reshape(-1, 32, self.size // 4, self.size // 4)
        return self.net(y).reshape(*lead, self.size * self.size)


class SequenceModel(nn.Module):
    """Encoder, GRU cell and decoder shared by every model.

    Shapes: observations `x` are (..., state_dim); hidden states `h` are (..., latent);
    spans are (..., 1) or broadcastable to it, in frames.
    """

    jumpy = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validate()
        c = config
        if c.encoder == "conv":
            self.encoder: nn.Module = ConvEncoder(c.image_size, c.hidden)
            self.decoder: nn.Module = ConvDecoder(c.latent, c.image_size, c.hidden)
        else:
            self.encoder = ResidualMLP(c.state_dim, c.hidden, c.hidden)
            self.decoder = ResidualMLP(c.latent, c.hidden, c.state_dim)
        self.cell = nn.GRUCell(c.hidden, c.latent)

    def encode(self, x: Tensor) -> Tensor:
        """(..., state_dim) -> (..., hidden)"""
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
        return self.decode(self.advance(h, span))

    def next_dt(self, h: Tensor) -> Tensor:
        """Frames until the next update, (B, latent) -> (B, 1)."""
        return h.new_ones(h.shape[0], 1)

    @property
    def nfe(self) -> int:
        """Vector-field evaluations so far (ODE-RNN only; 0 for the others)."""
        return 0

    def forward(self, seq: Tensor, rule: "SkipRule", times: Tensor | None = None,
                mask: Tensor | None = None) -> "Losses":
        """The training losses of a batch; see `teacher_forcing`. (A forward pass is what
        DistributedDataParallel hooks to average gradients across processes.)"""
        return teacher_forcing(self, seq, rule, times=times, mask=mask)

    def rollout(self, x_burn: Tensor, horizon: float, **kwargs):
        """Roll out from burn-in frames (B, n_burn, state_dim) to `horizon`; see `pcnode.rollout.rollout`."""
        from .rollout import rollout
        return rollout(self, x_burn, horizon, **kwargs)


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

    def dt_raw(self, h: Tensor) -> Tensor:
        """The authors' dt head, `LeakyReLU(Linear(h)) + 1`: (..., latent) -> (..., 1), unbounded."""
        return nn.functional.leaky_relu(self.dt_head(h)) + 1

    def next_dt(self, h: Tensor) -> Tensor:
        # Bounded so that a rollout always moves forward and never runs away. `clamp`
        # passes NaN through (overflowing weights give inf - inf), so NaN means "update soon".
        dt = torch.nan_to_num(self.dt_raw(h), nan=self.config.min_dt)
        return dt.clamp(self.config.min_dt, self.config.max_dt)


class RNN(SequenceModel):
    """GRU baseline: one update per frame; between frames the prediction is interpolated linearly."""

    def advance(self, h: Tensor, span: Tensor | float) -> Tensor:
        return h

    def change(self, h: Tensor, span: Tensor | float) -> Tensor:
        return self.decode(h) * span


class VectorField(nn.Module):
    """`f(h)` for the ODE-RNN: Linear-Tanh-Linear, counting its evaluations."""

    def __init__(self, latent: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, width), nn.Tanh(), nn.Linear(width, latent))
        self.calls = 0

    def forward(self, tau: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        # Time is rescaled to tau in [0, 1] so every row can integrate its own span in
        # one solve: dh/dtau = span * f(h).
        self.calls += 1
        h, span = state
        return span * self.net(h), torch.zeros_like(span)


class ODERNN(SequenceModel):
    """ODE-RNN baseline: a learned vector field carries the state between per-frame updates."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.field = VectorField(config.latent, config.hidden)

    def advance(self, h: Tensor, span: Tensor | float) -> Tensor:
        c = self.config
        span = torch.as_tensor(span, dtype=h.dtype, device=h.device).expand(*h.shape[:-1], 1).contiguous()
        tau = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        if c.solver in ("dopri5", "bosh3", "adaptive_heun"):
            options = None
            kwargs = dict(rtol=c.rtol, atol=c.atol)
        else:
            options = dict(step_size=1.0 / c.solver_steps)
            kwargs = {}
        hs, _ = odeint(self.field, (h, span), tau, method=c.solver, options=options, **kwargs)
        return hs[-1]

    @property
    def nfe(self) -> int:
        return self.field.calls


def build_model(config: ModelConfig) -> SequenceModel:
    """Make the model `config.kind` names."""
    config.validate()
    return {"pcode": PCODE, "rnn": RNN, "odernn": ODERNN}[config.kind](config)


class Losses(NamedTuple):
    """What one pass of teacher forcing returns. `total` is what the optimiser minimises."""

    total: Tensor
    displacement: Tensor
    zero_span: Tensor
    dt: Tensor
    mean_dt: float
    updated: Tensor  # (B, T) bool: where the cell updated


@dataclass
class SkipRule:
    """When the PC-ODE may skip a cell update during jumpy teacher forcing."""

    n_burn: int = 4
    epsilon: float = 3e-3
    jump_prob: float = 0.01
    zero_span_weight: float = 0.1
    dt_weight: float = 1e-5


def teacher_forcing(model: SequenceModel, seq: Tensor, rule: SkipRule, times: Tensor | None = None,
                    mask: Tensor | None = None) -> Losses:
    """Jumpy teacher forcing (the PC-ODE) or plain teacher forcing (RNN, ODE-RNN).

    Args:
        seq: (B, T+1, state_dim) observed frames.
        times: (B, T+1) their times in frames, increasing; None means 0, 1, 2, ...
        mask: (B, T) bool, False for transitions `seq[:, i] -> seq[:, i+1]` that are
            padding; None means all are real.

    For each frame `i` the cell may update from `x_i`; a PC-ODE past the burn-in skips
    the update when stretching its current segment over one more frame still predicts
    the change since the segment began with squared error below `rule.epsilon`, or at
    random with probability `rule.jump_prob`. Every frame is a training target: the
    state after frame `i`, advanced to the time of frame `i+1`, must decode the change
    since the segment began. The whole batch moves in step; there is no loop over
    trajectories.
    """
    B, T1, D = seq.shape
    T = T1 - 1
    if times is None:
        times = torch.arange(T1, dtype=seq.dtype, device=seq.device).expand(B, T1)
    times = times.unsqueeze(-1)  # (B, T+1, 1)
    if mask is None:
        mask = torch.ones(B, T, dtype=torch.bool, device=seq.device)
    keep = slice(0, D - model.config.aux_dims)
    x, dx = seq[:, :-1], seq[:, 1:] - seq[:, :-1]
    jumpy = model.jumpy
    burn = min(rule.n_burn, T) if jumpy else T  # frames where every row updates
    enc = model.encode(x[:, :burn])

    h = seq.new_zeros(B, model.config.latent)
    start = times[:, 0]        # time of the frame that opened the current segment, (B, 1)
    carried = torch.zeros_like(dx[:, 0])  # change since that frame, up to the current one
    h_now = h                  # h advanced to the current frame
    every_row = torch.arange(B, device=seq.device)
    last = mask.long().sum(1, keepdim=True) - 1  # each row's last real transition, (B, 1)
    end_h, end_start = h, start  # the segment still open at that transition
    predicted, targets, updated, fresh = [], [], [], []
    ended_len, ended_at, opened_by = [], [], []
    for i in range(T):
        t_i, t_next = times[:, i], times[:, i + 1]
        if i < burn:
            h, start, carried = model.update(enc[:, i], h_now), t_i, dx[:, i]
            rows, new = every_row, h
        else:
            with torch.no_grad():
                stretch = model.decode(model.advance(h, t_next - start)) - (carried + dx[:, i])
                err = stretch[..., keep].pow(2).mean(-1, keepdim=True)
                skip = (err < rule.epsilon) | (torch.rand_like(err) < rule.jump_prob)
            ended_len.append(t_i - start)
            ended_at.append(~skip)
            opened_by.append(h)
            # Only the rows that update pay for the encoder and the cell.
            rows = (~skip).squeeze(-1).nonzero().squeeze(-1)
            new = model.update(model.encode(x[rows, i]), h_now[rows])
            h = h.index_copy(0, rows, new)
            start = torch.where(skip, start, t_i)
            carried = torch.where(skip, carried + dx[:, i], dx[:, i])
        at_end = last == i
        end_h, end_start = torch.where(at_end, h, end_h), torch.where(at_end, start, end_start)
        updated.append(torch.zeros(B, dtype=torch.bool, device=seq.device).index_fill(0, rows, True))
        fresh.append((rows, new))
        h_now = model.advance(h, t_next - start)
        predicted.append(h_now)
        targets.append(carried)

    updated = torch.stack(updated, 1)
    w = mask.to(seq.dtype)  # (B, T)
    pred = model.decode(torch.stack(predicted, 1))[..., keep]
    target = torch.stack(targets, 1)[..., keep]
    n = w.sum().clamp(min=1) * pred.shape[-1]
    displacement = ((pred - target).pow(2) * w.unsqueeze(-1)).sum() / n
    zero = seq.new_zeros(())
    dt_loss, mean_dt, zero_span = zero, 1.0, zero
    if jumpy:
        zero_span = _zero_span_loss(model, fresh, updated, w, keep) / n
        t_end = times.squeeze(-1).gather(1, last + 1)
        dt_loss, mean_dt = _dt_loss(model, ended_len, ended_at, opened_by, end_h, end_start, t_end, mask[:, burn:])
    total = displacement + rule.zero_span_weight * zero_span + rule.dt_weight * dt_loss
    return Losses(total, displacement.detach(), zero_span.detach(), dt_loss.detach(), mean_dt, updated)


def _zero_span_loss(model: PCODE, fresh: list, updated: Tensor, w: Tensor, keep: slice) -> Tensor:
    """Sum over frames of `|dec(advance(h_i, 0))|^2`: a zero span must predict zero change.

    A state persists unchanged over the frames its segment skips, so each distinct
    state is decoded once and weighted by the number of (unmasked) frames it stays.
    `fresh` holds, per frame, the rows that updated there and their new states;
    `updated` is the (B, T) update mask and `w` the (B, T) frame weights.
    """
    B, T = updated.shape
    frame = torch.arange(T, device=updated.device).expand(B, T)
    # For each frame, the first update strictly after it (T if none).
    next_update = torch.where(updated, frame, T).roll(-1, dims=1)
    next_update[:, -1] = T
    next_update = next_update.flip(1).cummin(1).values.flip(1)
    weight_before = torch.cat([w.new_zeros(B, 1), w.cumsum(1)], 1)  # (B, T+1)
    stays = weight_before.gather(1, next_update) - weight_before[:, :T]
    rows = torch.cat([r for r, _ in fresh])
    frames = torch.cat([torch.full_like(r, i) for i, (r, _) in enumerate(fresh)])
    states = torch.cat([s for _, s in fresh])
    sq = model.change(states, 0.0)[..., keep].pow(2).sum(-1)
    return (sq * stays[rows, frames]).sum()


def _dt_loss(model: PCODE, ended_len: list, ended_at: list, opened_by: list, h_last: Tensor,
             start_last: Tensor, t_end: Tensor, mask: Tensor) -> tuple[Tensor, float]:
    """Regress the dt head on the lengths of the segments that ended.

    A segment still open when the sequence ends has only a lower bound on its length;
    it is penalised only for predicting less than that bound. Without this the head
    never learns that a segment can outlast the window (on Lines nothing else ends).
    """
    if not ended_len:
        return h_last.new_zeros(()), 1.0
    lengths = torch.stack(ended_len, 1).squeeze(-1)           # (B, T - n_burn)
    ended = torch.stack(ended_at, 1).squeeze(-1) & mask & (lengths > 0)
    guess = model.dt_raw(torch.stack(opened_by, 1)).squeeze(-1)
    closed = (guess - lengths).pow(2)[ended]
    open_len = (t_end - start_last).squeeze(-1)
    still_open = (model.dt_raw(h_last).squeeze(-1) - open_len).clamp(max=0).pow(2)
    loss = torch.cat([closed, still_open]).mean()
    mean_dt = lengths[ended].mean().item() if ended.any() else float(open_len.mean())
    return loss, mean_dt
