"""Fixtures of the cloud source tests: the moto server and the Pub/Sub emulator (one of each
per session, started on first use) and their settings in the environment."""

from cloud.moto_rig import aws_env, moto
from cloud.pubsub_rig import pubsub, pubsub_emulator

__all__ = ["aws_env", "moto", "pubsub", "pubsub_emulator"]
