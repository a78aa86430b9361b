"""The Workbooks CRM adapter, and an in-memory emulator of its API for tests and the sandbox."""
