"""The TUI's own widgets (the timeline grid, drawn line by line rather than as widgets per cell)."""
