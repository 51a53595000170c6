"""Models whose state flows continuously between updates: the ODE-RNN and the CfC peer.

- `ODERNN`: between updates the state follows a learned vector field `dh/dt = f(h)`,
  integrated with torchdiffeq; one update per frame. With a `torchode-` solver,
  torchode integrates it instead, choosing step sizes for each trajectory separately.
- `CfC` (the `peers` extra): a closed-form continuous-time cell (Hasani et al. 2022,
  package `ncps`) in place of the GRU: it reads each frame together with the time that
  passes after it, in closed form, with no solver; one update per frame.

Both share the encoder, decoder and interface of `pcnode.model.SequenceModel`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchdiffeq import odeint

from .errors import ConfigError
from .model import PEERS_EXTRA, TORCHODE_SOLVERS, ModelConfig, SequenceModel


class FlowModel(SequenceModel):
    """A model whose prediction `span` frames on is the decoded state advanced by `span`
    (the default `segment` and `along`): the ODE-RNN and CfC, whose `advance` is the
    costly part. A rollout's step advances once and reads the result twice."""

    def step(self, h: Tensor, span: Tensor) -> tuple[Tensor, Tensor]:
        moved = self.advance(h, span)  # read by the decoder and by the next update
        return self.decode(moved), moved


class VectorField(nn.Module):
    """`f(h)` for the ODE-RNN: Linear-Tanh-Linear, counting its evaluations."""

    def __init__(self, latent: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent, width), nn.Tanh(), nn.Linear(width, latent))
        self.calls = 0

    def rates(self, h: Tensor, span: Tensor) -> Tensor:
        """d/dtau of the state over a span rescaled to tau in [0, 1], so that every row
        integrates its own span in one solve: `dh/dtau = span * f(h)`."""
        self.calls += 1
        return span * self.net(h)

    def regulariser(self, h: Tensor) -> Tensor:
        """The regulariser of Finlay et al. (2020) at the states `h` (N, latent) -> (N, 1):
        the field's kinetic energy `|f|^2` plus the squared Frobenius norm of its Jacobian,
        estimated with one Gaussian probe (Hutchinson). `h` must require grad (as in training)."""
        f = self.net(h)
        probe = torch.randn_like(h)
        (jac,) = torch.autograd.grad(f, h, probe, create_graph=True)
        return f.pow(2).sum(-1, keepdim=True) + jac.pow(2).sum(-1, keepdim=True)


class Solve(NamedTuple):
    """What `ODERNN.solve` returns, row by row: the advanced states (N, latent) and the
    accepted solver steps (N,)."""

    h: Tensor
    steps: Tensor


class ODERNN(FlowModel):
    """ODE-RNN baseline: a learned vector field carries the state between per-frame updates."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.field = VectorField(config.latent, config.hidden)
        self._row_steps = 0.0
        if config.solver in TORCHODE_SOLVERS:
            try:
                import torchode
            except ImportError:
                raise ConfigError(f"the solver {config.solver} needs the package torchode: {PEERS_EXTRA}") from None
            self._torchode = torchode

    def advance(self, h: Tensor, span: Tensor | float) -> Tensor:
        lead = h.shape[:-1]
        span = torch.as_tensor(span, dtype=h.dtype, device=h.device).expand(*lead, 1)
        return self.solve(h.reshape(-1, h.shape[-1]), span.reshape(-1, 1)).h.view(h.shape)

    def solve(self, h: Tensor, span: Tensor) -> Solve:
        """Integrate the states `h` (N, latent) over their spans (N, 1), each row its own."""
        c = self.config
        if c.solver in TORCHODE_SOLVERS:
            return self._solve_per_row(h, span)
        adaptive = c.solver in ("dopri5", "bosh3", "adaptive_heun")
        options = None if adaptive else dict(step_size=1.0 / c.solver_steps)
        tolerances = dict(rtol=c.rtol, atol=c.atol) if adaptive else {}

        def field(tau, state):  # the span rides along as a state that does not change
            return self.field.rates(*state), torch.zeros_like(state[1])

        hs, _ = odeint(
            field,
            (h, span),
            torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device),
            method=c.solver,
            options=options,
            **tolerances,
        )
        # torchdiffeq's adaptive solvers share their steps across the batch and do not report them.
        steps = torch.full((len(h),), math.nan if adaptive else c.solver_steps, device=h.device)
        self._row_steps += steps.sum().item()
        return Solve(hs[-1], steps)

    def _solve_per_row(self, h: Tensor, span: Tensor) -> Solve:
        """torchode: every row takes its own adaptive steps from tau = 0 to 1."""
        to, c = self._torchode, self.config
        term = to.ODETerm(lambda tau, state, span: self.field.rates(state, span), with_args=True)
        method = {"torchode-dopri5": to.Dopri5, "torchode-tsit5": to.Tsit5}[c.solver](term=term)
        # Gradients flow through the steps, not through the choice of their sizes (as in torchdiffeq).
        solver = to.AutoDiffAdjoint(
            method, to.IntegralController(atol=c.atol, rtol=c.rtol, term=term), backprop_through_step_size_control=False
        )
        problem = to.InitialValueProblem(y0=h, t_start=h.new_zeros(len(h)), t_end=h.new_ones(len(h)))
        # The first step tries the whole span; the controller shrinks it where the error asks.
        # torchode's own, more cautious first guess doubled the evaluations (docs/peers.md).
        sol = solver.solve(problem, args=span, dt0=h.new_ones(len(h)))
        steps = sol.stats["n_accepted"].to(h.dtype)
        self._row_steps += steps.sum().item()
        return Solve(sol.ys[:, -1], steps)

    @property
    def nfe(self) -> int:
        return self.field.calls

    @property
    def solver_steps(self) -> float:
        return self._row_steps


class CfC(FlowModel):
    """A closed-form continuous-time cell (Hasani et al. 2022; `ncps.torch.CfCCell`) in place of the GRU.

    The cell reads a frame `e` with the state `h` and the time `span` that passes after
    it, and gives the state `span` later in closed form. So the model's state is the pair
    `[h, e]` (`state_size` = latent + hidden): `update` stores the frame it read,
    `advance` runs the cell over the span, and the decoder reads `h`.
    """

    def make_cell(self, c: ModelConfig) -> nn.Module:
        try:
            from ncps.torch import CfCCell
        except ImportError:
            raise ConfigError(f"the CfC model needs the package ncps: {PEERS_EXTRA}") from None
        return CfCCell(c.hidden, c.latent, backbone_units=c.hidden, backbone_layers=1)

    @property
    def state_size(self) -> int:
        return self.config.latent + self.config.hidden

    def update(self, e: Tensor, h: Tensor) -> Tensor:
        return torch.cat([h[..., : self.config.latent], e], -1)

    def advance(self, h: Tensor, span: Tensor | float) -> Tensor:
        lead, L = h.shape[:-1], self.config.latent
        flat = h.reshape(-1, h.shape[-1])
        span = torch.as_tensor(span, dtype=h.dtype, device=h.device).expand(*lead, 1).reshape(-1, 1)
        moved, _ = self.cell(flat[:, L:], flat[:, :L], span)
        return torch.cat([moved, flat[:, L:]], -1).view(h.shape)

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h[..., : self.config.latent] * self.config.time_constant)
