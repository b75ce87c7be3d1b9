"""Eventstitch: a self-hosted event collector for profile-less and tracked events."""

__version__ = "0.1.0"
