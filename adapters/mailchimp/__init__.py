"""Mailchimp Marketing API 3.0: the emulator (``emulator*``), typed client, adapter and activity feed."""
