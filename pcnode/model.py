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

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from .errors import ConfigError, check_fields

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
        check_fields(cls, d, "model")
        return cls(**d).validate()


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

    @property
    def first(self) -> nn.Linear:
        return self.fc[0]

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

    def decoder_line(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The decoder's first layer along the straight latent path from `h`.

        The path is linear in the span and so is the first layer, so its output at span
        `s` is `a + s * g`: `decode(advance(h, s)) == decoder.tail(a + s * g)`. Teacher
        forcing decodes each state at many spans and pays for the first layer once.
        """
        c = self.config.time_constant
        first = self.decoder.first
        v = h[..., self.config.latent // 2:]
        a = first(h * c)
        g = nn.functional.linear(v * (c * c), first.weight[:, :self.config.latent // 2])
        return a, g

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


def build_model(config: ModelConfig, seed: int | None = None) -> SequenceModel:
    """Make the model `config.kind` names.

    With `seed`, its initial weights depend on the seed alone, and the global random
    state is left as it was. (PyTorch seeds a new process at random, so a model built
    without a seed starts from different weights in every process.)
    """
    config.validate()
    cls = {"pcode": PCODE, "rnn": RNN, "odernn": ODERNN}[config.kind]
    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


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
    """When the PC-ODE may skip a cell update during jumpy teacher forcing, and its loss weights.

    The defaults are the authors'. `feed_predictions` is ours: the probability that an
    update after the burn-in reads the model's own prediction of the frame instead of
    the true frame, as every update of a rollout does (0: the authors' teacher forcing).
    """

    n_burn: int = 4
    epsilon: float = 3e-3
    jump_prob: float = 0.01
    zero_span_weight: float = 0.1
    dt_weight: float = 1e-5
    feed_predictions: float = 0.0


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

    With `rule.feed_predictions > 0` an update may instead read the frame the ending
    segment predicted (no gradient through it), and the new segment's targets are then
    measured from that prediction, as in a rollout: the model learns to recover from
    its own errors and its segments end where a rollout's would.
    """
    B, T1, _ = seq.shape
    if times is None:
        times = torch.arange(T1, dtype=seq.dtype, device=seq.device).expand(B, T1)
    if mask is None:
        mask = torch.ones(B, T1 - 1, dtype=torch.bool, device=seq.device)
    if model.jumpy:
        return _jumpy_teacher_forcing(model, seq, rule, times.unsqueeze(-1), mask)
    return _plain_teacher_forcing(model, seq, times.unsqueeze(-1), mask)


def _plain_teacher_forcing(model: SequenceModel, seq: Tensor, times: Tensor, mask: Tensor) -> Losses:
    """The cell updates at every frame; the state advanced to the next frame decodes its change."""
    B, T1, _ = seq.shape
    enc = _framewise(model.encode, seq[:, :-1].unbind(1))
    h_now = seq.new_zeros(B, model.config.latent)
    predicted = []
    for i in range(T1 - 1):
        h_now = model.advance(model.update(enc[:, i], h_now), times[:, i + 1] - times[:, i])
        predicted.append(h_now)
    pred = _framewise(model.decode, predicted)
    displacement = _displacement_loss(model, pred, seq[:, 1:] - seq[:, :-1], mask)
    zero = seq.new_zeros(())
    return Losses(displacement, displacement.detach(), zero, zero, 1.0, mask.new_ones(mask.shape))


def _jumpy_teacher_forcing(model: PCODE, seq: Tensor, rule: SkipRule, times: Tensor, mask: Tensor) -> Losses:
    """The PC-ODE's pass. `times` is (B, T+1, 1).

    Per row it carries the current segment: the state `h` that opened it, the time
    `start` of that update, the change `carried` since then, the decoder's first
    layer along the segment's straight path (`a`, `g`, see `PCODE.decoder_line`), and
    the dt head's guess `dt` at `h`.
    """
    B, T1, D = seq.shape
    T = T1 - 1
    keep = slice(0, D - model.config.aux_dims)
    x, dx = seq[:, :-1], seq[:, 1:] - seq[:, :-1]
    burn = min(rule.n_burn, T)  # frames where every row updates
    never = torch.zeros(B, 1, dtype=torch.bool, device=seq.device)
    last = mask.long().sum(1, keepdim=True) - 1  # each row's last real transition, (B, 1)
    last_frames = set(last.flatten().tolist())

    h = seq.new_zeros(B, model.config.latent)
    a = g = seq.new_zeros(B, model.decoder.first.out_features)
    dt = seq.new_zeros(B, 1)
    start = times[:, 0]
    carried = torch.zeros_like(dx[:, 0])
    open_dt, open_start = dt, start  # the segment still open at each row's last transition
    predicted, targets, updated, fresh = [], [], [], []
    ended_len, ended_at, ended_dt = [], [], []
    for i in range(T):
        t_i, t_next = times[:, i], times[:, i + 1]
        if i < burn:
            skip = never
        else:
            with torch.no_grad():
                stretch = model.decoder.tail(a + (t_next - start) * g) - (carried + dx[:, i])
                err = stretch[..., keep].pow(2).mean(-1, keepdim=True)
                skip = (err < rule.epsilon) | (torch.rand_like(err) < rule.jump_prob)
            ended_len.append(t_i - start)
            ended_at.append(~skip)
            ended_dt.append(dt)
        # Only the rows that update pay for the encoder, the cell and the decoder's first layer.
        rows = (~skip).squeeze(-1).nonzero().squeeze(-1)
        x_in, offset = x[rows, i], None
        if i >= burn and rule.feed_predictions > 0:
            # As in a rollout, the cell reads its own prediction of the frame, and the
            # new segment's targets are measured from that prediction.
            with torch.no_grad():
                own = model.decoder.tail(a[rows] + (t_i - start)[rows] * g[rows])
                fed = torch.rand_like(own[:, :1]) < rule.feed_predictions
                offset = torch.where(fed, carried[rows] - own, 0.0)
                offset[..., keep.stop:] = 0.0  # auxiliary inputs are given, never predicted
                x_in = x_in - offset
        new = model.update(model.encode(x_in), model.advance(h[rows], (t_i - start)[rows]))
        new_a, new_g = model.decoder_line(new)
        h, a, g = h.index_copy(0, rows, new), a.index_copy(0, rows, new_a), g.index_copy(0, rows, new_g)
        dt = dt.index_copy(0, rows, model.dt_raw(new))
        start = torch.where(skip, start, t_i)
        carried = torch.where(skip, carried + dx[:, i], dx[:, i])
        if offset is not None:
            carried = carried.index_add(0, rows, offset)
        if i in last_frames:
            at_end = last == i
            open_dt, open_start = torch.where(at_end, dt, open_dt), torch.where(at_end, start, open_start)
        updated.append(~skip.squeeze(-1))
        fresh.append((rows, new_a))
        predicted.append(a + (t_next - start) * g)
        targets.append(carried)

    pred = _framewise(model.decoder.tail, predicted)
    displacement = _displacement_loss(model, pred, torch.stack(targets, 1), mask)
    updated = torch.stack(updated, 1)
    n = mask.sum().clamp(min=1) * (D - model.config.aux_dims)  # as in the displacement loss
    zero_span = _zero_span_loss(model, fresh, updated, mask.to(seq.dtype), keep) / n
    t_end = times.squeeze(-1).gather(1, last + 1)
    dt_loss, mean_dt = _dt_loss(ended_len, ended_at, ended_dt, open_dt, t_end - open_start, mask[:, burn:])
    total = displacement + rule.zero_span_weight * zero_span + rule.dt_weight * dt_loss
    return Losses(total, displacement.detach(), zero_span.detach(), dt_loss.detach(), mean_dt, updated)


# Rows of work per layer call that stay in a CPU core's cache; see `_framewise`.
CPU_CHUNK_ROWS = 1024


def _framewise(fn, frames: list[Tensor] | tuple[Tensor, ...]) -> Tensor:
    """`fn(torch.stack(frames, 1))` for frames (B, ...) each, a few frames at a time on a CPU.

    All B*T rows at once make every layer's input and output several MB, which spill out
    of a CPU core's cache; a few frames at a time keeps them in it (a Billiards2D PC-ODE
    training step at batch 256 measured 8% faster). Accelerators take all frames at once.
    """
    B = frames[0].shape[0]
    step = len(frames) if frames[0].device.type != "cpu" else max(1, CPU_CHUNK_ROWS // B)
    return torch.cat([fn(torch.stack(frames[k:k + step], 1)) for k in range(0, len(frames), step)], 1)


def _displacement_loss(model: SequenceModel, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over the real (unmasked) frames and the non-auxiliary dims. (B, T, D) each."""
    keep = slice(0, pred.shape[-1] - model.config.aux_dims)
    w = mask.to(pred.dtype).unsqueeze(-1)
    n = w.sum().clamp(min=1) * (pred.shape[-1] - model.config.aux_dims)
    return ((pred[..., keep] - target[..., keep]).pow(2) * w).sum() / n


def _zero_span_loss(model: PCODE, fresh: list, updated: Tensor, w: Tensor, keep: slice) -> Tensor:
    """Sum over frames of `|dec(advance(h_i, 0))|^2`: a zero span must predict zero change.

    A state persists unchanged over the frames its segment skips, so each distinct
    state is decoded once and weighted by the number of (unmasked) frames it stays.
    `fresh` holds, per frame, the rows that updated there and the decoder's first layer
    at their new states (`a` of `decoder_line`, the span-0 point); `updated` is the
    (B, T) update mask and `w` the (B, T) frame weights.
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
    sq = model.decoder.tail(torch.cat([a for _, a in fresh]))[..., keep].pow(2).sum(-1)
    return (sq * stays[rows, frames]).sum()


def _dt_loss(ended_len: list, ended_at: list, ended_dt: list, open_dt: Tensor, open_len: Tensor,
             mask: Tensor) -> tuple[Tensor, float]:
    """Regress the dt head on the lengths of the segments that ended.

    Per frame after the burn-in: the length of the current segment, whether it ended
    there, and the dt head's raw guess at the state that opened it. A segment still open
    when a row's data ends (guess `open_dt`, (B, 1)) has only a lower bound on its
    length, `open_len`; it is penalised only for predicting less than that. Without this
    the head never learns that a segment can outlast the window (on Lines nothing else ends).
    """
    if not ended_len:
        return open_dt.new_zeros(()), 1.0
    lengths = torch.stack(ended_len, 1).squeeze(-1)           # (B, T - n_burn)
    ended = torch.stack(ended_at, 1).squeeze(-1) & mask & (lengths > 0)
    guess = torch.stack(ended_dt, 1).squeeze(-1)
    closed = (guess - lengths).pow(2)[ended]
    still_open = (open_dt - open_len).squeeze(-1).clamp(max=0).pow(2)
    loss = torch.cat([closed, still_open]).mean()
    mean_dt = lengths[ended].mean().item() if ended.any() else float(open_len.mean())
    return loss, mean_dt
