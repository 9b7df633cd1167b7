"""Hardening: bad shop data, faults, secrets and races, each proven by a test that tries hard."""
