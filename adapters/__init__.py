"""Vendor adapters. Each sub-package translates one vendor's API to the engine's model."""
