"""Fault drills of issue 7 (reliability proof): `make reliability` runs reliability/run.py."""
