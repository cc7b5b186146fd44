"""Helpers for bin/vtlookup.py: settings from Splunk, the KV store cache, output fields."""
