"""Properties over random inputs: rollouts and queries, and loaders that fail only in documented ways."""
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pcnode import PCODE, ModelConfig, TrainConfig, build_model, fit, load_run, rollout
from pcnode import checkpoint as ckpt
from pcnode.data import load_npz
from pcnode.errors import CheckpointError, DataError

torch.set_num_threads(1)

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
spans = st.floats(0.0, 50.0, allow_nan=False)


def pcode64(seed=0, **bounds):
    """A small float64 PC-ODE whose segment rule bounds its jumps by `bounds` (min_dt, max_dt)."""
    torch.manual_seed(seed)
    model = PCODE(ModelConfig(state_dim=2, hidden=16, latent=16)).double().eval()
    model.rule = model.rule.replace(**bounds)
    return model


@FEW
@given(a=spans, b=spans, seed=st.integers(0, 2**16))
def test_advance_composes(a, b, seed):
    model = pcode64()
    h = torch.randn(3, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    twice = model.advance(model.advance(h, a), b)
    assert torch.allclose(twice, model.advance(h, a + b), rtol=1e-12, atol=1e-10)


def random_rollout(seed, bias, min_dt, horizon, n_burn):
    model = pcode64(seed, min_dt=min_dt, max_dt=max(min_dt, 6.0))
    with torch.no_grad():
        model.dt_head.bias.fill_(bias)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, n_burn, 2, dtype=torch.float64, generator=g)
    return rollout(model, x, horizon)


rollouts = dict(seed=st.integers(0, 2**16), bias=st.floats(-3.0, 5.0), min_dt=st.floats(0.25, 3.0),
                horizon=st.floats(6.0, 30.0), n_burn=st.integers(1, 5))


@FEW
@given(**rollouts)
def test_update_counts_are_positive_and_bounded_by_min_dt(seed, bias, min_dt, horizon, n_burn):
    ro = random_rollout(seed, bias, min_dt, horizon, n_burn)
    bound = math.ceil((horizon - (n_burn - 1)) / min_dt)
    assert (ro.updates >= 1).all() and (ro.updates <= bound).all()
    chosen = ro.dt[:, n_burn - 1:][torch.isfinite(ro.t[:, n_burn - 1:])]
    assert (chosen >= min_dt).all() and torch.isfinite(ro.frames()).all()


@FEW
@given(**rollouts, where=st.floats(0.01, 0.99), pick=st.integers(0, 100))
def test_queries_are_continuous_within_a_segment(seed, bias, min_dt, horizon, n_burn, where, pick):
    ro = random_rollout(seed, bias, min_dt, horizon, n_burn)
    row = pick % 3
    steps = torch.isfinite(ro.t[row]).nonzero().squeeze(-1)
    k = int(steps[pick % len(steps)])
    t0, dt = ro.t[row, k].item(), ro.dt[row, k].item()
    t = t0 + where * dt
    eps = 1e-7 * dt
    times = torch.tensor([[t - eps, t, t + eps]] * 3, dtype=torch.float64)
    x = ro.at(times)[row]
    assert torch.allclose(x[0], x[1], atol=1e-5) and torch.allclose(x[1], x[2], atol=1e-5)
    # Between updates the PC-ODE's latent moves on a straight line.
    ends = torch.tensor([[t0 + 1e-9 * dt, t, t0 + dt]] * 3, dtype=torch.float64)
    h = ro.latent(ends)[row]
    assert torch.allclose(h[1], h[0] + where * (h[2] - h[0]), atol=1e-8)


# ---- loaders: the documented error or a valid result, never anything else --------------------------


def valid_npz_bytes(compressed):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, x=np.ones((4, 6, 2), np.float32),
                                                      coords=np.zeros((4, 6, 2)))
    return buf.getvalue()


def valid_checkpoint_bytes(tmp):
    path = tmp / "c.safetensors"
    ckpt.save_tensors(path, {"model.w": torch.ones(3, 2)}, {"step": "1"})
    return path.read_bytes()


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for pos, byte in edits:
        out[pos % len(out)] = byte
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8)


@FEW
@given(blob=st.binary(max_size=2048))
def test_random_bytes_as_npz_raise_data_error(tmp_path, blob):
    path = tmp_path / "random.npz"
    path.write_bytes(blob)
    with pytest.raises(DataError):
        load_npz(path)


@FEW
@given(compressed=st.booleans(), changes=edits, cut=st.integers(0, 10**6))
def test_damaged_npz_raises_data_error_or_loads_clean_data(tmp_path, compressed, changes, cut):
    data = mutate(valid_npz_bytes(compressed), changes)
    path = tmp_path / "damaged.npz"
    path.write_bytes(data[:cut % (len(data) + 1)])
    try:
        x = load_npz(path)["x"]
    except DataError:
        return
    assert x.dtype == np.float32 and x.ndim == 3 and np.isfinite(x).all()


@FEW
@given(x=hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=4, max_side=4)))
def test_any_array_as_x_raises_data_error_or_loads_as_finite_float32(tmp_path, x):
    path = tmp_path / "arrays.npz"
    np.savez(path, x=x)
    try:
        loaded = load_npz(path)["x"]
    except DataError:
        return
    assert loaded.dtype == np.float32 and loaded.ndim == 3 and np.isfinite(loaded).all()


@FEW
@given(blob=st.binary(max_size=2048))
def test_random_bytes_as_safetensors_raise_checkpoint_error(tmp_path, blob):
    path = tmp_path / "random.safetensors"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError):
        ckpt.load_tensors(path)


@FEW
@given(changes=edits, cut=st.integers(0, 10**6))
def test_damaged_safetensors_raise_checkpoint_error_or_load(tmp_path, changes, cut):
    data = mutate(valid_checkpoint_bytes(tmp_path), changes)
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(data[:cut % (len(data) + 1)])
    try:
        tensors, meta = ckpt.load_tensors(path)
    except CheckpointError:
        return
    assert all(isinstance(v, torch.Tensor) for v in tensors.values()) and isinstance(meta, dict)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    model = build_model(ModelConfig(state_dim=2, hidden=16, latent=16))
    fit(model, torch.cumsum(torch.rand(8, 8, 2) * 0.1, 1), TrainConfig(steps=1, batch_size=4),
        run_dir=root / "run")
    return {p.name: p.read_bytes() for p in (root / "run").iterdir()}


@FEW
@given(name=st.sampled_from([ckpt.CHECKPOINT, ckpt.CONFIG]), changes=edits, cut=st.integers(0, 10**6))
def test_a_damaged_run_raises_checkpoint_error_or_loads(tmp_path, trained, name, changes, cut):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    for n, data in trained.items():
        (run / n).write_bytes(data)
    data = mutate(trained[name], changes)
    (run / name).write_bytes(data[:cut % (len(data) + 1)])
    try:
        model, _ = load_run(run)
    except CheckpointError:
        return
    assert all(torch.isfinite(p).all() for p in model.parameters())
