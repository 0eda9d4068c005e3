"""Fixtures of the cloud source tests: the moto server, the Pub/Sub emulator and Azurite (one
of each per session, started on first use) and their settings in the environment."""

from cloud.azurite_rig import azurite
from cloud.moto_rig import aws_env, moto
from cloud.pubsub_rig import pubsub, pubsub_emulator

__all__ = ["aws_env", "azurite", "moto", "pubsub", "pubsub_emulator"]
