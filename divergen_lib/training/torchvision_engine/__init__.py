"""The torchvision engine (``training.engine: torchvision``): Mask R-CNN (ResNet-FPN), trained with generative
copy-paste in its Dataset (:mod:`.engine` the plug-in, :mod:`.model`, :mod:`.train`, :mod:`.inference`).

Single process or DDP under ``torchrun`` (gloo on CPU, NCCL on GPUs); AMP on CUDA; optional EMA of the
weights (``torch.optim.swa_utils``). Every ``checkpoint_period`` steps ``last.pth`` is rewritten atomically
with model, EMA, optimiser, scheduler and scaler state, and a rerun resumes from it. The torch RNG is reseeded
from ``(seed, rank, step)`` each step and paste randomness comes from stream positions, so on CPU a resumed
run ends with the weights an uninterrupted one would have.
"""
