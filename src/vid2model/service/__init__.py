"""A self-hosted service: upload captures over HTTP, collect models (``vid2model serve``)."""
