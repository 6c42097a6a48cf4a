"""Kept for the tests that import it; the harness copies the action tree itself."""

from jobtoken.testing.act import SHIPPED, copy_action_tree

__all__ = ["SHIPPED", "copy_action_tree"]
