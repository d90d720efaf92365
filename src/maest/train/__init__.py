"""Training MAEST (and the EffNet-B0 baseline) with the paper's recipe.

``schedule`` (learning rate per epoch), ``augment`` (mixup, SpecAugment), ``swa`` (weight
averaging), ``metrics`` (macro mAP / ROC-AUC), ``config`` (YAML -> dataclasses), ``network``
(architecture + initialisation), ``data`` (mel store -> batches), ``module`` (LightningModule),
``teacher`` (teacher-student targets), ``validation`` (the whole-track segments protocol),
``run`` (``train(config)``), ``demo`` (a synthetic dataset for the tiny run). Lightning is imported
only by ``data``, ``module`` and ``run``; import the submodules, nothing is loaded here.
"""
