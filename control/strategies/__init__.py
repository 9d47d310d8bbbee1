"""Deployment strategies as pure state machines, stepped by a runner or by hand in tests."""
