"""Constant Contact (API v3): the typed client and adapter, the emulator, and its sandbox."""
