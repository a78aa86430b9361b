"""Demo kits that pair two vendors' emulators for `listsync demo`."""
