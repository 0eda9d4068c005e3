"""Sigma processing pipelines (package data): one per dataset family, see rules/datasets.py."""
