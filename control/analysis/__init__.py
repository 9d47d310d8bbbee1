"""Rollout analysis: pure judgements over the fleet's counts (no I/O here)."""
