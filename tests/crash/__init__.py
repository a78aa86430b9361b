"""The crash test: `listsync run` killed with SIGKILL again and again, against emulators in their own
processes, must end where a run that never crashed ends, with no opt-out lost. Workbooks on the CRM
side; Dotdigital, Constant Contact or Mailchimp on the ESP side (`--esp`).

`bin/crash-test` runs the long version (200 kills or more); `tests/test_crash.py` a short one for each
ESP. `subprocesses` starts the emulators and the service, `world` drives one world of them through
the kills and the edits, `checks` judges the outcome, `__main__` prints the figures. What differs by
ESP (pointing its rules at the emulator, a person's unsubscribe, polling a job, reading its dump) is
one `CrashEsp` per vendor (`esp`, `esp_dotdigital`, `esp_constantcontact`, `esp_mailchimp`), found
by name in `esps`.
"""
