"""Seeing and sharing results: the local viser viewer (:mod:`.local`) and the static web site (:mod:`.publish`)."""
