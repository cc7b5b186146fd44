"""The receiver fixture is shared by the webhook tests."""

from .test_receiver import receiver  # noqa: F401
