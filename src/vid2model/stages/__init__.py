"""Pipeline stages: each module exposes ``run(ws, cfg) -> dict`` (the summary kept in the manifest)."""
