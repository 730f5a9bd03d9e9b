"""Prefect flows (the DAGs): composition of ``tasks`` only, no numerical logic."""
