"""The crash test: `listsync run` killed with SIGKILL again and again, against emulators in their own
processes, must end where a run that never crashed ends, with no opt-out lost.

`bin/crash-test` runs the long version (200 kills or more); `tests/test_crash.py` a short one.
`subprocesses` starts the emulators and the service, `world` drives one world of them through the
kills and the edits, `checks` judges the outcome, `__main__` prints the figures.
"""
