"""Detector training with generative copy-paste, by the engine ``training.engine`` names (:mod:`.engines`: the
torchvision engine by default, and the detectron2 engine)."""
