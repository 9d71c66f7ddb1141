"""Integrations with other array libraries and pipelines, each imported lazily and installed as an
optional extra: ``lossengine.integrations.jax`` (``pip install "lossengine[jax]"``) and
``lossengine.integrations.dask`` (``pip install "lossengine[dask]"``); gradient-boosting objectives in
``lossengine.integrations.xgboost``, ``.lightgbm`` and ``.catboost`` (extras ``xgboost``, ``lightgbm``,
``catboost``). Importing lossengine never
imports them or their libraries."""
import importlib.metadata as _metadata

#: integration module -> the distribution it needs
REQUIRES = {"jax": "jax", "dask": "dask", "xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost"}


def available() -> dict[str, str | None]:
    """Each integration's library version, or None when it is not installed (nothing is imported)."""
    versions = {}
    for integration, distribution in REQUIRES.items():
        try:
            versions[integration] = _metadata.version(distribution)
        except _metadata.PackageNotFoundError:
            versions[integration] = None
    return versions
