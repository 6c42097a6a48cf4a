"""action/providers"""
