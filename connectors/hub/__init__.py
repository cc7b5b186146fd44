"""The hub: POST /v1/enrich for thin clients (api.py), its [api] and [remote] settings
(config.py) and the client a CLI uses with `--remote` (client.py)."""
