"""Scale out on Ray Data: whole collections on a cluster, with the local engine's numbers and outputs.

:class:`RayEngine` (``extract(..., engine=RayEngine(...))``, ``--engine ray``),
:func:`embed_dataset` (a lazy ``ray.data.Dataset`` of embeddings, for pipelines that live in Ray)
and :func:`extract_ray` (:func:`maest.extraction.extract` on a cluster: same outputs, resume,
failures and settings). Ray is an optional dependency: ``pip install 'maest[ray]'``.
"""

from maest.distributed.cluster import Cluster, RayEngineError
from maest.distributed.engine import RayEngine, connect, embed_dataset, extract_ray

__all__ = ["Cluster", "RayEngine", "RayEngineError", "connect", "embed_dataset", "extract_ray"]
