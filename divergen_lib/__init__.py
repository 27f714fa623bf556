"""DiverGen-repro: generative data diversity for LVIS instance segmentation (DiverGen, X-Paste).

Stages live in their own modules (``toyworld``, ``generation``, ``annotation``, ...); shared file
formats in ``formats``; parameters in ``config``; sharding and resumable maps in ``distributed``.
"""

__version__ = "0.1.0"
