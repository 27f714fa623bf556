"""The detectron2 engine (``training.engine: detectron2``): any detectron2 detector config (default: the model
zoo's LVIS v1 Mask R-CNN R50-FPN), trained with generative copy-paste by our own mapper.

Modules by concern: :mod:`.engine` (the plug-in, importable without detectron2), :mod:`.d2config` (the detectron2
config of a run, a project's modules and checkouts), :mod:`.augmentations` (the config's resize/crop),
:mod:`.records` (dataset records and class counts), :mod:`.mapper` (training inputs), :mod:`.crowd` (crowd
regions as ignore regions), :mod:`.hooks` (EMA, loss log), :mod:`.trainer` (trainer and launch),
:mod:`.inference` (prediction), :mod:`.original_checkpoints` (checkpoints in the originals' layout, truncation).

A run's detectron2 state lives in ``<run>/detectron2/`` (its checkpoints for resuming, ``config.yaml``, event
logs); the run folder gets ``loss.jsonl`` and ``model_final.pth`` in the torchvision engine's formats, so
truncation, evaluation and the notebooks treat both engines alike.

Samples follow the torchvision engine: stream position ``p`` (repeat-factor stream of :mod:`.sampling`) is image
``stream[p]``, flipped, resized (or scaled and cropped) and pasted with ``np.random.default_rng([seed, p])``.
detectron2's samplers are replaced by the positions of :class:`~.sampling.StepPositions`, so samples do not depend
on the number of data workers, and a resumed run continues the stream where the interrupted one stopped.
``DATALOADER.SAMPLER_TRAIN`` chooses between repeat factors (``RepeatFactorTrainingSampler`` with
``REPEAT_THRESHOLD``) and plain shuffling (``TrainingSampler``); images without annotations are kept (pasting gives
them instances); the flip is ``training.horizontal_flip`` (``INPUT.RANDOM_FLIP`` is not used).
"""
