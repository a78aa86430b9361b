"""What every vendor emulator shares: the fault layer in front of it and its loopback control API.

`faults` says which faults to inject and draws them; `layer` is the ASGI middleware that injects them
in front of an emulator app and serves `/_emulator/` (fault settings, counts, the account's state);
`accounts` is the state header the ESP emulators' accounts share (clock, knobs, seeded randomness,
call log, bulk jobs that fail or stall by share); `dumps` compares the state dumps of two runs.
"""
