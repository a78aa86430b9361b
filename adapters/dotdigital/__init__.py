"""Dotdigital (formerly dotmailer): the v2 API emulator (``emulator``) and, later, client and adapter."""
