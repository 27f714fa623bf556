"""Training stability: gradient clipping by value or by norm, and the spike check that stops a run with advice."""

import pytest
import torch

from divergen_lib.config import ConfigError
from divergen_lib.training.loss_log import SpikeGuard, TrainingDiverged, read_loss_log
from divergen_lib.training.stage import run
from divergen_lib.training.torchvision_engine import train as engine_train

from .conftest import smoke_training


def gradients(scale: float = 10.0) -> list[torch.nn.Parameter]:
    layer = torch.nn.Linear(8, 4)
    layer.weight.grad = torch.full_like(layer.weight, scale)
    layer.bias.grad = torch.linspace(-scale, scale, 4)
    return list(layer.parameters())


def norm(parameters: list[torch.nn.Parameter]) -> float:
    return float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in parameters])))


def test_gradients_are_clipped_by_value_or_by_their_joint_norm():
    by_value = gradients()
    engine_train.clip_gradients(by_value, 1.0, "value")
    assert max(float(p.grad.abs().max()) for p in by_value) == pytest.approx(1.0)
    assert norm(by_value) > 5  # every element at the bound: the norm is far above it
    by_norm, before = gradients(), gradients()
    engine_train.clip_gradients(by_norm, 1.0, "norm")
    assert norm(by_norm) == pytest.approx(1.0, rel=1e-5)
    ratio = by_norm[0].grad / before[0].grad  # the direction is kept: one factor for every element
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio))


def test_a_spike_far_above_the_recent_median_stops_the_run_with_advice():
    guard = SpikeGuard(20.0, window=10)
    for step in range(1, 40):
        guard.check(step, 1.0 + 0.1 * (step % 3))  # a noisy, steady loss
    guard.check(40, 15.0)  # 14x the median: not a spike at factor 20
    with pytest.raises(TrainingDiverged, match=r"loss 6e\+04 at step 41 is .*x the median of the last 10 steps"):
        guard.check(41, 6e4)
    early = SpikeGuard(2.0, window=10)
    for step, loss in enumerate([10.0, 1.0, 50.0], start=1):  # fewer steps than the window: no judgement yet
        early.check(step, loss)
    off = SpikeGuard(None, window=2)
    for step, loss in enumerate([1.0, 1.0, 1e9], start=1):
        off.check(step, loss)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("grad_clip=0", "grad_clip must be > 0"),
        ("spike_factor=1", "spike_factor must be > 1"),
        ("grad_clip_type=l2", "grad_clip_type"),
    ],
)
def test_bad_stability_settings_are_one_line(tmp_path, smoke_world, override, says):
    with pytest.raises(ConfigError, match=says):
        smoke_training(tmp_path, smoke_world, f"training.solver.{override}")


def test_a_training_run_stops_at_a_spike_with_the_step_and_the_advice(tmp_path, smoke_world, monkeypatch):
    original = engine_train._step

    def spiking_step(state, *args):
        losses = original(state, *args)
        return {k: v * 1000 for k, v in losses.items()} if state.step == 6 else losses

    monkeypatch.setattr(engine_train, "_step", spiking_step)
    monkeypatch.setattr(engine_train, "SpikeGuard", lambda factor: SpikeGuard(factor, window=5))
    config = smoke_training(
        tmp_path,
        smoke_world,
        "training.solver.iterations=8",
        "training.solver.spike_factor=50",
        "training.runs=[{name: baseline}]",
    )
    with pytest.raises(TrainingDiverged, match=r"at step 7 is .*x the median of the last 5 steps.*grad_clip_type"):
        run(config)
    logged = read_loss_log(tmp_path / "training" / "baseline" / "loss.jsonl")
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]  # the spiking step is not logged as a normal one


def test_the_detectron2_engine_refuses_the_spike_check_it_does_not_run(tmp_path, smoke_world):
    with pytest.raises(ConfigError, match="spike_factor: the torchvision engine's check"):
        smoke_training(tmp_path, smoke_world, "training.engine=detectron2", "training.solver.spike_factor=50")
