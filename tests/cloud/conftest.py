"""Fixtures of the cloud source tests: the moto server (one per session) and its fake AWS
credentials in the environment."""

from cloud.moto_rig import aws_env, moto

__all__ = ["aws_env", "moto"]
