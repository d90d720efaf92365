"""Training data: Discogs labels (``discogs``, ``groundtruth``), the fp16 mel store (``store``) and
the label-balanced epoch sampler (``sampler``). Import the submodules; nothing heavy is loaded here."""
