"""Sweep reports: find runs, read their events, tables and plots."""
