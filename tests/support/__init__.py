"""Shared test support: a real daemon in a subprocess, lake queries, free ports."""
