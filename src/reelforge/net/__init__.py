"""Outbound network access on behalf of users (see :mod:`reelforge.net.urlguard`)."""
