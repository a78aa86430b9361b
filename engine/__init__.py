"""listsync's vendor-neutral engine: rules, model, diff, plans, state, apply."""
