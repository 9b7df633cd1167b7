"""Fixtures of the ERP tests: the Business Central emulator, settings for it, a SQLite store."""

from tests.erp.sandbox_fixtures import bc, bc_settings, sandbox_ca, sqlite_store

__all__ = ["bc", "bc_settings", "sandbox_ca", "sqlite_store"]
