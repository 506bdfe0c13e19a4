"""The simulator of the deployed system (issue #17); the entry point is deploy/simulate.py."""
