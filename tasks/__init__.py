"""Prefect tasks: thin wrappers over the ``xrdmap`` core adding retries, caching, logs."""
