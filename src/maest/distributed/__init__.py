"""Scale out on Ray Data: whole collections on a cluster, with the local engine's numbers and outputs.

:func:`embed_dataset` (a lazy ``ray.data.Dataset`` of embeddings, for pipelines that live in Ray)
and :func:`extract_ray` (:func:`maest.extraction.extract` on a cluster: same outputs, resume,
failures and settings). Ray is an optional dependency: ``pip install 'maest[ray]'``.
"""

from maest.distributed.engine import RayEngineError, connect, embed_dataset, extract_ray, ray_engine

__all__ = ["RayEngineError", "connect", "embed_dataset", "extract_ray", "ray_engine"]
